/* fuzz_wire.c: libFuzzer target for every decoder of what arrives on a bodhi socket
 * (wire/wire.c): the header, HELLO, WEIGHTS and ROLLOUT payloads, and the JSON of events,
 * heartbeats and joins (cJSON, as the conductor and children parse it). The first byte
 * picks the decoder; the rest is the message. Everything a decoder accepts is read back in
 * full, so a length it trusted wrongly shows as an out-of-bounds read under ASan.
 *   build/fuzz_wire -max_total_time=600 tests/fuzz/corpus-wire     (a longer run)
 * The suite runs it for a few seconds (tests/CMakeLists: fuzz_wire). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "wire/wire.h"

static volatile uint8_t sink;

static void touch(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= p[i];
    sink = x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t which = data[0] % 5;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (which) {
    case 0: { /* a whole message: header, then its payload by type */
        bd_wire_header h;
        const uint8_t *pl;
        if (bd_wire_decode(p, n, &h, &pl) != BD_OK)
            break;
        touch(pl, (size_t)h.payload_len);
        if (h.type == BD_MSG_ROLLOUT) {
            bd_rollout_hdr r;
            if (bd_rollout_decode(pl, (size_t)h.payload_len, &r) == BD_OK) {
                size_t off[BD_RO_COUNT], sz[BD_RO_COUNT];
                bd_rollout_layout(&r, off, sz);
                for (int k = 0; k < BD_RO_COUNT; k++)
                    touch(pl + off[k], sz[k]);
                bd_rollout_check(pl, (size_t)h.payload_len, &r, r.U == 1 ? 1 + p[0] % 4 : 0);
            }
        }
        break;
    }
    case 1: {
        bd_hello hh;
        bd_hello_decode(p, n, &hh);
        break;
    }
    case 2: {
        bd_weights_hdr w;
        const uint8_t *f;
        if (bd_weights_decode(p, n, &w, &f) == BD_OK)
            touch(f, 4 * (size_t)bd_weights_floats(&w));
        break;
    }
    case 3: {
        bd_rollout_hdr r;
        if (bd_rollout_decode(p, n, &r) == BD_OK) {
            size_t off[BD_RO_COUNT], sz[BD_RO_COUNT];
            bd_rollout_layout(&r, off, sz);
            for (int k = 0; k < BD_RO_COUNT; k++)
                touch(p + off[k], sz[k]);
            bd_rollout_check(p, n, &r, 0);
            bd_rollout_check(p, n, &r, 2);
        }
        break;
    }
    default: { /* the JSON of an event, heartbeat or join */
        cJSON *o = cJSON_ParseWithLength((const char *)p, n);
        if (o) {
            char *s = cJSON_PrintUnformatted(o);
            free(s);
            cJSON_Delete(o);
        }
        break;
    }
    }
    return 0;
}
