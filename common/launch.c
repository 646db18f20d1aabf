/* launch.c: the rank of this process from launch variables or options (common/launch.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/launch.h"
#include "common/util.h"

const char *bd_launcher_name(bd_launcher by)
{
    switch (by) {
    case BD_LAUNCH_OPTIONS: return "--rank/--world-size";
    case BD_LAUNCH_TORCHRUN: return "torchrun variables";
    case BD_LAUNCH_OMPI: return "Open MPI (mpirun)";
    case BD_LAUNCH_SLURM: return "Slurm (srun)";
    default: return "single";
    }
}

/* Each launcher's rank and size variables (the options and a single run have none). */
static const char *const bd_launch_var_names[][2] = {[BD_LAUNCH_TORCHRUN] = {"RANK", "WORLD_SIZE"},
                                                     [BD_LAUNCH_OMPI] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                                                     [BD_LAUNCH_SLURM] = {"SLURM_PROCID", "SLURM_NTASKS"}};

const char *const *bd_launcher_vars(bd_launcher by)
{
    return by >= 0 && by < (int)(sizeof bd_launch_var_names / sizeof bd_launch_var_names[0]) &&
                   bd_launch_var_names[by][0]
               ? bd_launch_var_names[by]
               : NULL;
}

/* BD_EINVAL with the message, after "what: " when what names a launcher's variables (NULL
 * for bodhi's own options: `bodhi run: ` is the caller's prefix). */
static int launch_err(const char *what, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bd_seterr(BD_EINVAL, "%s%s%s", what ? what : "", what ? ": " : "", msg);
}

/* name's value (from `what`) as an integer in [lo, hi] into *v. */
static int launch_int(const char *what, const char *name, const char *s, long long lo, long long hi, int *v)
{
    long long x;
    if (bd_parse_ll(s, lo, hi, &x) != BD_OK)
        return launch_err(what, "%s must be an integer from %lld to %lld (got '%s')", name, lo, hi, s ? s : "");
    *v = (int)x;
    return BD_OK;
}

/* HOST:PORT (or [v6]:PORT) of `what`'s `name` into out. */
static int launch_hostport(const char *what, const char *name, const char *s, bd_launch *out)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s)
        return launch_err(what, "%s must be HOST:PORT (got '%s')", name, s ? s : "");
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof out->host)
        return launch_err(what, "%s has no host or one too long (got '%s')", name, s);
    char port[128]; /* the part at fault: "the port of --rendezvous must be ..." */
    snprintf(port, sizeof port, "the port of %s", name);
    if (launch_int(what, port, colon + 1, 1, 65535, &out->port) != BD_OK)
        return BD_EINVAL;
    memcpy(out->host, h, hl);
    out->host[hl] = '\0';
    return BD_OK;
}

static int launch_check(const char *what, const char *rname, const char *wname, bd_launch *o)
{
    if (o->local_size == o->world && o->local_rank == 0)
        o->local_rank = o->rank; /* every rank on this machine: the local rank is the rank */
    if (o->rank >= o->world)
        return launch_err(what, "%s=%d is not below %s=%d", rname, o->rank, wname, o->world);
    if (o->local_rank > o->rank)
        return launch_err(what, "the local rank %d is above the rank %d", o->local_rank, o->rank);
    return BD_OK;
}

/* names[0] and names[1] both present (1), neither (0), or one alone (-1, error set). */
static int launch_present(const char *what, bd_getenv_fn get, void *ctx, const char *const *names)
{
    int a = get(ctx, names[0]) != NULL, b = get(ctx, names[1]) != NULL;
    if (a == b)
        return a;
    bd_seterr(BD_EINVAL, "%s: %s is set but %s is not", what, names[a ? 0 : 1], names[a ? 1 : 0]);
    return -1;
}

/* A launcher's count of ranks on this machine (only a hint for the learners' threads):
 * one that does not parse is left out, not an error. */
static int launch_local(bd_getenv_fn get, void *ctx, const char *name, bd_launch *o)
{
    const char *v = get(ctx, name);
    long long n;
    if (!v || bd_parse_ll(v, 1, 65536, &n) != BD_OK)
        return 0;
    o->local_size = (int)n;
    return 1;
}

