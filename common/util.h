/* util.h: small process-wide helpers: clocks, files and folders.
 * All return BD_OK or a bd_err code with bd_lasterr() naming the path. */
#ifndef BODHI_COMMON_UTIL_H
#define BODHI_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "bodhi/bodhi.h"

/* Monotonic seconds (CLOCK_MONOTONIC). */
double bd_now(void);

/* Wall-clock seconds since the epoch. */
double bd_wall(void);

/* mkdir -p path (mode 0755). */
int bd_mkdirs(const char *path);

/* Reads a whole file into a NUL-terminated heap buffer (*out, caller frees); *len may be NULL. */
int bd_read_file(const char *path, char **out, size_t *len);
/* The same, refusing (BD_EINVAL) a file or pipe of more than max bytes. */
int bd_read_file_max(const char *path, size_t max, char **out, size_t *len);
/* The same from an open descriptor (path names it in errors), which it closes. */
int bd_read_fd_max(int fd, const char *path, size_t max, char **out, size_t *len);

/* Writes len bytes to path through path.tmp + rename, so readers never see half a file. */
int bd_write_file(const char *path, const void *data, size_t len);

/* snprintf into a heap string; NULL when out of memory. Caller frees. */
char *bd_strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A byte count as people read it, in decimal units as df -H says them ("920 MB",
 * "1.5 GB", "12 B") into buf; returns buf. */
const char *bd_bytes_text(double bytes, char *buf, size_t len);

/* s as a decimal integer (bd_parse_ll) or a number (bd_parse_double) in [lo, hi] into
 * *out: BD_OK, or BD_EINVAL for NULL, an empty string, trailing text, overflow, NaN or a
 * value out of range (*out untouched). For command-line options. */
int bd_parse_ll(const char *s, long long lo, long long hi, long long *out);
int bd_parse_double(const char *s, double lo, double hi, double *out);

/* This machine's memory in bytes (0 when it cannot say). */
double bd_phys_bytes(void);

/* strdup that tolerates NULL (returns NULL). */
char *bd_strdup(const char *s);

/* Text a peer (or a file) gave, made safe to print on a terminal, in place: every ASCII
 * control byte (below 0x20, 0x7f), every C1 control in UTF-8 (C2 80 to C2 9F) and every
 * byte that starts no whole UTF-8 character (an 8-bit terminal may take 0x9b for CSI)
 * becomes '?', so that it cannot move the cursor, clear the screen or start a line that
 * looks like bodhi's own; whole UTF-8 characters stay. Returns s. */
char *bd_text_printable(char *s);

/* Returns 1 when path exists. */
int bd_exists(const char *path);

/* n bytes as 2n lowercase hex digits and a NUL. */
void bd_hex(const uint8_t *p, size_t n, char *out);

/* The n bytes that text, exactly 2n hex digits, spells into out: 1, or 0 (out zeroed) when
 * text is anything else (shorter, longer, a sign, a space, "0x"). */
int bd_unhex(const char *text, uint8_t *out, size_t n);

/* The SHA-256 of len bytes at data, as 64 lowercase hex digits and a NUL (mbedTLS). */
void bd_sha256_hex(const void *data, size_t len, char out[65]);

/* A run folder no one else can touch: BD_OK when dir, if it exists, is a folder of this
 * user that no one else may write in, and every folder above it (or above where it will
 * be made) belongs to this user or root and is not writable by others unless sticky (as
 * /tmp), so no one else can rename it away and put another in its place. Else BD_EINVAL
 * naming the folder, its owner or mode, and what to do. */
int bd_dir_private(const char *dir);

#endif
