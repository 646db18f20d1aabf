/* cpunet.h: the policy network of net.h run in plain C on the CPU, for processes that must
 * not wait for libtorch: a CPU muscle acts with it and never loads libtorch at all, and a
 * brain hands its muscles their first weights from its init.
 *
 * It computes the bits libtorch computes for the same network (torch/policy.cpp): each
 * Linear layer is the BLAS call libtorch's addmm makes for it (sgemm "T","N" onto the
 * bias, with libtorch's own BLAS: the system's libblas, OpenBLAS here), each tanh the
 * SLEEF function libtorch's CPU kernel calls for the instruction set it dispatches to
 * (AVX2 or AVX-512, or libm's tanhf where it has neither; ReLU is clamp_min's, -0 and NaN kept), a vector at a time and the tail
 * as a zero-padded vector, as ATen's vec::map does, with flush-to-zero and
 * denormals-are-zero set as the shim sets them around libtorch (torch/shim.hpp's FtzGuard;
 * the caller's mode is restored). The tests `torch::c_network_matches_libtorch*` hold it
 * to that under every capability (ATEN_CPU_CAPABILITY). Parameters are read in place from
 * the flat order of bdt_policy_get_params (net.h, policy.cpp). */
#ifndef BODHI_TORCH_CPUNET_H
#define BODHI_TORCH_CPUNET_H

#include <stddef.h>
#include <stdint.h>

#include "torch/net.h"

typedef struct {
    bdt_policy_config cfg;   /* any act_kind, BDT_CPU */
    size_t count;            /* parameters (bdt_policy_param_count_of) */
    int rows;                /* the most rows one forward takes */
    float *h0, *h1;          /* (rows, hidden) the trunks' activations */
    float *q;                /* (rows, act_dim) a Q-network's outputs when only its value is asked */
} bdt_cpunet;

/* A network of cfg's shape for up to `rows` rows per forward: the actor-critic (tanh), a
 * Q-network or a squashed Gaussian (ReLU; torch/policy.cpp); BD_EINVAL for a shape a muscle
 * does not run (no hidden layer, which the shim allows; sizes past
 * bdt_policy_param_count_of's bounds) or a device other than the CPU, BD_ENOMEM. */
int bdt_cpunet_init(bdt_cpunet *n, const bdt_policy_config *cfg, int rows);
void bdt_cpunet_fini(bdt_cpunet *n); /* zeroes n; safe on a zeroed one */

/* Inference with params (n->count floats, flat order) on obs (rows, obs_dim), rows <= the
 * init's: into out (rows, bdt_policy_out_dim) the actor's output (logits, means, Q-values,
 * or a squashed Gaussian's means then raw log stds) and into value (rows) the critic's (a
 * Q-network's: the greedy action's; a squashed Gaussian's: 0), as bdt_policy_forward's;
 * either may be NULL. */
int bdt_cpunet_forward(bdt_cpunet *n, const float *params, const float *obs, int rows, float *out,
                       float *value);

/* The continuous policy's log std inside params (act_dim floats), NULL for a discrete one. */
const float *bdt_cpunet_logstd(const bdt_cpunet *n, const float *params);

/* The initial parameters of a network of cfg's shape (any act_kind) into dst
 * (n = bdt_policy_param_count_of floats, flat order), a function of cfg->seed alone:
 * CleanRL's init (each Linear weight orthogonal, gain sqrt(2) in hidden layers, 1 for the
 * critic's head and 0.01 for the actor's; biases and the log std 0; a Q-network's head
 * gain 1, a squashed Gaussian's 0.01, each one trunk), the orthogonal
 * matrices from Philox normals (stream BD_STREAM_INIT, one counter space per layer) by
 * LAPACK's QR with the signs of R's diagonal taken out, as torch.nn.init.orthogonal_ does.
 * libtorch's networks start from it too (bdt_policy_create), so a brain can hand its
 * muscles their first weights before it has loaded libtorch. BD_EINVAL, BD_ENOMEM. */
int bdt_policy_init_params(const bdt_policy_config *cfg, float *dst, size_t n);

/* tanh in place over x (len floats) as libtorch's CPU kernel computes it here (above). */
void bdt_cpunet_tanh(float *x, size_t len);

/* The pieces of the networks above, for a learner that runs its own passes on the CPU
 * (torch/dqn.cpp). y (rows, out) = x (rows, in) W^T + b, W (out, in) row-major: a Linear
 * layer as libtorch's addmm computes it (the same bits). */
void bdt_cpunet_linear(const float *x, int rows, int in, const float *W, const float *b, int out, float *y);

/* ReLU in place as libtorch's CPU kernel (clamp_min: NaN and -0 kept). */
void bdt_cpunet_relu(float *x, size_t len);

/* A Linear layer's gradients from dz (rows, out), the gradient at its output, and x (rows,
 * in), its input: dW (out, in) = dz^T x and db (out) = dz's column sums (rows in order, in
 * float), overwritten; and, where dx is not NULL, dx (rows, in) = dz W, zeroed wherever
 * x <= 0: the gradient at the pre-activation of the ReLU whose output x is. The
 * products are BLAS's (not libtorch's bits: its sum over the rows and its arrangement of
 * the operands differ). */
void bdt_cpunet_linear_backward(const float *dz, const float *x, int rows, int in, const float *W, int out,
                                float *dW, float *db, float *dx);

#endif
