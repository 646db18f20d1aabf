/* tfevents.c: TensorBoard event files (see tfevents.h). The Event message is encoded by
 * protobuf-c from common/tfevents.proto (generated at build time by protoc-c); the framing
 * and its CRC32C are here (Debian packages no C library for CRC32C). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bodhi/bodhi.h"
#include "common/tfevents.h"
#include "common/util.h"
#include "tfevents.pb-c.h"

struct bd_tfevents {
    FILE *f;
    char *path;
};

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t bd_crc32c(const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t bd_crc32c_masked(const void *data, size_t n)
{
    uint32_t c = bd_crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static void le32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* One record: the encoded event framed as tfevents.h says, flushed. */
static int write_event(bd_tfevents *w, const Bodhi__Tfevents__Event *ev)
{
    size_t n = bodhi__tfevents__event__get_packed_size(ev);
    unsigned char *buf = malloc(n + 16);
    if (!buf)
        return bd_seterr(BD_ENOMEM, "out of memory for a %zu-byte event", n);
    uint64_t len = n;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(len >> (8 * i));
    le32(buf + 8, bd_crc32c_masked(buf, 8));
    bodhi__tfevents__event__pack(ev, buf + 12);
    le32(buf + 12 + n, bd_crc32c_masked(buf + 12, n));
    int ok = fwrite(buf, 1, n + 16, w->f) == n + 16 && fflush(w->f) == 0;
    free(buf);
    return ok ? BD_OK : bd_seterr(BD_EIO, "cannot write '%s': %s", w->path, strerror(errno));
}

int bd_tfevents_open(const char *dir, double wall_time, bd_tfevents **out)
{
    *out = NULL;
    int rc = bd_mkdirs(dir);
    if (rc)
        return rc;
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    bd_tfevents *w = calloc(1, sizeof *w);
    if (!w || !(w->path = bd_strfmt("%s/events.out.tfevents.%lld.%s.%d", dir, (long long)wall_time, host, (int)getpid()))) {
        free(w);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    if (!(w->f = fopen(w->path, "wbx"))) {
        rc = bd_seterr(BD_EIO, "cannot create '%s': %s", w->path, strerror(errno));
        free(w->path);
        free(w);
        return rc;
    }
    Bodhi__Tfevents__Event ev = BODHI__TFEVENTS__EVENT__INIT;
    ev.wall_time = wall_time;
    ev.what_case = BODHI__TFEVENTS__EVENT__WHAT_FILE_VERSION;
    ev.file_version = (char *)"brain.Event:2";
    if ((rc = write_event(w, &ev))) {
        bd_tfevents_close(w);
        return rc;
    }
    *out = w;
    return BD_OK;
}

int bd_tfevents_scalars(bd_tfevents *w, double wall_time, int64_t step, int n, const char *const *tag,
                        const double *value)
{
    if (n < 0)
        return bd_seterr(BD_EINVAL, "bd_tfevents_scalars: %d scalars", n);
    Bodhi__Tfevents__SummaryValue *vals = calloc((size_t)n + 1, sizeof *vals);
    Bodhi__Tfevents__SummaryValue **ptrs = calloc((size_t)n + 1, sizeof *ptrs);
    if (!vals || !ptrs) {
        free(vals);
        free(ptrs);
        return bd_seterr(BD_ENOMEM, "out of memory for %d scalars", n);
    }
    for (int i = 0; i < n; i++) {
        bodhi__tfevents__summary_value__init(&vals[i]);
        vals[i].tag = (char *)tag[i];
        vals[i].simple_value = (float)value[i];
        ptrs[i] = &vals[i];
    }
    Bodhi__Tfevents__Summary sum = BODHI__TFEVENTS__SUMMARY__INIT;
    sum.n_value = (size_t)n;
    sum.value = ptrs;
    Bodhi__Tfevents__Event ev = BODHI__TFEVENTS__EVENT__INIT;
    ev.wall_time = wall_time;
    ev.step = step;
    ev.what_case = BODHI__TFEVENTS__EVENT__WHAT_SUMMARY;
    ev.summary = &sum;
    int rc = write_event(w, &ev);
    free(vals);
    free(ptrs);
    return rc;
}

/* The keys of an update event that are bookkeeping, not metrics. */
static const char *const not_metrics[] = {"sender", "t", "round", "update", "steps", "minflt", "muscles",
                                          "refused_rollouts", NULL};

int bd_update_metrics(const cJSON *o, const char **tag, double *value, int max)
{
    int n = 0;
    for (const cJSON *x = o ? o->child : NULL; x && n < max; x = x->next) {
        if (!cJSON_IsNumber(x) || !x->string)
            continue;
        int skip = 0;
        for (int i = 0; not_metrics[i] && !skip; i++)
            skip = strcmp(x->string, not_metrics[i]) == 0;
        if (!skip) {
            tag[n] = x->string;
            value[n++] = x->valuedouble;
        }
    }
    return n;
}

int bd_tfevents_update(bd_tfevents *w, const cJSON *o)
{
    const char *tag[BD_UPDATE_METRICS_MAX];
    double value[BD_UPDATE_METRICS_MAX];
    int n = bd_update_metrics(o, tag, value, BD_UPDATE_METRICS_MAX);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "t"), *steps = cJSON_GetObjectItemCaseSensitive(o, "steps");
    if (n == 0 || !cJSON_IsNumber(steps))
        return BD_OK;
    return bd_tfevents_scalars(w, cJSON_IsNumber(t) ? t->valuedouble : 0, (int64_t)steps->valuedouble, n, tag, value);
}

const char *bd_tfevents_path(const bd_tfevents *w)
{
    return w->path;
}

int bd_tfevents_close(bd_tfevents *w)
{
    if (!w)
        return BD_OK;
    int rc = BD_OK;
    if (w->f && fclose(w->f) != 0)
        rc = bd_seterr(BD_EIO, "cannot close '%s': %s", w->path, strerror(errno));
    free(w->path);
    free(w);
    return rc;
}
