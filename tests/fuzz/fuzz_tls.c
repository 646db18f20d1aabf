/* fuzz_tls.c: libFuzzer target for what a remote muscle or a conductor reads from a
 * credential file (wire/tls.c, bd_tls_parse: the "bodhi-part:" lines and every PEM block,
 * parsed by mbedTLS as a certificate or a key). What it accepts is turned into NNG TLS
 * configurations, as a listener and a dialer would. Certificates and keys made by
 * bd_tls_create are in tests/fuzz/corpus-tls.
 *   build/fuzz_tls -max_total_time=600 build/fuzz-corpus-tls     (a longer run)
 * The suite runs it for a few seconds (fuzz_tls). */
#include <stdint.h>
#include <stdlib.h>

#include "wire/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bd_tls *t = NULL;
    if (bd_tls_parse((const char *)data, size, "fuzz", &t) == BD_OK) {
        nng_tls_config *c;
        int parts = bd_tls_parts(t);
        if (parts & BD_TLS_SERVER)
            bd_tls_config(t, 1, &c);
        if (parts & BD_TLS_CLIENT)
            bd_tls_config(t, 0, &c);
    }
    bd_tls_destroy(t);
    return 0;
}
