/* checkpoint.cpp: bdt_save, bdt_load and bdt_load_actor (torch/bd_torch.h).
 *
 * Checkpoint file: a torch::serialize archive, written to path.tmp then renamed:
 *    "bodhi/format"    string "bodhi-torch-2"
 *    "bodhi/arch"      int64 (5): obs_dim, act_kind, act_dim, hidden, layers
 *    "bodhi/payload"   uint8 (bytes): an inner archive, serialised, holding
 *        "params"        nested archive, "<i>" = i-th tensor in the flat order of policy.cpp
 *        "optimizer"     nested archive from torch::optim::Adam::save (only when saved with o)
 *    "bodhi/checksum"  int64 (1): FNV-1a 64 of the payload bytes
 * followed by a 24-byte trailer: "BDHICKPT", the archive's length (u64 LE) and FNV-1a 64 of
 * the archive's bytes (u64 LE). libtorch's zip reader checks no CRCs and trusts the sizes
 * in its pickles, so a damaged file could load silently or read out of bounds; the
 * trailer is checked on the raw bytes before libtorch parses anything (BD_ETORCH), and
 * every tensor's storage is checked to hold its elements before its data is read.
 * Loading with o restores Adam's moments and step counts; the learning rate stays the one
 * o has now (libtorch's Adam::load does not restore options), as the caller schedules it.
 * Loading with o from a file saved without an optimiser is BD_EINVAL.
 */
#include "torch/shim.hpp"

using namespace bd_shim;

namespace {

uint64_t fnv1a64(const unsigned char *b, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Write bytes to path.tmp, fsync, rename over path. BD_EIO with the file and errno text. */
int write_file_atomic(const char *path, const std::string &bytes, const char *where)
{
    const std::string tmp = std::string(path) + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        return bd_seterr(BD_EIO, "%s: %s: %s", where, tmp.c_str(), std::strerror(err));
    }
    const char *b = bytes.data();
    size_t left = bytes.size();
    while (left > 0) {
        ssize_t w = write(fd, b, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int err = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp.c_str());
            return bd_seterr(BD_EIO, "%s: write %s: %s", where, tmp.c_str(), std::strerror(err));
        }
        b += w;
        left -= (size_t)w;
    }
    int err = fsync(fd) != 0 ? errno : 0;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err != 0) {
        unlink(tmp.c_str());
        return bd_seterr(BD_EIO, "%s: write %s: %s", where, tmp.c_str(), std::strerror(err));
    }
    if (rename(tmp.c_str(), path) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return bd_seterr(BD_EIO, "%s: rename %s -> %s: %s", where, tmp.c_str(), path, std::strerror(err));
    }
    return BD_OK;
}

/* more tensors than any network within bdt_policy_param_count_of's limits has */
constexpr size_t kMaxTensors = 8192;

const char kTrailerMagic[8] = {'B', 'D', 'H', 'I', 'C', 'K', 'P', 'T'};
const size_t kTrailerSize = 24;

void put_u64(std::string &s, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        s.push_back((char)(v >> (8 * i)));
}

uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* file += magic, length, FNV-1a of file (see the opening comment). */
void append_trailer(std::string &file)
{
    const uint64_t n = file.size();
    const uint64_t sum = fnv1a64(reinterpret_cast<const unsigned char *>(file.data()), file.size());
    file.append(kTrailerMagic, sizeof kTrailerMagic);
    put_u64(file, n);
    put_u64(file, sum);
}

