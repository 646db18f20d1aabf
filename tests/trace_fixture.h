/* trace_fixture.h: traces with known contents, for the suites that test memory/'s writer
 * and readers and cli/'s replay. Every element is a function of its position (exact in
 * float32), so a reader's result can be checked cell by cell. */
#ifndef BODHI_TESTS_TRACE_FIXTURE_H
#define BODHI_TESTS_TRACE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "memory/memory.h"

/* /tmp/bd_mem_<pid>_<tag> into buf. */
const char *tmp_path(char *buf, size_t len, const char *tag);
void rm_rf(const char *path);

extern const char *const SENSOR_IDS[4];
extern const char *const ACTUATOR_IDS[2];

/* A cartpole-like spec: S <= 4 sensors, U <= 2 actuators, seed 42. */
bd_trace_spec make_spec(const char *path, const char *phase, const char *agent, int n, int s, int u);

float sensor_val(int64_t t, int w, int k);
float actuator_val(int64_t t, int w, int k);
float reward_val(int64_t t, int w);
uint8_t term_val(int64_t t, int w);
uint8_t trunc_val(int64_t t, int w);

typedef struct {
    float *sen, *act, *rew;
    uint8_t *term, *trunc;
} rows_buf;

/* Rows [t0, t0+T) for N worlds: sensors (T,N,S), actuators (T,N,U), rest (T,N). */
rows_buf make_rows(int64_t t0, int T, int N, int S, int U);
void free_rows(rows_buf *b);
void append_rows(bd_trace_writer *w, int64_t t0, int T, int N, int S, int U);

/* Reads every dataset of /phase/agent in path and compares it with make_rows(0, T, ...). */
void check_rows(const char *path, const char *phase, const char *agent, int64_t T, int N, int S, int U);
/* Reads the episodes table and compares it with want (n of them). */
void check_episodes(const char *path, const char *phase, const char *agent, const bd_episode *want,
                    int64_t n);

bd_episode ep(int world, int64_t start, int len, float ret, int term);

/* A consistent trace: episodes of varying length per world whose return is the float sum
 * of their rewards, reported after the batch they end in. corrupt != 0 adds that much to
 * one episode's return. Returns the episode count; *rows (may be NULL) the rows. */
int64_t write_consistent(const char *path, const char *phase, const char *agent, int N,
                         const int *batches, int nb, float corrupt, int64_t *rows);

/* Copies the first half of src to dst. */
void copy_half(const char *src, const char *dst);

#endif
