/* obsnorm.c: running observation normalisation (see obsnorm.h). */
#include "brain/obsnorm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/util.h"

void bd_obsnorm_init(bd_obsnorm *o, int s)
{
    o->s = s;
    o->count = 1e-4;
    for (int k = 0; k < s; k++) {
        o->mean[k] = 0;
        o->var[k] = 1;
    }
}

void bd_obsnorm_update(bd_obsnorm *o, const float *obs, size_t n)
{
    if (n == 0)
        return;
    for (int k = 0; k < o->s; k++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < n; i++)
            m += obs[i * (size_t)o->s + (size_t)k];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = obs[i * (size_t)o->s + (size_t)k] - m;
            v += d * d;
        }
        v /= (double)n;
        bd_obsnorm_merge_one(o, k, (double)n, m, v);
    }
    o->count += (double)n;
}

void bd_obsnorm_merge_one(bd_obsnorm *o, int k, double n, double m, double v)
{
    double tot = o->count + n, delta = m - o->mean[k];
    o->mean[k] += delta * n / tot;
    o->var[k] = (o->var[k] * o->count + v * n + delta * delta * o->count * n / tot) / tot;
}

void bd_obsnorm_sums(const bd_obsnorm *o, const float *obs, size_t n, double *x)
{
    const size_t s = (size_t)o->s;
    x[0] = (double)n;
    for (size_t k = 0; k < s; k++) {
        double a = 0, b = 0;
        for (size_t i = 0; i < n; i++) {
            double v = obs[i * s + k];
            a += v;
            b += v * v;
        }
        x[1 + k] = a;
        x[1 + s + k] = b;
    }
}

void bd_obsnorm_update_sums(bd_obsnorm *o, const double *x)
{
    const double n = x[0];
    if (!(n > 0))
        return;
    for (int k = 0; k < o->s; k++) {
        double m = x[1 + k] / n, v = x[1 + o->s + k] / n - m * m;
        bd_obsnorm_merge_one(o, k, n, m, v > 0 ? v : 0);
    }
    o->count += n;
}

void bd_obsnorm_coeffs(const bd_obsnorm *o, float *mean, float *inv)
{
    for (int k = 0; k < o->s; k++) {
        mean[k] = (float)o->mean[k];
        inv[k] = (float)(1.0 / sqrt(o->var[k] + 1e-8));
    }
}

void bd_obsnorm_apply(const bd_obsnorm *o, const float *obs, float *out, size_t n)
{
    float mean[BD_OBSNORM_MAX], inv[BD_OBSNORM_MAX];
    bd_obsnorm_coeffs(o, mean, inv);
    /* the muscles' bd_act_gather computes the same expression on the same floats */
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < o->s; k++) {
            float x = (obs[i * (size_t)o->s + (size_t)k] - mean[k]) * inv[k];
            out[i * (size_t)o->s + (size_t)k] = x < -10.0f ? -10.0f : x > 10.0f ? 10.0f : x;
        }
}

void bd_obsnorm_pack(const bd_obsnorm *o, float *dst)
{
    bd_obsnorm_coeffs(o, dst, dst + o->s);
}

int bd_obsnorm_save(const bd_obsnorm *o, const char *path)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "count", o->count);
    cJSON_AddItemToObject(j, "mean", cJSON_CreateDoubleArray(o->mean, o->s));
    cJSON_AddItemToObject(j, "var", cJSON_CreateDoubleArray(o->var, o->s));
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    int rc = text ? bd_write_file(path, text, strlen(text)) : bd_seterr(BD_ENOMEM, "out of memory");
    free(text);
    return rc;
}

int bd_obsnorm_load(bd_obsnorm *o, const char *path)
{
    char *text;
    int rc = bd_read_file(path, &text, NULL);
    if (rc != BD_OK)
        return rc;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "count");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "mean");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "var");
    if (!cJSON_IsNumber(c) || !cJSON_IsArray(m) || !cJSON_IsArray(v)
        || cJSON_GetArraySize(m) != o->s || cJSON_GetArraySize(v) != o->s) {
        cJSON_Delete(j);
        return bd_seterr(BD_EINVAL, "%s: not an observation normaliser for %d sensors", path, o->s);
    }
    o->count = c->valuedouble;
    for (int k = 0; k < o->s; k++) {
        o->mean[k] = cJSON_GetArrayItem(m, k)->valuedouble;
        o->var[k] = cJSON_GetArrayItem(v, k)->valuedouble;
    }
    cJSON_Delete(j);
    return BD_OK;
}