/* Reads path whole and checks its trailer; *archive holds the bytes before it. Errors name where. */
int read_checked(const char *path, std::string *archive, const char *where)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return bd_seterr(err == ENOENT ? BD_ENOTFOUND : BD_EIO, "%s: %s: %s", where, path, std::strerror(err));
    }
    std::string buf;
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            return bd_seterr(BD_EIO, "%s: %s: %s", where, path, std::strerror(err));
        }
        if (r == 0)
            break;
        buf.append(chunk, (size_t)r);
    }
    close(fd);
    const unsigned char *b = reinterpret_cast<const unsigned char *>(buf.data());
    const size_t n = buf.size();
    if (n < kTrailerSize || std::memcmp(b + n - kTrailerSize, kTrailerMagic, sizeof kTrailerMagic) != 0)
        return bd_seterr(BD_ETORCH, "%s: %s: not a bodhi checkpoint (no BDHICKPT trailer)", where, path);
    const size_t len = n - kTrailerSize;
    if (get_u64(b + len + 8) != len || get_u64(b + len + 16) != fnv1a64(b, len))
        return bd_seterr(BD_ETORCH, "%s: %s: damaged checkpoint (length or checksum mismatch)", where, path);
    buf.resize(len);
    *archive = std::move(buf);
    return BD_OK;
}

/* 1 when t's storage holds all of its elements (a pickle can claim more than it has). */
bool storage_ok(const torch::Tensor &t)
{
    if (!t.defined() || !t.has_storage())
        return false;
    const size_t need = (size_t)(t.storage_offset() + t.numel()) * (size_t)t.element_size();
    return t.storage().nbytes() >= need;
}

} // namespace

extern "C" int bdt_save(bdt_policy *p, bdt_ppo *o, const char *path)
{
    if (!p || !path)
        return bd_seterr(BD_EINVAL, "bdt_save: NULL argument");
    if (o && o->p != p)
        return bd_seterr(BD_EINVAL, "bdt_save: %s: the optimiser belongs to another policy", path);
    return bd_shim::save_policy(p, o ? o->opt.get() : nullptr, path);
}

/* The policy's parameters (and o's state) in the container write_checkpoint writes. */
int bd_shim::save_policy(bdt_policy *p, torch::optim::Adam *o, const char *path)
{
    const bdt_policy_config &c = p->cfg;
    torch::serialize::OutputArchive inner;
    try {
        torch::NoGradGuard ng;
        write_tensors(inner, "params", p->params);
        if (o) {
            torch::serialize::OutputArchive opt;
            o->save(opt);
            inner.write("optimizer", opt);
        }
    } catch (...) {
        return catch_torch("bdt_save", path);
    }
    return write_checkpoint(path, kPolicyFormat, {c.obs_dim, (int64_t)c.act_kind, c.act_dim, c.hidden, c.layers}, inner,
                            "bdt_save");
}

extern "C" int bdt_load(bdt_policy *p, bdt_ppo *o, const char *path)
{
    if (!p || !path)
        return bd_seterr(BD_EINVAL, "bdt_load: NULL argument");
    if (o && o->p != p)
        return bd_seterr(BD_EINVAL, "bdt_load: %s: the optimiser belongs to another policy", path);
    std::unique_ptr<torch::optim::Adam> opt;
    const torch::optim::AdamOptions adam = o ? torch::optim::AdamOptions(o->cfg.lr).eps(1e-5)
                                             : torch::optim::AdamOptions();
    int rc = bd_shim::load_policy(p, o ? &adam : nullptr, o ? &opt : nullptr, path);
    if (rc == BD_OK && o)
        o->opt = std::move(opt);
    return rc;
}

