/* cpunet.c: the policy network in plain C (cpunet.h): BLAS for the Linear layers, SLEEF
 * for tanh, both called as libtorch's CPU kernels call them. */
#include "torch/cpunet.h"

#include <math.h>
#include <pthread.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "bodhi/bodhi.h"
#include "bodhi/rng.h"

/* BLAS (the system's libblas, OpenBLAS here: the one libtorch calls), Fortran interface. */
extern void sgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k,
                   const float *alpha, const float *a, const int *lda, const float *b, const int *ldb,
                   const float *beta, float *c, const int *ldc);

/* LAPACK (the system's liblapack), Fortran interface: QR and its Q. */
extern void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau, float *work, const int *lwork,
                    int *info);
extern void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda, const float *tau, float *work,
                    const int *lwork, int *info);

/* cpunet_avx2.c, cpunet_avx512.c (torch/cpunet_tanh.h, built for those instruction sets;
 * called only where the CPU has them): tanh over x[0, len) as ATen's vec::map computes it. */
void bdt_cpunet_tanh_avx2(float *x, size_t len);
void bdt_cpunet_tanh_avx512(float *x, size_t len);

typedef enum { BDT_ISA_DEFAULT, BDT_ISA_AVX2, BDT_ISA_AVX512 } bdt_isa;

static pthread_once_t bdt_isa_once = PTHREAD_ONCE_INIT;
static bdt_isa bdt_isa_now;

/* What libtorch 1.13's CPU dispatch picks (ATen's compute_cpu_capability): the
 * ATEN_CPU_CAPABILITY variable when it names one, else AVX2 with FMA where the CPU has
 * them (AVX-512 only when asked for). */
static void bdt_isa_pick(void)
{
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                 && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && avx2;
    const char *e = getenv("ATEN_CPU_CAPABILITY");
    if (e && strcmp(e, "default") == 0)
        bdt_isa_now = BDT_ISA_DEFAULT;
    else if (e && strcmp(e, "avx512") == 0 && avx512)
        bdt_isa_now = BDT_ISA_AVX512;
    else
        bdt_isa_now = avx2 ? BDT_ISA_AVX2 : BDT_ISA_DEFAULT;
}

void bdt_cpunet_tanh(float *x, size_t len)
{
    pthread_once(&bdt_isa_once, bdt_isa_pick);
    switch (bdt_isa_now) {
    case BDT_ISA_AVX512:
        bdt_cpunet_tanh_avx512(x, len);
        return;
    case BDT_ISA_AVX2:
        bdt_cpunet_tanh_avx2(x, len);
        return;
    default:
        for (size_t i = 0; i < len; i++)
            x[i] = tanhf(x[i]);
    }
}

int bdt_cpunet_init(bdt_cpunet *n, const bdt_policy_config *cfg, int rows)
{
    memset(n, 0, sizeof *n);
    if (!cfg || rows < 0)
        return bd_seterr(BD_EINVAL, "bdt_cpunet_init: no config or rows < 0");
    if (cfg->act_kind != BDT_DISCRETE && cfg->act_kind != BDT_CONTINUOUS && cfg->act_kind != BDT_Q
        && cfg->act_kind != BDT_SQUASHED)
        return bd_seterr(BD_EINVAL, "bdt_cpunet_init: act_kind %d has no C network", (int)cfg->act_kind);
    if (cfg->device != BDT_CPU)
        return bd_seterr(BD_EINVAL, "bdt_cpunet_init: the C network runs on the CPU alone");
    uint64_t count = bdt_policy_param_count_of(cfg);
    if (count == 0 || cfg->hidden > (1 << 16) || cfg->obs_dim > (1 << 20) || cfg->act_dim > (1 << 20))
        return bd_seterr(BD_EINVAL, "bdt_cpunet_init: a network of %d x %d over %d inputs and %d outputs "
                         "is out of range", cfg->layers, cfg->hidden, cfg->obs_dim, cfg->act_dim);
    n->cfg = *cfg;
    n->count = (size_t)count;
    n->rows = rows;
    size_t cells = (size_t)(rows ? rows : 1) * (size_t)cfg->hidden;
    n->h0 = malloc(sizeof(float) * cells);
    n->h1 = malloc(sizeof(float) * cells);
    if (cfg->act_kind == BDT_Q) /* the Q-values a value (the greedy action's) is taken from */
        n->q = malloc(sizeof(float) * (size_t)(rows ? rows : 1) * (size_t)cfg->act_dim);
    if (!n->h0 || !n->h1 || (cfg->act_kind == BDT_Q && !n->q)) {
        bdt_cpunet_fini(n);
        return bd_seterr(BD_ENOMEM, "bdt_cpunet_init: out of memory for %d rows of %d", rows, cfg->hidden);
    }
    return BD_OK;
}