static int launch_opts(const bd_launch_opts *op, bd_launch *o)
{
    const char *what = NULL; /* the options' own names say where; the caller says "bodhi run: " */
    if (!op->rank || !op->world_size)
        return launch_err(what, "--rank and --world-size go together (got only %s)",
                          op->rank ? "--rank" : op->world_size ? "--world-size" : "--rendezvous");
    o->by = BD_LAUNCH_OPTIONS;
    if (launch_int(what, "--world-size", op->world_size, 1, 65536, &o->world) != BD_OK
        || launch_int(what, "--rank", op->rank, 0, 65535, &o->rank) != BD_OK)
        return BD_EINVAL;
    o->local_rank = 0;
    if (op->rendezvous && launch_hostport(what, "--rendezvous", op->rendezvous, o) != BD_OK)
        return BD_EINVAL;
    /* no rendezvous, or a loopback one: every rank is on this machine */
    if (!op->rendezvous || !strcmp(o->host, "127.0.0.1") || !strcmp(o->host, "localhost") || !strcmp(o->host, "::1"))
        o->local_size = o->world;
    return launch_check(what, "--rank", "--world-size", o);
}

static int launch_torchrun(bd_getenv_fn get, void *ctx, bd_launch *o)
{
    const char *what = "torchrun variables";
    o->by = BD_LAUNCH_TORCHRUN;
    if (launch_int(what, "WORLD_SIZE", get(ctx, "WORLD_SIZE"), 1, 65536, &o->world) != BD_OK
        || launch_int(what, "RANK", get(ctx, "RANK"), 0, 65535, &o->rank) != BD_OK)
        return BD_EINVAL;
    const char *lr = get(ctx, "LOCAL_RANK");
    if (lr && launch_int(what, "LOCAL_RANK", lr, 0, 65535, &o->local_rank) != BD_OK)
        return BD_EINVAL;
    const int said = launch_local(get, ctx, "LOCAL_WORLD_SIZE", o);
    const char *addr = get(ctx, "MASTER_ADDR"), *port = get(ctx, "MASTER_PORT");
    if (addr) {
        if (!*addr || strlen(addr) >= sizeof o->host)
            return bd_seterr(BD_EINVAL, "%s: MASTER_ADDR is empty or too long", what);
        snprintf(o->host, sizeof o->host, "%s", addr);
        o->port = BD_LAUNCH_DEFAULT_PORT;
        if (port && launch_int(what, "MASTER_PORT", port, 1, 65535, &o->port) != BD_OK)
            return BD_EINVAL;
    } else if (port) {
        return bd_seterr(BD_EINVAL, "%s: MASTER_PORT=%s is set but MASTER_ADDR is not", what, port);
    }
    if (!said && (!addr || !strcmp(o->host, "127.0.0.1") || !strcmp(o->host, "localhost") || !strcmp(o->host, "::1")))
        o->local_size = o->world; /* a loopback rendezvous: every rank is on this machine */
    return launch_check(what, "RANK", "WORLD_SIZE", o);
}