int bd_shim::load_policy(bdt_policy *p, const torch::optim::AdamOptions *adam,
                         std::unique_ptr<torch::optim::Adam> *o, const char *path)
{
    std::vector<int64_t> a;
    torch::serialize::InputArchive inner;
    int rc = read_checkpoint(path, kPolicyFormat, 5, a, inner, p->dev, "bdt_load");
    if (rc != BD_OK)
        return rc;
    const bdt_policy_config &c = p->cfg;
    /* ppo's networks (discrete, continuous) and dqn's Q-network share this format: say
     * which brain wrote the file when it is the other's */
    const bool file_q = a[1] == (int64_t)BDT_Q, want_q = enum_as_int(&c.act_kind) == BDT_Q;
    if (file_q != want_q)
        return bd_seterr(BD_EINVAL, "bdt_load: %s: a checkpoint of a %s brain (act_kind %s); this agent's %s brain "
                         "cannot start from it", path, file_q ? "dqn" : "ppo", kind_name((int)a[1]),
                         want_q ? "dqn" : "ppo");
    if (a[0] != c.obs_dim || a[1] != (int64_t)c.act_kind || a[2] != c.act_dim || a[3] != c.hidden || a[4] != c.layers)
        return bd_seterr(BD_EINVAL,
                         "bdt_load: %s: architecture mismatch: file has obs_dim=%lld act_kind=%s "
                         "act_dim=%lld hidden=%lld layers=%lld, policy has obs_dim=%d act_kind=%s "
                         "act_dim=%d hidden=%d layers=%d",
                         path, (long long)a[0], kind_name((int)a[1]), (long long)a[2], (long long)a[3],
                         (long long)a[4], c.obs_dim, kind_name(c.act_kind), c.act_dim, c.hidden, c.layers);
    try {
        /* Read everything before changing anything, so that a failure leaves p and o as
         * they were. */
        std::vector<torch::Tensor> loaded;
        if (!read_tensors(inner, "params", p->params, loaded))
            return bd_seterr(BD_ETORCH, "bdt_load: %s: the parameters are missing or of the wrong shape or type",
                             path);
        std::unique_ptr<torch::optim::Adam> opt;
        if (o && adam) {
            torch::serialize::InputArchive oa;
            if (!inner.try_read("optimizer", oa))
                return bd_seterr(BD_EINVAL,
                                 "bdt_load: %s: the file holds no optimiser state (load with o = NULL "
                                 "to read the parameters alone)",
                                 path);
            opt.reset(new torch::optim::Adam(p->params, *adam));
            opt->load(oa);
        }
        {
            torch::NoGradGuard ng;
            for (size_t i = 0; i < p->params.size(); i++)
                p->params[i].copy_(loaded[i]);
        }
        if (o && adam)
            *o = std::move(opt);
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_load", path);
    }
}