void bdt_cpunet_fini(bdt_cpunet *n)
{
    if (!n)
        return;
    free(n->h0);
    free(n->h1);
    free(n->q);
    memset(n, 0, sizeof *n);
}

const float *bdt_cpunet_logstd(const bdt_cpunet *n, const float *params)
{
    return n->cfg.act_kind == BDT_CONTINUOUS ? params : NULL;
}

/* y (rows, out) = x (rows, in) W^T + b for W (out, in) row-major: libtorch's addmm for a
 * Linear layer: the bias copied into the result, then one sgemm with beta 1 onto it, its
 * operands arranged as ATen arranges them. A (rows, out) result is row-major, which ATen
 * computes as its transpose (sgemm "t","n": W^T x^T); with out = 1 its strides are
 * those of a column too, and ATen keeps it as it is (sgemm "t","n": x W^T). Leading
 * dimensions as ATen normalises them where a dimension is 1. */
void bdt_cpunet_linear(const float *x, int rows, int in, const float *W, const float *b, int out, float *y)
{
    for (int r = 0; r < rows; r++)
        memcpy(y + (size_t)r * (size_t)out, b, sizeof(float) * (size_t)out);
    const float one = 1.0f;
    if (out == 1) {
        int m = rows, nn = 1, k = in, lda = in, ldb = in, ldc = rows;
        sgemm_("t", "n", &m, &nn, &k, &one, x, &lda, W, &ldb, &one, y, &ldc);
        return;
    }
    int m = out, nn = rows, k = in, lda = in, ldb = in, ldc = out;
    sgemm_("t", "n", &m, &nn, &k, &one, W, &lda, x, &ldb, &one, y, &ldc);
}

/* ReLU in place, as libtorch's CPU kernel computes it (clamp_min(x, 0): x unless x < 0,
 * so a NaN and -0 are kept). */
