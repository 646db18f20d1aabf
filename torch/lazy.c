/* lazy.c: the torch shim's C API (torch/bd_torch.h) for bodhi's processes, loading
 * libbodhi_torch.so (and with it libtorch) on the first call that needs it.
 *
 * libtorch's load and constructors cost about 0.75 CPU-s a process here, most of a run's
 * start-up when every process paid it: the conductor (which checks run files and spawns,
 * and needs no network), random and rule-based brains and muscles now never load it, and
 * a brain or muscle that does loads it once, when it builds its network. Every function
 * forwards to the library's own; a library that cannot be loaded is a BD_ETORCH error
 * naming it and dlerror()'s reason. Thread-safe (pthread_once).
 *
 * Where: dlopen's own search first (LD_LIBRARY_PATH, so a GPU machine's rebuilt shim put
 * first there wins: bench/gpu/torch-shim/), then the folder of this executable (the build
 * tree). bdt_set_threads before the load is kept and applied when it happens; bdt_preload
 * starts the load in a thread of its own. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "torch/bd_torch.h"

#ifndef BD_TORCH_SONAME
#define BD_TORCH_SONAME "libbodhi_torch.so"
#endif

/* One pointer per function of the library: name, return type, parameters. */
#define BDT_FUNCS(X)                                                                                          \
    X(policy_create, int, (const bdt_policy_config *, bdt_policy **))                                         \
    X(policy_create_from, int, (const bdt_policy_config *, const float *, size_t, bdt_policy **))             \
    X(policy_destroy, void, (bdt_policy *))                                                                   \
    X(policy_param_count, size_t, (const bdt_policy *))                                                       \
    X(policy_get_params, int, (bdt_policy *, float *, size_t))                                                \
    X(policy_set_params, int, (bdt_policy *, const float *, size_t))                                          \
    X(policy_forward, int, (bdt_policy *, const float *, int, float *, float *))                              \
    X(policy_forward_on_device, int, (bdt_policy *, const float *, int, float *, float *))                    \
    X(policy_logstd, int, (bdt_policy *, float *, int))                                                       \
    X(ppo_create, int, (bdt_policy *, const bdt_ppo_config *, bdt_ppo **))                                    \
    X(ppo_destroy, void, (bdt_ppo *))                                                                         \
    X(ppo_set_lr, int, (bdt_ppo *, float))                                                                    \
    X(ppo_set_minibatches, int, (bdt_ppo *, int))                                                             \
    X(ppo_set_split, int, (bdt_ppo *, int))                                                                   \
    X(ppo_set_coefs, int, (bdt_ppo *, const bdt_ppo_config *))                                                \
    X(ppo_set_cancel, void, (bdt_ppo *, const volatile int *))                                                \
    X(ppo_set_grad_hook, void, (bdt_ppo *, bdt_grad_hook, void *))                                            \
    X(ppo_undo, int, (bdt_ppo *))                                                                             \
    X(ppo_update, int, (bdt_ppo *, const float *, const float *, const float *, const float *, const float *, \
                        const float *, int, const int64_t *, bdt_ppo_stats *))                                \
    X(dqn_create, int, (bdt_policy *, const bdt_dqn_config *, bdt_dqn **))                                    \
    X(dqn_destroy, void, (bdt_dqn *))                                                                         \
    X(dqn_set_lr, int, (bdt_dqn *, float))                                                                    \
    X(dqn_targets, int, (bdt_dqn *, const float *, const float *, const float *, int, float *))               \
    X(dqn_update, int, (bdt_dqn *, const float *, const float *, const float *, const float *, const float *, \
                        int, int, const volatile int *, bdt_dqn_stats *))                                     \
    X(dqn_set_split, int, (bdt_dqn *, int))                                                                   \
    X(dqn_mark, int, (bdt_dqn *))                                                                             \
    X(dqn_restore, int, (bdt_dqn *))                                                                          \
    X(dqn_set_grad_hook, void, (bdt_dqn *, bdt_grad_hook, void *))                                            \
    X(dqn_target_params, int, (bdt_dqn *, float *, size_t))                                                   \
    X(dqn_save, int, (bdt_dqn *, const char *))                                                               \
    X(dqn_load, int, (bdt_dqn *, const char *))                                                               \
    X(sac_mark, int, (bdt_sac *))                                                                             \
    X(sac_restore, int, (bdt_sac *))                                                                          \
    X(sac_create, int, (bdt_policy *, const bdt_sac_config *, bdt_sac **))                                    \
    X(sac_destroy, void, (bdt_sac *))                                                                         \
    X(sac_update, int, (bdt_sac *, const float *, const float *, const float *, const float *, const float *,   \
                        int, uint64_t, uint64_t, bdt_sac_stats *))                                            \
    X(sac_param_count, size_t, (const bdt_sac *, int))                                                        \
    X(sac_get_params, int, (bdt_sac *, int, float *, size_t))                                                 \
    X(sac_set_params, int, (bdt_sac *, int, const float *, size_t))                                           \
    X(sac_alpha, float, (const bdt_sac *))                                                                    \
    X(sac_set_rates, int, (bdt_sac *, const bdt_sac_config *))                                                \
    X(sac_set_grad_hook, void, (bdt_sac *, bdt_grad_hook, void *))                                            \
    X(sac_act, int, (bdt_policy *, const float *, int, const float *, const float *, const float *, float *,  \
                     float *))                                                                                \
    X(sac_save, int, (bdt_sac *, const char *))                                                               \
    X(sac_load, int, (bdt_sac *, const char *))                                                               \
    X(sac_check_file, int, (const bdt_policy_config *, const char *))                                         \
    X(save, int, (bdt_policy *, bdt_ppo *, const char *))                                                     \
    X(load, int, (bdt_policy *, bdt_ppo *, const char *))                                                     \
    X(load_actor, int, (const char *, bdt_policy_config *, bdt_policy **))                                    \
    X(set_threads, void, (int))                                                                               \
    X(cuda_available, int, (void))                                                                            \
    X(abi, const char *, (void))                                                                              \
    X(group_join, int, (const char *, const char *, int, int, const char *, double, const char *,                \
                        const volatile int *, bdt_left_fn, double, bdt_group **))                                 \
    X(group_id, const char *, (const bdt_group *))                                                               \
    X(group_leave, void, (bdt_group *))                                                                       \
    X(group_rank, int, (const bdt_group *))                                                                   \
    X(group_size, int, (const bdt_group *))                                                                   \
    X(group_fast, int, (const bdt_group *))                                                                   \
    X(group_spin, void, (bdt_group *, int))                                                                   \
    X(group_allreduce_mean, int, (bdt_group *, float *, size_t))                                              \
    X(group_allreduce_f64, int, (bdt_group *, double *, size_t, int))                                         \
    X(group_broadcast, int, (bdt_group *, float *, size_t, int))

