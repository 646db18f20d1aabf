/* error.c: bd_strerror and the thread-local error detail (see include/bodhi/bodhi.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bodhi/bodhi.h"

static _Thread_local char bd_errbuf[4096];

static const char *const bd_errtext[BD_ERR_COUNT] = {
    [BD_OK] = "success",
    [BD_ENOMEM] = "out of memory",
    [BD_EINVAL] = "invalid argument",
    [BD_EIO] = "input/output error",
    [BD_EPARSE] = "parse error",
    [BD_EPROTO] = "protocol error",
    [BD_EVERSION] = "version mismatch",
    [BD_ENOTFOUND] = "not found",
    [BD_ENODEV] = "device not available",
    [BD_ETORCH] = "libtorch error",
    [BD_EHDF5] = "HDF5 error",
    [BD_ENNG] = "NNG error",
    [BD_ECUDA] = "CUDA error",
    [BD_EINTR] = "interrupted",
    [BD_ETIMEDOUT] = "timed out",
    [BD_ECLOSED] = "peer closed",
    [BD_ESTATE] = "invalid state",
};

const char *bd_strerror(int err)
{
    if (err < 0 || err >= BD_ERR_COUNT)
        return "unknown error";
    return bd_errtext[err];
}

/* Formatted apart, then copied: a caller that wraps the last error in a new one passes
 * bd_lasterr() (this very buffer) as an argument, and vsnprintf into the buffer it reads
 * from garbled the message ("... did not form within 60 s: rank 1 of 2: the learner group
 * ... did not form within 60 s: dezvous found no ..."). */
int bd_seterr(int err, const char *fmt, ...)
{
    char tmp[sizeof bd_errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(bd_errbuf, tmp, sizeof bd_errbuf);
    return err;
}

const char *bd_lasterr(void)
{
    return bd_errbuf;
}

const char *bd_version(void)
{
    return BODHI_VERSION;
}
