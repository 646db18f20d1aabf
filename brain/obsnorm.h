/* obsnorm.h: running observation normalisation (CleanRL's NormalizeObservation): per
 * sensor mean and variance over every observation seen so far (parallel merge of batch
 * moments, float64), applied as clip((x - mean) / sqrt(var + 1e-8), -10, 10).
 * The brain updates it from each collected batch (after learning on that batch with the
 * statistics its muscles used) and sends its float coefficients after the weights;
 * muscles apply those before inference (muscle/act.h), as the learner does. Checkpoints keep it beside the policy as <checkpoint>.obsnorm.json. */
#ifndef BODHI_BRAIN_OBSNORM_H
#define BODHI_BRAIN_OBSNORM_H

#include <stddef.h>

#include "bodhi/bodhi.h"

#define BD_OBSNORM_MAX 4096

typedef struct {
    int s;                      /* sensors */
    double count;               /* observations merged (starts at 1e-4 like CleanRL) */
    double mean[BD_OBSNORM_MAX], var[BD_OBSNORM_MAX];
} bd_obsnorm;

void bd_obsnorm_init(bd_obsnorm *o, int s);

/* Merges n observations (n, s) into the statistics. */
void bd_obsnorm_update(bd_obsnorm *o, const float *obs, size_t n);

/* Merges the moments of n observations of sensor k (mean m, variance v); the caller adds
 * n to count once for every sensor. */
void bd_obsnorm_merge_one(bd_obsnorm *o, int k, double n, double m, double v);
/* Learners of one group (ranks): each takes the sums of its own n observations (x: 1 + 2s
 * doubles: n, then per sensor the sum and the sum of squares), the group sums them over
 * its learners, and each merges the group's sums: every rank ends with the same
 * statistics, those of every rank's observations. */
void bd_obsnorm_sums(const bd_obsnorm *o, const float *obs, size_t n, double *x);
void bd_obsnorm_update_sums(bd_obsnorm *o, const double *x);
/* out (n, s) = normalised obs (n, s); out may equal obs. */
void bd_obsnorm_apply(const bd_obsnorm *o, const float *obs, float *out, size_t n);

/* The float mean and inverse standard deviation (1 / sqrt(var + 1e-8)) per sensor that
 * bd_obsnorm_apply uses; the muscles get these same floats, so the learner and the
 * muscles normalise bit for bit alike. */
void bd_obsnorm_coeffs(const bd_obsnorm *o, float *mean, float *inv);

/* As 2*s floats (the coefficients: means then inverse standard deviations) for a WEIGHTS
 * message. */
void bd_obsnorm_pack(const bd_obsnorm *o, float *dst);

/* JSON side file next to a checkpoint. Load: BD_ENOTFOUND when absent, BD_EINVAL when it
 * does not match s. */
int bd_obsnorm_save(const bd_obsnorm *o, const char *path);
int bd_obsnorm_load(bd_obsnorm *o, const char *path);

#endif