void bdt_cpunet_relu(float *x, size_t len)
{
    /* a select, not a branch: it vectorises, and a branch on signs that are as often one
     * way as the other is mispredicted half the time */
    for (size_t i = 0; i < len; i++)
        x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* Column-major thinking, as BLAS: x (rows, in) row-major is an (in, rows) matrix of leading
 * dimension in, dz (rows, out) an (out, rows) one of leading dimension out, W (out, in) an
 * (in, out) one of leading dimension in. dW (out, in) row-major, (in, out) column-major, is
 * x' dz'^T: sgemm "n","t"; dx (rows, in), (in, rows) column-major, is W' dz': sgemm "n","n". */
void bdt_cpunet_linear_backward(const float *dz, const float *x, int rows, int in, const float *W, int out,
                                float *dW, float *db, float *dx)
{
    const float one = 1.0f, zero = 0.0f;
    sgemm_("n", "t", &in, &out, &rows, &one, x, &in, dz, &out, &zero, dW, &in);
    for (int j = 0; j < out; j++)
        db[j] = 0.0f;
    for (int r = 0; r < rows; r++) {
        const float *d = dz + (size_t)r * (size_t)out;
        for (int j = 0; j < out; j++)
            db[j] += d[j];
    }
    if (!dx)
        return;
    sgemm_("n", "n", &in, &rows, &out, &one, W, &in, dz, &out, &zero, dx, &in);
    const size_t len = (size_t)rows * (size_t)in;
    for (size_t i = 0; i < len; i++) /* threshold_backward's: 0 where x <= 0 (a NaN passes); a select */
        dx[i] = x[i] <= 0.0f ? 0.0f : dx[i];
}

/* One trunk (Linear, then tanh for the actor-critic or ReLU for a Q-network or a squashed
 * Gaussian) x layers then its head Linear(h, outs), params from p; returns the end of its
 * parameters. */
static const float *bdt_trunk(bdt_cpunet *n, const float *p, const float *obs, int rows, int outs, float *y)
{
    const int relu = n->cfg.act_kind == BDT_Q || n->cfg.act_kind == BDT_SQUASHED;
    const int S = n->cfg.obs_dim, h = n->cfg.hidden;
    const float *x = obs;
    int in = S;
    float *buf[2] = {n->h0, n->h1};
    for (int l = 0; l < n->cfg.layers; l++) {
        float *z = buf[l & 1];
        const float *W = p, *b = p + (size_t)h * (size_t)in;
        bdt_cpunet_linear(x, rows, in, W, b, h, z);
        if (relu)
            bdt_cpunet_relu(z, (size_t)rows * (size_t)h);
        else
            bdt_cpunet_tanh(z, (size_t)rows * (size_t)h);
        p = b + h;
        x = z;
        in = h;
    }
    const float *W = p, *b = p + (size_t)outs * (size_t)h;
    if (y)
        bdt_cpunet_linear(x, rows, h, W, b, outs, y);
    return b + outs;
}

/* The actor-critic: the critic's trunk first, as the flat order has it, then the actor's. */
static void bdt_ac_forward(bdt_cpunet *n, const float *params, const float *obs, int rows, float *out,
                           float *value)
{
    const float *p = params + (n->cfg.act_kind == BDT_CONTINUOUS ? n->cfg.act_dim : 0);
    if (value)
        p = bdt_trunk(n, p, obs, rows, 1, value);
    else {
        const size_t h = (size_t)n->cfg.hidden, S = (size_t)n->cfg.obs_dim;
        p += S * h + h + (size_t)(n->cfg.layers - 1) * (h * h + h) + h + 1;
    }
    if (out)
        bdt_trunk(n, p, obs, rows, n->cfg.act_dim, out);
}

/* A Q-network or a squashed Gaussian: one trunk, no critic. The value is a Q-network's
 * greedy action's (the first largest, a NaN taken for the largest, as torch.max), a
 * squashed Gaussian's 0 (as bdt_policy_forward's). */
static void bdt_one_trunk_forward(bdt_cpunet *n, const float *params, const float *obs, int rows, float *out,
                                  float *value)
{
    const int A = n->cfg.act_dim, q = n->cfg.act_kind == BDT_Q;
    float *y = out ? out : q ? n->q : NULL;
    if (y)
        bdt_trunk(n, params, obs, rows, q ? A : 2 * A, y);
    for (int r = 0; value && r < rows; r++) {
        float v = 0.0f;
        for (int k = 0; q && k < A && v == v; k++) {
            const float x = y[(size_t)r * (size_t)A + (size_t)k];
            if (k == 0 || x > v || x != x)
                v = x;
        }
        value[r] = v;
    }
}

int bdt_cpunet_forward(bdt_cpunet *n, const float *params, const float *obs, int rows, float *out,
                       float *value)
{
    if (!n || !n->h0 || !params || (!obs && rows > 0))
        return bd_seterr(BD_EINVAL, "bdt_cpunet_forward: NULL argument");
    if (rows < 0 || rows > n->rows)
        return bd_seterr(BD_EINVAL, "bdt_cpunet_forward: %d rows, at most %d", rows, n->rows);
    if (rows == 0 || (!out && !value))
        return BD_OK;
#if defined(__SSE2__) /* flush-to-zero and denormals-are-zero, as the shim runs libtorch */
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u);
#endif
    if (n->cfg.act_kind == BDT_Q || n->cfg.act_kind == BDT_SQUASHED)
        bdt_one_trunk_forward(n, params, obs, rows, out, value);
    else
        bdt_ac_forward(n, params, obs, rows, out, value);
#if defined(__SSE2__)
    _mm_setcsr(csr);
#endif
    return BD_OK;
}

/* w (rows, cols) row-major = gain x an orthogonal matrix: Q of the QR of an (m, k) matrix
 * of standard normals (m, k the larger and smaller of rows, cols), each column times the
 * sign of R's diagonal there, transposed when rows < cols. a: m x k floats, tau: k. */
static int bdt_orthogonal(float *w, int rows, int cols, double gain, uint64_t seed, uint32_t layer, float *a,
                          float *tau)
{
    const int m = rows > cols ? rows : cols, k = rows > cols ? cols : rows;
    const size_t mk = (size_t)m * (size_t)k;
    for (size_t e = 0; e < mk; e += 2) { /* Box-Muller on two 32-bit words per pair */
        uint32_t r[4];
        bd_rng_u32x4(seed, layer, (uint64_t)(e / 2), BD_STREAM_INIT, r);
        double u1 = ((double)r[0] + 1.0) / 4294967296.0, u2 = (double)r[1] / 4294967296.0;
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        a[e] = (float)(rad * cos(th));
        if (e + 1 < mk)
            a[e + 1] = (float)(rad * sin(th));
    }
    int info = 0, lwork = -1;
    float q = 0;
    sgeqrf_(&m, &k, a, &m, tau, &q, &lwork, &info);
    lwork = info == 0 && q >= 1 ? (int)q : k * 64;
    float *work = malloc(sizeof(float) * (size_t)(lwork > k ? lwork : k));
    float *sign = malloc(sizeof(float) * (size_t)k);
    if (!work || !sign) {
        free(work);
        free(sign);
        return bd_seterr(BD_ENOMEM, "bdt_policy_init_params: out of memory for a %d x %d layer", rows, cols);
    }
    sgeqrf_(&m, &k, a, &m, tau, work, &lwork, &info);
    for (int j = 0; info == 0 && j < k; j++)
        sign[j] = a[(size_t)j * (size_t)m + (size_t)j] < 0 ? -1.0f : 1.0f;
    if (info == 0)
        sorgqr_(&m, &k, &k, a, &m, tau, work, &lwork, &info);
    for (int i = 0; info == 0 && i < rows; i++)
        for (int j = 0; j < cols; j++) { /* Q (m, k) is column-major */
            size_t qi = rows >= cols ? (size_t)i + (size_t)j * (size_t)m : (size_t)j + (size_t)i * (size_t)m;
            w[(size_t)i * (size_t)cols + (size_t)j] = (float)(gain * (double)a[qi] * (double)sign[rows >= cols ? j : i]);
        }
    free(work);
    free(sign);
    return info == 0 ? BD_OK
                     : bd_seterr(BD_EINVAL, "bdt_policy_init_params: LAPACK's QR of a %d x %d layer failed (%d)", m,
                                 k, info);
}

