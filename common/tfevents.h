/* tfevents.h: TensorBoard event files of scalars (what `tensorboard --logdir` reads).
 * A file is a sequence of records: uint64 length (little-endian), uint32 masked CRC32C of
 * those 8 bytes, the data (an Event protobuf, common/tfevents.proto, encoded by protobuf-c),
 * uint32 masked CRC32C of the data. The first event names the file version
 * ("brain.Event:2"); each later one holds the scalars of one step.
 * Every write is flushed, so a reader (TensorBoard on a live run) sees whole records. */
#ifndef BODHI_COMMON_TFEVENTS_H
#define BODHI_COMMON_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct bd_tfevents bd_tfevents;

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of n bytes, and TensorBoard's mask
 * of it: ((crc >> 15) | (crc << 17)) + 0xa282ead8. */
uint32_t bd_crc32c(const void *data, size_t n);
uint32_t bd_crc32c_masked(const void *data, size_t n);

/* Creates dir (mkdir -p) and in it events.out.tfevents.<wall seconds>.<host>.<pid>, and
 * writes the file-version event. */
int bd_tfevents_open(const char *dir, double wall_time, bd_tfevents **out);

/* One event at step: n scalars tag[i] = value[i] (as float32, TensorBoard's simple_value). */
int bd_tfevents_scalars(bd_tfevents *w, double wall_time, int64_t step, int n, const char *const *tag,
                        const double *value);

/* The metrics of one `update` event of log.jsonl (brain/brain.c): every number but its
 * bookkeeping (sender, t, round, update, steps, minflt, muscles, refused_rollouts), at most
 * max, in the event's order; tag[i] points into o. Returns how many. */
#define BD_UPDATE_METRICS_MAX 64
struct cJSON;
int bd_update_metrics(const struct cJSON *o, const char **tag, double *value, int max);

/* The metrics of update event o as one event at its `steps` (the agent's env steps) and
 * time `t`; nothing when it has none. */
int bd_tfevents_update(bd_tfevents *w, const struct cJSON *o);

/* The file's path (owned by w). */
const char *bd_tfevents_path(const bd_tfevents *w);

/* Closes the file; NULL is a no-op. Returns BD_EIO when the last writes did not reach it. */
int bd_tfevents_close(bd_tfevents *w);

#endif
