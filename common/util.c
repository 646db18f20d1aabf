/* util.c: clocks, files and folders (see util.h). */
#define _GNU_SOURCE
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

double bd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bd_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bd_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_sha256(data, len, d, 0);
#else
    mbedtls_sha256_ret(data, len, d, 0);
#endif
    bd_hex(d, sizeof d, out);
}

void bd_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int bd_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int bd_unhex(const char *text, uint8_t *out, size_t n)
{
    memset(out, 0, n);
    if (!text || strnlen(text, 2 * n + 1) != 2 * n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const int hi = bd_hex_digit(text[2 * i]), lo = bd_hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            memset(out, 0, n);
            return 0;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

int bd_dir_private(const char *dir)
{
    const uid_t me = geteuid();
    struct stat st;
    if (lstat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return BD_OK; /* not a folder: the run's own checks say so */
        if (st.st_uid != me)
            return bd_seterr(BD_EINVAL, "%s belongs to uid %d, not to you (uid %d): a run folder must be yours "
                             "(choose another --out)", dir, (int)st.st_uid, (int)me);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
            return bd_seterr(BD_EINVAL, "%s may be written by others (mode %04o): they could change what the "
                             "run reads; run chmod go-w %s, or choose another --out", dir,
                             (unsigned)(st.st_mode & 07777), dir);
    }
    /* the folders above it: from the nearest that exists up to / */
    char *up = bd_strdup(dir);
    if (!up)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (;;) {
        char *slash = strrchr(up, '/');
        if (!slash) {
            strcpy(up, ".");
            break;
        }
        *(slash == up ? slash + 1 : slash) = '\0';
        if (lstat(up, &st) == 0 || strcmp(up, "/") == 0)
            break;
    }
    char *real = realpath(up, NULL);
    free(up);
    if (!real)
        return BD_OK; /* the run's own checks say why it cannot be made */
    int rc = BD_OK;
    for (;;) {
        if (stat(real, &st) == 0 && rc == BD_OK) {
            if (st.st_uid != me && st.st_uid != 0)
                rc = bd_seterr(BD_EINVAL, "%s (above the run folder %s) belongs to uid %d: its owner could move the "
                               "run folder away and put another in its place (choose another --out)", real, dir,
                               (int)st.st_uid);
            else if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
                rc = bd_seterr(BD_EINVAL, "%s (above the run folder %s) may be written by others (mode %04o) and is "
                               "not sticky: they could move the run folder away and put another in its place "
                               "(choose another --out)", real, dir, (unsigned)(st.st_mode & 07777));
        }
        char *slash = strrchr(real, '/');
        if (!slash || strcmp(real, "/") == 0)
            break;
        *(slash == real ? slash + 1 : slash) = '\0';
    }
    free(real);
    return rc;
}

int bd_mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return bd_seterr(BD_EINVAL, "bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return bd_seterr(BD_EIO, "cannot create directory '%s': %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return bd_seterr(BD_EIO, "'%s' is not a directory", path);
    return BD_OK;
}

static int bd_read_stream_max(FILE *f, const char *path, size_t max, char **out, size_t *len);

int bd_read_file(const char *path, char **out, size_t *len)
{
    return bd_read_file_max(path, SIZE_MAX - 1, out, len);
}

int bd_read_file_max(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bd_seterr(errno == ENOENT ? BD_ENOTFOUND : BD_EIO, "%s: %s", path, strerror(errno));
    return bd_read_stream_max(f, path, max, out, len);
}

int bd_read_fd_max(int fd, const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return bd_seterr(BD_EIO, "%s: %s", path, strerror(e));
    }
    return bd_read_stream_max(f, path, max, out, len);
}

/* Reads f to its end (at most max bytes) and closes it. */
static int bd_read_stream_max(FILE *f, const char *path, size_t max, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return bd_seterr(BD_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return bd_seterr(BD_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
        if (n > max) {
            free(buf);
            fclose(f);
            return bd_seterr(BD_EINVAL, "%s: more than %zu bytes", path, max);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return bd_seterr(BD_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return BD_OK;
}

int bd_write_file(const char *path, const void *data, size_t len)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return bd_seterr(BD_EINVAL, "path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return bd_seterr(BD_EIO, "%s: %s", tmp, strerror(errno));
    size_t w = fwrite(data, 1, len, f);
    int bad = (w != len) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
    bad |= fclose(f) != 0;
    if (bad) {
        unlink(tmp);
        return bd_seterr(BD_EIO, "%s: write failed", path);
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return bd_seterr(BD_EIO, "%s: rename failed: %s", path, strerror(errno));
    }
    return BD_OK;
}

char *bd_strfmt(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    return r < 0 ? NULL : s;
}

int bd_parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi)
        return BD_EINVAL;
    *out = v;
    return BD_OK;
}

int bd_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno || end == s || *end || !(v >= lo && v <= hi))
        return BD_EINVAL;
    *out = v;
    return BD_OK;
}

double bd_phys_bytes(void)
{
    double b = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    return b > 0 ? b : 0;
}

char *bd_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *bd_text_printable(char *s)
{
    for (unsigned char *p = (unsigned char *)s; p && *p;) {
        if (*p < 0x80) { /* ASCII: its controls */
            if (*p < 0x20 || *p == 0x7f)
                *p = '?';
            p++;
            continue;
        }
        /* UTF-8: a whole character stays, but not the C1 controls (U+0080 to U+009F, C2 80
         * to C2 9F: CSI and OSC among them); a byte that starts no whole character, which an
         * 8-bit terminal may take for a C1 control, becomes '?' */
        const int len = *p >= 0xf0 && *p <= 0xf4 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 && *p <= 0xdf ? 2 : 0;
        int whole = len > 0;
        for (int i = 1; whole && i < len; i++)
            whole = (p[i] & 0xc0) == 0x80;
        if (whole && !(p[0] == 0xc2 && p[1] < 0xa0)) {
            p += len;
            continue;
        }
        *p++ = '?';
        if (whole) /* a C1 control's second byte */
            *p++ = '?';
    }
    return s;
}

int bd_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

const char *bd_bytes_text(double b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    int u = 0;
    while (b >= 1000 && u < 5) {
        b /= 1000;
        u++;
    }
    snprintf(buf, len, u ? "%.3g %s" : "%.0f %s", b, units[u]);
    return buf;
}