int bdt_policy_init_params(const bdt_policy_config *cfg, float *dst, size_t n)
{
    uint64_t count = 0; /* bdt_policy_param_count_of's, but with no hidden layer allowed (a linear policy) */
    if (cfg && cfg->layers == 0 && cfg->obs_dim >= 1 && cfg->act_dim >= 1 && cfg->obs_dim <= (1 << 24)
        && cfg->act_dim <= (1 << 24))
        count = (uint64_t)cfg->obs_dim + 1 + ((uint64_t)cfg->obs_dim + 1) * (uint64_t)cfg->act_dim
                + (cfg->act_kind == BDT_CONTINUOUS ? (uint64_t)cfg->act_dim : 0);
    else if (cfg)
        count = bdt_policy_param_count_of(cfg);
    const int one_trunk = cfg && (cfg->act_kind == BDT_Q || cfg->act_kind == BDT_SQUASHED);
    if (cfg && cfg->layers == 0 && one_trunk) /* a linear Q-network or squashed Gaussian */
        count = ((uint64_t)cfg->obs_dim + 1) * (uint64_t)bdt_policy_out_dim(cfg);
    if (!dst || count == 0 || n != count
        || (cfg->act_kind != BDT_DISCRETE && cfg->act_kind != BDT_CONTINUOUS && !one_trunk))
        return bd_seterr(BD_EINVAL, "bdt_policy_init_params: no network of this shape (%zu parameters given, %llu "
                         "wanted)", n, (unsigned long long)count);
    const int S = cfg->obs_dim, h = cfg->hidden, L = cfg->layers;
    /* scratch for the largest layer computed: (out, in) of each Linear */
    size_t cells = 0, side = 0;
    for (int l = 0; l <= L; l++) {
        const size_t in = (size_t)(l == 0 ? S : h);
        const size_t outs[2] = {l == L ? 1 : (size_t)h, l == L ? (size_t)bdt_policy_out_dim(cfg) : (size_t)h};
        for (int t = 0; t < 2; t++) {
            cells = outs[t] * in > cells ? outs[t] * in : cells;
            side = outs[t] > side ? outs[t] : side;
            side = in > side ? in : side;
        }
    }
    float *a = malloc(sizeof(float) * cells), *tau = malloc(sizeof(float) * side);
    if (!a || !tau) {
        free(a);
        free(tau);
        return bd_seterr(BD_ENOMEM, "bdt_policy_init_params: out of memory");
    }
    memset(dst, 0, sizeof(float) * n); /* biases and the log std */
    float *p = dst + (cfg->act_kind == BDT_CONTINUOUS ? cfg->act_dim : 0);
    uint32_t layer = 0;
    int rc = BD_OK;
    /* the critic, then the actor; a Q-network or a squashed Gaussian has the second alone */
    for (int trunk = one_trunk; trunk < 2 && rc == BD_OK; trunk++) {
        const int head = trunk == 0 ? 1 : bdt_policy_out_dim(cfg);
        const double head_gain = trunk == 0 || cfg->act_kind == BDT_Q ? 1.0 : 0.01;
        int in = S;
        for (int l = 0; l <= L && rc == BD_OK; l++) {
            const int out = l == L ? head : h;
            const double gain = l < L ? sqrt(2.0) : head_gain;
            rc = bdt_orthogonal(p, out, in, gain, cfg->seed, layer++, a, tau);
            p += (size_t)out * (size_t)in + (size_t)out;
            in = h;
        }
    }
    free(a);
    free(tau);
    return rc;
}