static struct {
#define BDT_PTR(name, ret, args) ret(*name) args;
    BDT_FUNCS(BDT_PTR)
#undef BDT_PTR
} bdt_fn;

static pthread_once_t bdt_once = PTHREAD_ONCE_INIT;
static int bdt_loaded;              /* every pointer resolved */
static char bdt_why[1024];          /* why not */
static pthread_mutex_t bdt_mu = PTHREAD_MUTEX_INITIALIZER;
static int bdt_threads_wanted;      /* bdt_set_threads before the load */

static void *bdt_open(void)
{
    void *h = dlopen(BD_TORCH_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h)
        return h;
    snprintf(bdt_why, sizeof bdt_why, "%s", dlerror());
    /* Only a shim that is nowhere on the search path sends the search to the build tree. One
     * that was found and did not load (a GPU machine's rebuilt shim that misses a symbol or a
     * CUDA library, one this user may not read) is said as it is: the build tree's would be
     * another shim, the CPU's, taken without a word. glibc (untranslated: bodhi sets no
     * locale) words the first case so, naming the shim itself; a missing library the shim
     * needs is named by its own name, and any other wording is taken as found. */
    static const char absent[] = BD_TORCH_SONAME ": cannot open shared object file: No such file or directory";
    if (strcmp(bdt_why, absent) != 0)
        return NULL;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash || (size_t)(slash - exe) + sizeof "/" BD_TORCH_SONAME > sizeof exe)
        return NULL;
    strcpy(slash + 1, BD_TORCH_SONAME);
    if (!(h = dlopen(exe, RTLD_NOW | RTLD_LOCAL)))
        snprintf(bdt_why, sizeof bdt_why, "%s", dlerror());
    return h;
}

