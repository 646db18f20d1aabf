/* bodhi.h: the error codes and small helpers every bodhi module and plugin shares.
 *
 * Library code returns an int: BD_OK (0) or one of the bd_err codes below. A function
 * that fails also records a human-readable detail (what, and where: a file, a line, a
 * key) in a thread-local buffer, read with bd_lasterr(). Only the edges (CLI, test
 * programs) print errors and exit.
 */
#ifndef BODHI_BODHI_H
#define BODHI_BODHI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* BD_API marks the functions a shared bodhi library exports: libbodhi_env.so is compiled
 * with hidden visibility, so these (bodhi.h's errors and bodhi/env.h's engine) are all a
 * program linking it sees. Inside the static libraries it changes nothing. */
#if defined(__GNUC__)
#define BD_API __attribute__((visibility("default")))
#else
#define BD_API
#endif

typedef enum bd_err {
    BD_OK = 0,
    BD_ENOMEM,    /* out of memory */
    BD_EINVAL,    /* invalid argument or value */
    BD_EIO,       /* file or system I/O failed */
    BD_EPARSE,    /* malformed input text (YAML, JSON) */
    BD_EPROTO,    /* malformed or unexpected message */
    BD_EVERSION,  /* protocol or file version mismatch */
    BD_ENOTFOUND, /* no such file, key, env, brain, phase or agent */
    BD_ENODEV,    /* the requested device (e.g. cuda) is not available */
    BD_ETORCH,    /* libtorch raised an error */
    BD_EHDF5,     /* HDF5 call failed */
    BD_ENNG,      /* NNG call failed */
    BD_ECUDA,     /* CUDA call failed */
    BD_EINTR,     /* interrupted by a signal */
    BD_ETIMEDOUT, /* timed out */
    BD_ECLOSED,   /* peer went away */
    BD_ESTATE,    /* call not valid in this state */
    BD_ERR_COUNT
} bd_err;

/* Where a batch's buffers live and its work runs. */
typedef enum { BD_DEVICE_CPU = 0, BD_DEVICE_CUDA = 1 } bd_device;

/* Short fixed text for an error code; never NULL. */
BD_API const char *bd_strerror(int err);

/* Records a printf-style detail for the calling thread and returns err, so that
 * library code can write `return bd_seterr(BD_EINVAL, "worlds must be > 0");`. */
BD_API int bd_seterr(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The detail recorded by the last bd_seterr on this thread ("" if none). */
BD_API const char *bd_lasterr(void);

/* bodhi's version string ("0.1.0"). */
BD_API const char *bd_version(void);

#ifdef __cplusplus
}
#endif
#endif