static int launch_ompi(bd_getenv_fn get, void *ctx, bd_launch *o)
{
    const char *what = "Open MPI variables";
    o->by = BD_LAUNCH_OMPI;
    const char *lr = get(ctx, "OMPI_COMM_WORLD_LOCAL_RANK");
    launch_local(get, ctx, "OMPI_COMM_WORLD_LOCAL_SIZE", o);
    if (launch_int(what, "OMPI_COMM_WORLD_SIZE", get(ctx, "OMPI_COMM_WORLD_SIZE"), 1, 65536, &o->world) != BD_OK
        || launch_int(what, "OMPI_COMM_WORLD_RANK", get(ctx, "OMPI_COMM_WORLD_RANK"), 0, 65535, &o->rank) != BD_OK
        || (lr && launch_int(what, "OMPI_COMM_WORLD_LOCAL_RANK", lr, 0, 65535, &o->local_rank) != BD_OK))
        return BD_EINVAL;
    return launch_check(what, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", o);
}

static int launch_slurm(bd_getenv_fn get, void *ctx, bd_launch *o)
{
    const char *what = "Slurm variables";
    o->by = BD_LAUNCH_SLURM;
    const char *lr = get(ctx, "SLURM_LOCALID"), *nodes = get(ctx, "SLURM_JOB_NODELIST");
    launch_local(get, ctx, "SLURM_NTASKS_PER_NODE", o);
    if (!nodes)
        nodes = get(ctx, "SLURM_NODELIST");
    if (launch_int(what, "SLURM_NTASKS", get(ctx, "SLURM_NTASKS"), 1, 65536, &o->world) != BD_OK
        || launch_int(what, "SLURM_PROCID", get(ctx, "SLURM_PROCID"), 0, 65535, &o->rank) != BD_OK
        || (lr && launch_int(what, "SLURM_LOCALID", lr, 0, 65535, &o->local_rank) != BD_OK))
        return BD_EINVAL;
    if (nodes) {
        if (bd_slurm_first_host(nodes, o->host, sizeof o->host) != BD_OK)
            return bd_seterr(BD_EINVAL, "%s: SLURM_JOB_NODELIST: %s", what, bd_lasterr());
        o->port = BD_LAUNCH_DEFAULT_PORT;
        const char *port = get(ctx, "MASTER_PORT");
        if (port && launch_int(what, "MASTER_PORT", port, 1, 65535, &o->port) != BD_OK)
            return BD_EINVAL;
    }
    return launch_check(what, "SLURM_PROCID", "SLURM_NTASKS", o);
}

int bd_launch_detect(const bd_launch_opts *opts, bd_getenv_fn get, void *ctx, bd_launch *out)
{
    bd_launch o = {.by = BD_LAUNCH_SINGLE, .rank = 0, .world = 1, .local_size = 1};
    const char *const *tr = bd_launcher_vars(BD_LAUNCH_TORCHRUN), *const *om = bd_launcher_vars(BD_LAUNCH_OMPI),
                      *const *sl = bd_launcher_vars(BD_LAUNCH_SLURM);
    int rc = BD_OK, n;
    if (opts && (opts->rank || opts->world_size || opts->rendezvous))
        rc = launch_opts(opts, &o);
    else if ((n = launch_present("torchrun variables", get, ctx, tr)) != 0)
        rc = n < 0 ? BD_EINVAL : launch_torchrun(get, ctx, &o);
    else if ((n = launch_present("Open MPI variables", get, ctx, om)) != 0)
        rc = n < 0 ? BD_EINVAL : launch_ompi(get, ctx, &o);
    else if ((n = launch_present("Slurm variables", get, ctx, sl)) != 0)
        rc = n < 0 ? BD_EINVAL : launch_slurm(get, ctx, &o);
    if (rc == BD_OK && (o.local_size < 1 || o.local_size > o.world))
        o.local_size = o.local_size > o.world ? o.world : 1;
    if (rc == BD_OK)
        *out = o;
    return rc;
}

static const char *launch_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

int bd_launch_from_env(const bd_launch_opts *opts, bd_launch *out)
{
    return bd_launch_detect(opts, launch_getenv, NULL, out);
}

int bd_slurm_first_host(const char *nodelist, char *out, size_t len)
{
    if (!nodelist || !*nodelist || *nodelist == ',' || *nodelist == '[')
        return bd_seterr(BD_EINVAL, "'%s' is not a Slurm node list", nodelist ? nodelist : "");
    size_t p = strcspn(nodelist, ",[");     /* the prefix of the first entry */
    size_t n = p;
    char digits[32] = "";
    if (nodelist[p] == '[') {               /* prefix[lo-hi,...]suffix: the first of the range */
        const char *r = nodelist + p + 1;
        size_t d = strspn(r, "0123456789");
        if (d == 0 || d >= sizeof digits || (r[d] != '-' && r[d] != ',' && r[d] != ']') || !strchr(r, ']'))
            return bd_seterr(BD_EINVAL, "'%s' is not a Slurm node list (a bracket holds no range)", nodelist);
        memcpy(digits, r, d);
        digits[d] = '\0';
        n += d;
    }
    if (n + 1 > len)
        return bd_seterr(BD_EINVAL, "the first host of '%s' is too long", nodelist);
    memcpy(out, nodelist, p);
    memcpy(out + p, digits, strlen(digits) + 1);
    if (nodelist[p] == '[') { /* a suffix after the bracket ("n[1-2]-ib") */
        const char *close = strchr(nodelist + p, ']');
        size_t s = strcspn(close + 1, ",");
        if (n + s + 1 > len)
            return bd_seterr(BD_EINVAL, "the first host of '%s' is too long", nodelist);
        memcpy(out + n, close + 1, s);
        out[n + s] = '\0';
    }
    return BD_OK;
}

long long bd_rank_world(void)
{
    const char *w = getenv("BODHI_WORLD_SIZE");
    long long world;
    return w && bd_parse_ll(w, 1, 65536, &world) == BD_OK ? world : 1;
}

const char *bd_rank_suffix(char *buf, size_t len)
{
    const char *r = getenv("BODHI_RANK");
    const long long world = bd_rank_world();
    long long rank = 0;
    if (world > 1 && r && bd_parse_ll(r, 0, world - 1, &rank) == BD_OK)
        snprintf(buf, len, ".r%lld", rank);
    else if (len)
        buf[0] = '\0';
    return buf;
}