static void bdt_do_load(void)
{
    void *h = bdt_open();
    if (!h)
        return;
    /* a shim of other sources (torch/abi.cmake) is refused before anything of it is called
     * that its structs could be laid out for otherwise */
    const char *(*abi)(void);
    *(void **)&abi = dlsym(h, "bdt_abi");
    struct link_map *lm = NULL;
    const char *path = dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name[0] ? lm->l_name : BD_TORCH_SONAME;
    if (bdt_abi_other(abi ? abi() : NULL, BDT_ABI_HASH, path, bdt_why, sizeof bdt_why))
        return;
#define BDT_SYM(name, ret, args)                                                                              \
    if (!(*(void **)&bdt_fn.name = dlsym(h, "bdt_" #name))) {                                                 \
        snprintf(bdt_why, sizeof bdt_why, "%s has no bdt_" #name, BD_TORCH_SONAME);                           \
        return;                                                                                               \
    }
    BDT_FUNCS(BDT_SYM)
#undef BDT_SYM
    bdt_loaded = 1;
    pthread_mutex_lock(&bdt_mu);
    if (bdt_threads_wanted > 0)
        bdt_fn.set_threads(bdt_threads_wanted);
    pthread_mutex_unlock(&bdt_mu);
}

/* BD_OK once the library is loaded (loading it now if need be); else BD_ETORCH. */
static int bdt_need(const char *where)
{
    pthread_once(&bdt_once, bdt_do_load);
    return bdt_loaded ? BD_OK
                      : bd_seterr(BD_ETORCH, "%s: cannot load %s (libtorch): %s", where, BD_TORCH_SONAME, bdt_why);
}

int bdt_policy_create(const bdt_policy_config *cfg, bdt_policy **out)
{
    if (out)
        *out = NULL;
    int rc = bdt_need("bdt_policy_create");
    return rc == BD_OK ? bdt_fn.policy_create(cfg, out) : rc;
}

int bdt_policy_create_from(const bdt_policy_config *cfg, const float *params, size_t n, bdt_policy **out)
{
    if (out)
        *out = NULL;
    int rc = bdt_need("bdt_policy_create_from");
    return rc == BD_OK ? bdt_fn.policy_create_from(cfg, params, n, out) : rc;
}

/* A handle exists only once the library is loaded: the NULL-safe and handle-taking
 * functions below need no load of their own. */
void bdt_policy_destroy(bdt_policy *p)
{
    if (p && bdt_loaded)
        bdt_fn.policy_destroy(p);
}

size_t bdt_policy_param_count(const bdt_policy *p)
{
    return p && bdt_loaded ? bdt_fn.policy_param_count(p) : 0;
}

#define BDT_HANDLE(h, where)                                                                                  \
    if (!(h) || !bdt_loaded)                                                                                  \
        return bd_seterr(BD_EINVAL, where ": no handle");

int bdt_policy_get_params(bdt_policy *p, float *dst, size_t n)
{
    BDT_HANDLE(p, "bdt_policy_get_params");
    return bdt_fn.policy_get_params(p, dst, n);
}

int bdt_policy_set_params(bdt_policy *p, const float *src, size_t n)
{
    BDT_HANDLE(p, "bdt_policy_set_params");
    return bdt_fn.policy_set_params(p, src, n);
}

int bdt_policy_forward(bdt_policy *p, const float *obs, int n, float *out, float *value)
{
    BDT_HANDLE(p, "bdt_policy_forward");
    return bdt_fn.policy_forward(p, obs, n, out, value);
}

int bdt_policy_forward_on_device(bdt_policy *p, const float *obs, int n, float *out, float *value)
{
    BDT_HANDLE(p, "bdt_policy_forward_on_device");
    return bdt_fn.policy_forward_on_device(p, obs, n, out, value);
}

int bdt_policy_logstd(bdt_policy *p, float *dst, int act_dim)
{
    BDT_HANDLE(p, "bdt_policy_logstd");
    return bdt_fn.policy_logstd(p, dst, act_dim);
}

int bdt_ppo_create(bdt_policy *p, const bdt_ppo_config *cfg, bdt_ppo **out)
{
    if (out)
        *out = NULL;
    BDT_HANDLE(p, "bdt_ppo_create");
    return bdt_fn.ppo_create(p, cfg, out);
}

void bdt_ppo_destroy(bdt_ppo *o)
{
    if (o && bdt_loaded)
        bdt_fn.ppo_destroy(o);
}

int bdt_ppo_set_lr(bdt_ppo *o, float lr)
{
    BDT_HANDLE(o, "bdt_ppo_set_lr");
    return bdt_fn.ppo_set_lr(o, lr);
}

int bdt_ppo_set_minibatches(bdt_ppo *o, int count)
{
    BDT_HANDLE(o, "bdt_ppo_set_minibatches");
    return bdt_fn.ppo_set_minibatches(o, count);
}

int bdt_ppo_set_split(bdt_ppo *o, int on)
{
    BDT_HANDLE(o, "bdt_ppo_set_split");
    return bdt_fn.ppo_set_split(o, on);
}

int bdt_ppo_set_coefs(bdt_ppo *o, const bdt_ppo_config *cfg)
{
    BDT_HANDLE(o, "bdt_ppo_set_coefs");
    return bdt_fn.ppo_set_coefs(o, cfg);
}

void bdt_ppo_set_cancel(bdt_ppo *o, const volatile int *flag)
{
    if (o && bdt_loaded)
        bdt_fn.ppo_set_cancel(o, flag);
}

void bdt_ppo_set_grad_hook(bdt_ppo *o, bdt_grad_hook hook, void *ctx)
{
    if (o && bdt_loaded)
        bdt_fn.ppo_set_grad_hook(o, hook, ctx);
}

int bdt_ppo_undo(bdt_ppo *o)
{
    BDT_HANDLE(o, "bdt_ppo_undo");
    return bdt_fn.ppo_undo(o);
}

int bdt_ppo_update(bdt_ppo *o, const float *obs, const float *actions, const float *logp, const float *adv,
                   const float *ret, const float *val, int n, const int64_t *perm, bdt_ppo_stats *stats)
{
    BDT_HANDLE(o, "bdt_ppo_update");
    return bdt_fn.ppo_update(o, obs, actions, logp, adv, ret, val, n, perm, stats);
}

int bdt_dqn_create(bdt_policy *q, const bdt_dqn_config *cfg, bdt_dqn **out)
{
    if (out)
        *out = NULL;
    BDT_HANDLE(q, "bdt_dqn_create");
    return bdt_fn.dqn_create(q, cfg, out);
}

void bdt_dqn_destroy(bdt_dqn *o)
{
    if (o && bdt_loaded)
        bdt_fn.dqn_destroy(o);
}

int bdt_dqn_set_lr(bdt_dqn *o, float lr)
{
    BDT_HANDLE(o, "bdt_dqn_set_lr");
    return bdt_fn.dqn_set_lr(o, lr);
}

int bdt_dqn_targets(bdt_dqn *o, const float *rew, const float *next_obs, const float *term, int n, float *y)
{
    BDT_HANDLE(o, "bdt_dqn_targets");
    return bdt_fn.dqn_targets(o, rew, next_obs, term, n, y);
}

int bdt_dqn_update(bdt_dqn *o, const float *obs, const float *act, const float *rew, const float *next_obs,
                   const float *term, int n, int steps, const volatile int *cancel, bdt_dqn_stats *stats)
{
    BDT_HANDLE(o, "bdt_dqn_update");
    return bdt_fn.dqn_update(o, obs, act, rew, next_obs, term, n, steps, cancel, stats);
}

int bdt_dqn_mark(bdt_dqn *o)
{
    BDT_HANDLE(o, "bdt_dqn_mark");
    return bdt_fn.dqn_mark(o);
}

int bdt_dqn_restore(bdt_dqn *o)
{
    BDT_HANDLE(o, "bdt_dqn_restore");
    return bdt_fn.dqn_restore(o);
}

int bdt_dqn_set_split(bdt_dqn *o, int on)
{
    BDT_HANDLE(o, "bdt_dqn_set_split");
    return bdt_fn.dqn_set_split(o, on);
}

void bdt_dqn_set_grad_hook(bdt_dqn *o, bdt_grad_hook hook, void *ctx)
{
    if (o && bdt_loaded)
        bdt_fn.dqn_set_grad_hook(o, hook, ctx);
}

int bdt_dqn_target_params(bdt_dqn *o, float *dst, size_t n)
{
    BDT_HANDLE(o, "bdt_dqn_target_params");
    return bdt_fn.dqn_target_params(o, dst, n);
}

int bdt_dqn_save(bdt_dqn *o, const char *path)
{
    BDT_HANDLE(o, "bdt_dqn_save");
    return bdt_fn.dqn_save(o, path);
}

int bdt_dqn_load(bdt_dqn *o, const char *path)
{
    BDT_HANDLE(o, "bdt_dqn_load");
    return bdt_fn.dqn_load(o, path);
}

int bdt_sac_create(bdt_policy *actor, const bdt_sac_config *cfg, bdt_sac **out)
{
    if (out)
        *out = NULL;
    BDT_HANDLE(actor, "bdt_sac_create");
    return bdt_fn.sac_create(actor, cfg, out);
}

void bdt_sac_destroy(bdt_sac *s)
{
    if (s && bdt_loaded)
        bdt_fn.sac_destroy(s);
}

int bdt_sac_update(bdt_sac *s, const float *obs, const float *act, const float *rew, const float *next_obs,
                   const float *done, int n, uint64_t seed, uint64_t key, bdt_sac_stats *stats)
{
    BDT_HANDLE(s, "bdt_sac_update");
    return bdt_fn.sac_update(s, obs, act, rew, next_obs, done, n, seed, key, stats);
}

size_t bdt_sac_param_count(const bdt_sac *s, int which)
{
    return s && bdt_loaded ? bdt_fn.sac_param_count(s, which) : 0;
}

int bdt_sac_get_params(bdt_sac *s, int which, float *dst, size_t n)
{
    BDT_HANDLE(s, "bdt_sac_get_params");
    return bdt_fn.sac_get_params(s, which, dst, n);
}

int bdt_sac_set_params(bdt_sac *s, int which, const float *src, size_t n)
{
    BDT_HANDLE(s, "bdt_sac_set_params");
    return bdt_fn.sac_set_params(s, which, src, n);
}

int bdt_sac_mark(bdt_sac *s)
{
    BDT_HANDLE(s, "bdt_sac_mark");
    return bdt_fn.sac_mark(s);
}

int bdt_sac_restore(bdt_sac *s)
{
    BDT_HANDLE(s, "bdt_sac_restore");
    return bdt_fn.sac_restore(s);
}

void bdt_sac_set_grad_hook(bdt_sac *s, bdt_grad_hook hook, void *ctx)
{
    if (s && bdt_loaded)
        bdt_fn.sac_set_grad_hook(s, hook, ctx);
}

int bdt_sac_set_rates(bdt_sac *s, const bdt_sac_config *cfg)
{
    BDT_HANDLE(s, "bdt_sac_set_rates");
    return bdt_fn.sac_set_rates(s, cfg);
}

float bdt_sac_alpha(const bdt_sac *s)
{
    return s && bdt_loaded ? bdt_fn.sac_alpha(s) : 0.0f;
}

int bdt_sac_act(bdt_policy *p, const float *obs, int n, const float *noise, const float *low, const float *high,
                float *act, float *logp)
{
    BDT_HANDLE(p, "bdt_sac_act");
    return bdt_fn.sac_act(p, obs, n, noise, low, high, act, logp);
}

int bdt_sac_save(bdt_sac *s, const char *path)
{
    BDT_HANDLE(s, "bdt_sac_save");
    return bdt_fn.sac_save(s, path);
}

int bdt_sac_load(bdt_sac *s, const char *path)
{
    BDT_HANDLE(s, "bdt_sac_load");
    return bdt_fn.sac_load(s, path);
}

int bdt_sac_check_file(const bdt_policy_config *actor, const char *path)
{
    int rc = bdt_need("bdt_sac_check_file");
    return rc == BD_OK ? bdt_fn.sac_check_file(actor, path) : rc;
}

int bdt_save(bdt_policy *p, bdt_ppo *o, const char *path)
{
    BDT_HANDLE(p, "bdt_save");
    return bdt_fn.save(p, o, path);
}

int bdt_load(bdt_policy *p, bdt_ppo *o, const char *path)
{
    BDT_HANDLE(p, "bdt_load");
    return bdt_fn.load(p, o, path);
}

int bdt_load_actor(const char *path, bdt_policy_config *cfg, bdt_policy **out)
{
    if (out)
        *out = NULL;
    int rc = bdt_need("bdt_load_actor");
    return rc == BD_OK ? bdt_fn.load_actor(path, cfg, out) : rc;
}

void bdt_set_threads(int n)
{
    if (n < 1)
        return;
    pthread_mutex_lock(&bdt_mu);
    bdt_threads_wanted = n;
    int now = bdt_loaded;
    pthread_mutex_unlock(&bdt_mu);
    if (now)
        bdt_fn.set_threads(n);
}

static void *bdt_preload_main(void *arg)
{
    (void)arg;
    pthread_once(&bdt_once, bdt_do_load);
    return NULL;
}

void bdt_preload(void)
{
    pthread_t t;
    pthread_attr_t at;
    if (pthread_attr_init(&at) != 0)
        return;
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, bdt_preload_main, NULL) != 0)
        pthread_once(&bdt_once, bdt_do_load); /* no thread: load it now */
    pthread_attr_destroy(&at);
}

const char *bdt_abi(void)
{
    return bdt_need("bdt_abi") == BD_OK ? bdt_fn.abi() : NULL;
}

int bdt_cuda_available(void)
{
    return bdt_need("bdt_cuda_available") == BD_OK ? bdt_fn.cuda_available() : 0;
}

int bdt_group_join(const char *store_path, const char *name, int rank, int world, const char *host,
                   double timeout_s, const char *meta, const volatile int *cancel, bdt_left_fn left, double launched,
                   bdt_group **out)
{
    int rc = bdt_need("bdt_group_join");
    return rc != BD_OK ? rc
                       : bdt_fn.group_join(store_path, name, rank, world, host, timeout_s, meta, cancel, left, launched,
                                           out);
}

const char *bdt_group_id(const bdt_group *g)
{
    return g && bdt_loaded ? bdt_fn.group_id(g) : "";
}

void bdt_group_leave(bdt_group *g)
{
    if (g && bdt_loaded)
        bdt_fn.group_leave(g);
}

int bdt_group_rank(const bdt_group *g)
{
    return g && bdt_loaded ? bdt_fn.group_rank(g) : 0;
}

int bdt_group_size(const bdt_group *g)
{
    return g && bdt_loaded ? bdt_fn.group_size(g) : 1;
}

int bdt_group_fast(const bdt_group *g)
{
    return g && bdt_loaded ? bdt_fn.group_fast(g) : 0;
}

void bdt_group_spin(bdt_group *g, int on)
{
    if (g && bdt_loaded)
        bdt_fn.group_spin(g, on);
}

int bdt_group_allreduce_mean(bdt_group *g, float *x, size_t n)
{
    BDT_HANDLE(g, "bdt_group_allreduce_mean");
    return bdt_fn.group_allreduce_mean(g, x, n);
}

int bdt_group_allreduce_f64(bdt_group *g, double *x, size_t n, int op)
{
    BDT_HANDLE(g, "bdt_group_allreduce_f64");
    return bdt_fn.group_allreduce_f64(g, x, n, op);
}

int bdt_group_broadcast(bdt_group *g, float *x, size_t n, int root)
{
    BDT_HANDLE(g, "bdt_group_broadcast");
    return bdt_fn.group_broadcast(g, x, n, root);
}