extern "C" int bdt_load_actor(const char *path, bdt_policy_config *cfg, bdt_policy **out)
{
    if (out)
        *out = nullptr;
    if (!path || !cfg || !out)
        return bd_seterr(BD_EINVAL, "bdt_load_actor: NULL argument");
    std::vector<int64_t> a;
    torch::serialize::InputArchive inner;
    const char *format = nullptr;
    int rc = read_checkpoint(path, nullptr, 0, a, inner, torch::Device(torch::kCPU), "bdt_load_actor", &format);
    if (rc != BD_OK)
        return rc;
    /* obs_dim, act_kind, act_dim, hidden, layers (sac's learner: no act_kind, its actor's is squashed) */
    const bool sac = format == kSacFormat;
    const int64_t d[5] = {a[0], sac ? (int64_t)BDT_SQUASHED : a[1], a[sac ? 1 : 2], a[sac ? 2 : 3], a[sac ? 3 : 4]};
    bdt_policy_config c = {};
    bool ok = d[1] >= BDT_DISCRETE && d[1] <= BDT_Q;
    for (int i : {0, 2, 3, 4})
        ok = ok && d[i] >= 1 && d[i] <= (1 << 24);
    if (ok) {
        c.obs_dim = (int)d[0];
        c.act_kind = (bdt_act_kind)d[1];
        c.act_dim = (int)d[2];
        c.hidden = (int)d[3];
        c.layers = (int)d[4];
        c.device = BDT_CPU;
    }
    /* a file of n bytes holds at most n / 4 parameters: a damaged or made-up architecture
     * is refused before its network is allocated */
    struct stat st;
    const uint64_t count = ok ? bdt_policy_param_count_of(&c) : 0;
    if (count == 0 || stat(path, &st) != 0 || count > (uint64_t)st.st_size / sizeof(float))
        return bd_seterr(BD_ETORCH,
                         "bdt_load_actor: %s: the file's network (obs_dim=%lld act_kind=%s act_dim=%lld hidden=%lld "
                         "layers=%lld) is not one it can hold",
                         path, (long long)d[0], kind_name((int)d[1]), (long long)d[2], (long long)d[3],
                         (long long)d[4]);
    /* the file's tensors in flat order, read and checked before any network is built: the
     * network starts from them, with no initial draw (a wide network's QR takes seconds) */
    const char *what = sac ? "actor is" : "parameters are";
    std::vector<torch::Tensor> got;
    std::vector<float> flat;
    try {
        torch::serialize::InputArchive t;
        uint64_t total = 0;
        if (inner.try_read(sac ? "actor" : "params", t))
            for (size_t i = 0; i < kMaxTensors; i++) {
                torch::Tensor x;
                if (!t.try_read(std::to_string(i), x))
                    break;
                if (x.scalar_type() != torch::kFloat32 || !storage_ok(x) || (total += (uint64_t)x.numel()) > count)
                    return bd_seterr(BD_ETORCH, "bdt_load_actor: %s: the %s of the wrong shape or type", path, what);
                got.push_back(x.contiguous());
            }
        if (total != count)
            return bd_seterr(BD_ETORCH, "bdt_load_actor: %s: the %s missing or of the wrong shape", path, what);
        flat.reserve(count);
        for (const auto &x : got)
            flat.insert(flat.end(), x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    } catch (...) {
        return catch_torch("bdt_load_actor", path);
    }
    bdt_policy *p = nullptr;
    if ((rc = bdt_policy_create_from(&c, flat.data(), flat.size(), &p)) != BD_OK)
        return rc;
    bool same = p->params.size() == got.size();
    for (size_t i = 0; same && i < got.size(); i++)
        same = p->params[i].sizes().equals(got[i].sizes());
    if (!same) {
        bdt_policy_destroy(p);
        return bd_seterr(BD_ETORCH, "bdt_load_actor: %s: the %s of the wrong shape", path, what);
    }
    *cfg = c;
    *out = p;
    return BD_OK;
}

/* The container every checkpoint shares (see the opening comment): policies (above) and
 * SAC's (torch/sac.cpp) each put a format and archive of their own in it. */
/* The outer archive around inner (see the opening comment), with its trailer, to path. */
int bd_shim::write_checkpoint(const char *path, const char *format, const std::vector<int64_t> &arch,
                              torch::serialize::OutputArchive &inner, const char *where)
{
    std::string file; /* the whole checkpoint, serialised */
    try {
        std::ostringstream ss;
        inner.save_to(ss);
        const std::string bytes = ss.str();
        const uint64_t sum = fnv1a64(reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size());
        torch::serialize::OutputArchive ar;
        ar.write("bodhi/format", c10::IValue(std::string(format)));
        ar.write("bodhi/arch", torch::tensor(arch), true);
        ar.write("bodhi/payload",
                 torch::from_blob(const_cast<char *>(bytes.data()), {(int64_t)bytes.size()}, torch::kUInt8),
                 true);
        ar.write("bodhi/checksum", torch::tensor(std::vector<int64_t>{(int64_t)sum}), true);
        std::ostringstream out;
        ar.save_to(out);
        file = out.str();
    } catch (...) {
        return catch_torch(where, path);
    }
    append_trailer(file);
    return write_file_atomic(path, file, where);
}

/* Who writes a checkpoint of format f, for messages. */
static const char *format_kind(const char *f)
{
    return std::strcmp(f, kPolicyFormat) == 0       ? "a ppo or dqn brain's"
           : std::strncmp(f, "bodhi-sac-", 10) == 0 ? "a sac brain's"
           : std::strncmp(f, "bodhi-", 6) == 0      ? "another bodhi version's"
                                                    : "not bodhi's";
}

int bd_shim::read_checkpoint(const char *path, const char *format, size_t narch, std::vector<int64_t> &arch,
                             torch::serialize::InputArchive &inner, const torch::Device &dev, const char *where,
                             const char **found)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int err = errno;
        return bd_seterr(err == ENOENT ? BD_ENOTFOUND : BD_EIO, "%s: %s: %s", where, path, std::strerror(err));
    }
    if (!S_ISREG(st.st_mode))
        return bd_seterr(BD_EIO, "%s: %s: not a regular file", where, path);
    std::string file;
    int rc = read_checked(path, &file, where);
    if (rc != BD_OK)
        return rc;
    try {
        torch::serialize::InputArchive ar;
        try {
            ar.load_from(file.data(), file.size(), torch::Device(torch::kCPU));
        } catch (const c10::Error &e) {
            return bd_seterr(BD_ETORCH, "%s: %s: not a readable checkpoint: %s", where, path,
                             e.what_without_backtrace());
        } catch (const std::exception &e) {
            return bd_seterr(BD_ETORCH, "%s: %s: not a readable checkpoint: %s", where, path, e.what());
        }
        c10::IValue fmt;
        torch::Tensor at, payload, sum;
        const bool named = ar.try_read("bodhi/format", fmt) && fmt.isString();
        if (named && !format) { /* whichever brain's */
            const std::string &f = fmt.toStringRef();
            if (f == kPolicyFormat || f == kSacFormat) {
                format = f == kPolicyFormat ? kPolicyFormat : kSacFormat;
                narch = f == kPolicyFormat ? 5 : 4;
            } else
                return bd_seterr(BD_ETORCH, "%s: %s: a checkpoint of format %s (%s), not a ppo, dqn or sac brain's",
                                 where, path, f.c_str(), format_kind(f.c_str()));
        }
        if (found)
            *found = format;
        if (named && fmt.toStringRef() != format)
            return bd_seterr(BD_ETORCH, "%s: %s: a checkpoint of format %s, not %s (%s)", where, path,
                             fmt.toStringRef().c_str(), format, format_kind(fmt.toStringRef().c_str()));
        if (!named || !ar.try_read("bodhi/arch", at, true) || at.numel() != (int64_t)narch ||
            at.scalar_type() != torch::kLong || !storage_ok(at))
            return bd_seterr(BD_ETORCH, "%s: %s: not a bodhi checkpoint of format %s", where, path,
                             format ? format : "bodhi-torch-2 or bodhi-sac-1");
        at = at.contiguous();
        arch.assign(at.data_ptr<int64_t>(), at.data_ptr<int64_t>() + narch);
        if (!ar.try_read("bodhi/payload", payload, true) || payload.scalar_type() != torch::kUInt8 ||
            payload.dim() != 1 || !ar.try_read("bodhi/checksum", sum, true) || sum.numel() != 1 ||
            sum.scalar_type() != torch::kLong || !storage_ok(payload) || !storage_ok(sum))
            return bd_seterr(BD_ETORCH, "%s: %s: damaged checkpoint (no payload or checksum)", where, path);
        payload = payload.contiguous();
        const unsigned char *bytes = payload.data_ptr<uint8_t>();
        const size_t nbytes = (size_t)payload.numel();
        if ((int64_t)fnv1a64(bytes, nbytes) != sum.contiguous().data_ptr<int64_t>()[0])
            return bd_seterr(BD_ETORCH, "%s: %s: damaged checkpoint (checksum mismatch)", where, path);
        inner.load_from(reinterpret_cast<const char *>(bytes), nbytes, dev);
        return BD_OK;
    } catch (...) {
        return catch_torch(where, path);
    }
}

int bd_shim::read_tensors(torch::serialize::InputArchive &inner, const char *key,
                          const std::vector<torch::Tensor> &like, std::vector<torch::Tensor> &out)
{
    torch::serialize::InputArchive a;
    if (!inner.try_read(key, a))
        return 0;
    out.assign(like.size(), torch::Tensor());
    for (size_t i = 0; i < like.size(); i++)
        if (!a.try_read(std::to_string(i), out[i]) || !out[i].sizes().equals(like[i].sizes()) ||
            out[i].scalar_type() != torch::kFloat32 || !storage_ok(out[i]))
            return 0;
    return 1;
}

void bd_shim::write_tensors(torch::serialize::OutputArchive &inner, const char *key,
                            const std::vector<torch::Tensor> &ts)
{
    torch::serialize::OutputArchive a;
    for (size_t i = 0; i < ts.size(); i++)
        a.write(std::to_string(i), ts[i].detach().clone()); /* a view would save its whole storage */
    inner.write(key, a);
}
