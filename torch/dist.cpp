/* dist.cpp: learner groups over c10d's ProcessGroupGloo (torch/dist.h). */
#include <algorithm>
#include <chrono>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <vector>
#include <string>
#include <thread>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <gloo/allreduce_halving_doubling.h>
#include <gloo/rendezvous/context.h>

#include "torch/shim.hpp"
#include "torch/dist.h"

using namespace bd_shim;

/* The all-reduces, the gradient's once a minibatch and the statistics', on the calling
 * thread. c10d's all-reduce hands each one to the group's worker thread, which hands every
 * message to Gloo's event-loop thread and back (a 36 KB gradient went as 4 segments of 9
 * KB, 9 thread wake-ups and 18 receives a rank). A second Gloo context over the group's
 * own device, its pairs in Gloo's synchronous mode, is read and written by the caller
 * alone: a send is one write, a receive one blocking read. Halving-doubling reduces each
 * element on one rank and sends it on, so every rank gets the same bits (for any number of
 * ranks).
 *
 * In synchronous mode partners write to each other at once and read only after: a message
 * must fit in the sender's socket buffer, which the kernel caps at net.core.wmem_max
 * (212992 by default, about 416 KiB of buffer; two ranks hung at 576 KiB messages with that
 * cap, at 544 KiB they did not). So a buffer is all-reduced in chunks of at most
 * kFastChunkBytes, each its own all-reduce: halving-doubling's largest message is then
 * about half a chunk, 96 KiB, and Gloo sizes the socket's send buffer to it. Up to
 * kFastMaxBytes take this path; larger buffers, and broadcasts, go through c10d. */
static constexpr size_t kFastChunkBytes = 192u << 10;
static constexpr size_t kFastMaxBytes = 16u << 20;

/* One all-reduce of the fast path: Gloo's algorithm over a buffer of its own, one per
 * chunk. Made the first time a size (and operation) is asked for, in the same order on
 * every rank, since every rank asks for the same collectives with the same sizes in the
 * same order (the slots its buffers take then agree; a size that differs between ranks is
 * an error of Gloo's, not a hang). */
template <typename T> struct FastOp {
    std::vector<T> buf;
    std::vector<std::unique_ptr<gloo::AllreduceHalvingDoubling<T>>> ar;
};

struct bdt_group {
    c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
    std::shared_ptr<gloo::rendezvous::Context> fast; /* synchronous pairs, caller-driven */
    std::map<size_t, FastOp<float>> fast_mean;                   /* by size */
    std::map<std::pair<size_t, int>, FastOp<double>> fast_f64; /* by size and operation */
    int rank = 0, size = 1;
    bool spin = false; /* bdt_group_spin */
    std::chrono::milliseconds timeout{60000};
    std::string id; /* this launch's group: rank 0's draw, hex (bdt_group_id) */
    /* by rank: the address ("[ip]:port", Gloo's Address::str) that rank's end of its pair
     * with this rank has, which Gloo's errors on that pair name; "" for this rank and
     * without the fast pairs */
    std::vector<std::string> peer;
};

template <typename T>
static FastOp<T> &fast_op(bdt_group *g, FastOp<T> &op, size_t n, const gloo::ReductionFunction<T> *fn)
{
    if (op.ar.empty()) {
        op.buf.assign(n, T(0));
        const size_t per = kFastChunkBytes / sizeof(T);
        try {
            for (size_t at = 0; at < n; at += per)
                op.ar.push_back(std::make_unique<gloo::AllreduceHalvingDoubling<T>>(
                    g->fast, std::vector<T *>{op.buf.data() + at}, (int)std::min(per, n - at), fn));
        } catch (...) {
            op.ar.clear(); /* never a part of the chunks */
            throw;
        }
    }
    return op;
}

template <typename T> static void fast_run(FastOp<T> &op)
{
    for (auto &a : op.ar)
        a->run();
}

/* The fast pairs' waits spin (Gloo's busy poll, which still ends at the pairs' timeout)
 * for this object's life, when on. Switching back can throw on a pair that closed (Gloo's
 * setSync checks its state): that pair's error is the collective's or the next one's, and
 * the other pairs are switched back all the same. */
struct SpinGuard {
    bdt_group *g;
    bool on;
    SpinGuard(bdt_group *grp, bool want) : g(grp), on(want)
    {
        if (!on)
            return;
        try {
            for (int i = 0; i < g->size; i++)
                if (i != g->rank)
                    g->fast->getPair(i)->setSync(true, true);
        } catch (...) { /* no destructor runs for a constructor that throws */
            off();
            throw;
        }
    }
    ~SpinGuard()
    {
        if (on)
            off();
    }
    void off() /* every pair, whichever throws */
    {
        for (int i = 0; i < g->size; i++)
            if (i != g->rank) {
                try {
                    g->fast->getPair(i)->setSync(true, false);
                } catch (...) {
                }
            }
    }
};

/* The join's store: every wait (and every get, which waits for its key) ends by one
 * deadline, polling the store every 10 ms, so a join fails within its timeout whichever
 * rendezvous a rank is missing from or late to: c10d's group's, then the pairs' of the
 * calling thread's own all-reduces. (A rank that joined c10d's group late and then died
 * left the others waiting a second timeout; FileStore's own waits also give each wait a
 * fresh timeout, in whole seconds, rounded up.) Disarmed once the group is made: later
 * waits, if any, take their own timeouts. */
struct DeadlineStore : c10d::Store {
    c10::intrusive_ptr<c10d::Store> in;
    std::chrono::steady_clock::time_point end;
    double timeout_s;
    const volatile int *cancel; /* nonzero: a stop asked for; the wait ends at its next poll */
    bdt_left_fn left;           /* a rank's word that it left (NULL: none) */
    bool armed = true;
    unsigned polls = 0;
    DeadlineStore(c10::intrusive_ptr<c10d::Store> s, std::chrono::steady_clock::time_point e, double t,
                  const volatile int *c, bdt_left_fn l)
        : in(std::move(s)), end(e), timeout_s(t), cancel(c), left(l)
    {
    }
    /* A rendezvous key as the rank it waits for: Gloo's full mesh has each rank set its
     * address under its rank's number ("0/1": context 0's, rank 1's, under c10d's prefix
     * for the context; "1" in the fast context's own prefix); any other key as it is. */
    static std::string absent(const std::string &key)
    {
        const size_t slash = key.rfind('/');
        const std::string last = slash == std::string::npos ? key : key.substr(slash + 1);
        if (last.empty() || last.size() > 5 || last.find_first_not_of("0123456789") != std::string::npos)
            return key;
        return "rank " + last + " (key " + key + ")";
    }
    /* Polls ready() every 10 ms until it holds, failing on a stop asked for (cancel), on a
     * rank's word that it left before the group formed (`left`), or at `by` (at most the join's
     * deadline) with "the group's rendezvous found no WHAT". */
    template <typename F> void poll(F ready, const std::string &what, std::chrono::steady_clock::time_point by)
    {
        by = std::min(by, end);
        while (!ready()) {
            if (cancel && *cancel)
                throw std::runtime_error("stopped while it waited for the other ranks");
            char why[1024];
            if (left && polls++ % 10 == 0 && left(why, sizeof why)) /* every 100 ms: it may list a folder */
                throw std::runtime_error(why);
            if (std::chrono::steady_clock::now() >= by)
                throw std::runtime_error("the group's rendezvous found no " + what + " within the join's " +
                                         std::to_string((int)timeout_s) + " s (absent, late or gone)");
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    void until(const std::vector<std::string> &keys, std::chrono::steady_clock::time_point by)
    {
        std::string k;
        for (const auto &key : keys)
            k += (k.empty() ? "" : ", ") + absent(key);
        poll([&] { return in->check(keys); }, k, by);
    }
    /* key's value, "" while it is absent */
    std::string value(const std::string &key)
    {
        if (!in->check({key}))
            return "";
        const std::vector<uint8_t> v = in->get(key);
        return std::string(v.begin(), v.end());
    }
    void set(const std::string &key, const std::vector<uint8_t> &v) override { in->set(key, v); }
    std::vector<uint8_t> compareSet(const std::string &key, const std::vector<uint8_t> &cur,
                                    const std::vector<uint8_t> &v) override
    {
        return in->compareSet(key, cur, v);
    }
    std::vector<uint8_t> get(const std::string &key) override
    {
        if (armed)
            until({key}, end);
        return in->get(key);
    }
    int64_t add(const std::string &key, int64_t v) override { return in->add(key, v); }
    bool deleteKey(const std::string &key) override { return in->deleteKey(key); }
    bool check(const std::vector<std::string> &keys) override { return in->check(keys); }
    int64_t getNumKeys() override { return in->getNumKeys(); }
    void wait(const std::vector<std::string> &keys) override { wait(keys, getTimeout()); }
    void wait(const std::vector<std::string> &keys, const std::chrono::milliseconds &t) override
    {
        if (armed)
            until(keys, std::chrono::steady_clock::now() + t);
        else
            in->wait(keys, t);
    }
};

namespace {

/* A field of a rank's launch description ("world=2;run=<sha256>": bdt_group_join's meta
 * with the group's size before it), "" when absent. */
std::string meta_field(const std::string &meta, const std::string &key)
{
    size_t at = 0;
    while (at <= meta.size()) {
        const size_t end = std::min(meta.find(';', at), meta.size());
        const std::string f = meta.substr(at, end - at);
        if (f.compare(0, key.size() + 1, key + "=") == 0)
            return f.substr(key.size() + 1);
        at = end + 1;
    }
    return "";
}

/* Rank `who`'s launch description against this rank's: what differs, in words ("" when
 * nothing does). */
std::string meta_differs(const std::string &mine, int me, const std::string &theirs, int who)
{
    if (theirs == mine)
        return "";
    const std::string ws = meta_field(theirs, "world"), wm = meta_field(mine, "world");
    if (ws.empty() || wm.empty())
        return "rank " + std::to_string(who) + " did not say how it was started (\"" + theirs.substr(0, 200) +
               "\"): another version of bodhi?";
    if (ws != wm)
        return "rank " + std::to_string(who) + " was started as one of " + ws + " ranks, rank " + std::to_string(me) +
               " as one of " + wm + " (WORLD_SIZE, SLURM_NTASKS or mpirun -n must be the same for every rank)";
    const std::string rs = meta_field(theirs, "run"), rm = meta_field(mine, "run");
    if (rs != rm)
        return "rank " + std::to_string(who) + "'s effective run file (run.yml, SHA-256 " + rs.substr(0, 16) +
               "...) is not rank " + std::to_string(me) + "'s (" + rm.substr(0, 16) +
               "...): every rank must be started with the same run file, --seed and --set";
    return "rank " + std::to_string(who) + " was started as \"" + theirs + "\", rank " + std::to_string(me) + " as \"" +
           mine + "\"";
}

/* 16 bytes from the kernel's generator, as hex: a launch's group id. */
std::string draw_id()
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        const ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            throw std::runtime_error(std::string("getrandom: ") + strerror(errno));
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    std::string s;
    for (unsigned char c : b) {
        s += hex[c >> 4];
        s += hex[c & 15];
    }
    return s;
}

} // namespace

extern "C" int bdt_group_join(const char *store_path, const char *name, int rank, int world, const char *host,
                              double timeout_s, const char *meta, const volatile int *cancel, bdt_left_fn left,
                              double launched, bdt_group **out)
{
    if (!store_path || !name || !out || world < 1 || rank < 0 || rank >= world || !(timeout_s > 0))
        return bd_seterr(BD_EINVAL, "bdt_group_join: bad arguments (rank %d of %d, timeout %g s)", rank, world,
                         timeout_s);
    *out = nullptr;
    try {
        auto g = std::make_unique<bdt_group>();
        g->rank = rank;
        g->size = world;
        g->timeout = std::chrono::milliseconds((long long)(timeout_s * 1000.0));
        const auto deadline = std::chrono::steady_clock::now() + g->timeout;
        /* the file first: c10d's FileStore reads a file that is not there yet by retrying
         * for its whole timeout, deaf to a stop (a rank that came before rank 0 sat there) */
        const int fd = open(store_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ENOENT)
            throw std::runtime_error("the group's store folder is gone: rank 0's run ended before this rank joined "
                                     "(it removes the folder at its end; did it fail to start, a run file or option "
                                     "it refused?)");
        if (fd < 0)
            throw std::runtime_error(std::string("cannot make the group's store: ") + strerror(errno));
        close(fd);
        /* no count of workers: c10d's FileStore removes its file when a count of closed
         * stores, which the file keeps across launches, reaches the closing store's own
         * size, so a rank that failed fast (started with a larger WORLD_SIZE) over what a
         * failed launch had left removed the store from under a group still joining. The
         * file is bodhi's to remove (rank 0 once its group formed, or the sweep). */
        auto file = c10::make_intrusive<c10d::FileStore>(store_path, -1);
        file->setTimeout(g->timeout);
        /* every wait of the join under `prefix`: one deadline, the stop flag, the others'
         * words that they left */
        auto deadline_store = [&](const std::string &prefix) {
            auto d = c10::make_intrusive<DeadlineStore>(c10::make_intrusive<c10d::PrefixStore>(prefix, file), deadline,
                                                        timeout_s, cancel, left);
            d->setTimeout(g->timeout);
            return d;
        };
        auto store = deadline_store(name);
        /* Before Gloo sees anything, a handshake that makes this launch's keys its own: rank
         * 0 clears every rank's entry, then answers each rank's entry (a draw of its own,
         * with its launch: the group's size and `meta`) with that draw, the group's id and
         * rank 0's launch; a rank waits for an answer carrying its own draw, putting its
         * entry back while it is not there. Every other key of the join is under the id,
         * so nothing an earlier launch into the same store left (addresses whose ranks are
         * gone, answers) is ever read. Ranks started differently (another group size,
         * run file, seed) fail here on every rank, naming the difference, rather than in
         * Gloo's checks of its messages' sizes (an abort) or not at all (a seed). */
        const std::string mine = "world=" + std::to_string(world) + (meta && *meta ? ";" : "") + (meta ? meta : "");
        auto as_bytes = [](const std::string &t) { return std::vector<uint8_t>(t.begin(), t.end()); };
        /* rank 0's size and when it began to join ("<world> <wall s>"), by which a rank
         * numbered at or past it, which rank 0 never answers, knows why */
        const std::string size_key = "size";
        if (world > 1 && rank == 0) {
            g->id = draw_id();
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            store->set(size_key, as_bytes(std::to_string(world) + " " +
                                          std::to_string((double)now.tv_sec + now.tv_nsec * 1e-9)));
            for (int k = 1; k < world; k++)
                store->set("launch/" + std::to_string(k), {});
            std::string differs;
            for (int k = 1; k < world; k++) {
                const std::string key = "launch/" + std::to_string(k);
                std::string v;
                store->poll([&] { return !(v = store->value(key)).empty(); }, DeadlineStore::absent(key), deadline);
                const size_t nl = v.find('\n');
                const std::string draw = v.substr(0, nl), theirs = nl == std::string::npos ? "" : v.substr(nl + 1);
                store->set("answer/" + std::to_string(k), as_bytes(draw + "\n" + g->id + "\n" + mine));
                if (differs.empty())
                    differs = meta_differs(mine, 0, theirs, k);
            }
            if (!differs.empty())
                throw std::runtime_error(differs);
        } else if (world > 1) {
            const std::string draw = draw_id(), entry = draw + "\n" + mine;
            const std::string key = "launch/" + std::to_string(rank), akey = "answer/" + std::to_string(rank);
            std::string answer;
            /* the size in the store when it has no place for this rank ("" otherwise), and
             * in *fresh whether rank 0 wrote it after this launch began (else it may be an
             * earlier launch's, and only a hint at the deadline) */
            auto past_size = [&](bool *fresh) {
                const std::string v = store->value(size_key);
                char *end = nullptr;
                const long w0 = v.empty() ? 0 : strtol(v.c_str(), &end, 10);
                const double t0 = end && *end == ' ' ? strtod(end + 1, nullptr) : 0;
                *fresh = launched > 0 && t0 >= launched;
                if (w0 < 1 || rank < w0)
                    return std::string();
                return "rank 0 was started as one of " + std::to_string(w0) + " ranks (0 to " + std::to_string(w0 - 1) +
                       "), this rank as rank " + std::to_string(rank) + " of " + std::to_string(world) +
                       " (WORLD_SIZE, SLURM_NTASKS or mpirun -n must be the same for every rank)";
            };
            store->set(key, as_bytes(entry));
            /* rank 0 removes the store once its group has formed: the file gone, or
             * another in its place, after this rank's entry means a group formed without it
             * (and a store op on a file gone would retry for the store's timeout: here the
             * least FileStore waits, a second, as it counts whole seconds) */
            struct stat was;
            if (stat(store_path, &was) != 0)
                throw std::runtime_error(std::string("cannot see the group's store: ") + strerror(errno));
            auto gone = [&] {
                struct stat now;
                return stat(store_path, &now) != 0 || now.st_ino != was.st_ino || now.st_dev != was.st_dev;
            };
            std::string size_seen; /* the last size seen in the store that has no place for this rank */
            auto formed_without = [&] {
                return std::runtime_error(
                    "rank 0's group formed without this rank (rank 0 removes the group's store once its ranks have "
                    "joined): " + (size_seen.empty() ? "was rank 0 started as one of fewer ranks (WORLD_SIZE, "
                                                       "SLURM_NTASKS or mpirun -n must be the same for every rank)?"
                                                     : size_seen));
            };
            file->setTimeout(std::chrono::milliseconds(250));
            try {
                store->poll(
                    [&] {
                        try {
                            if (gone())
                                throw formed_without();
                            answer = store->value(akey);
                            if (answer.compare(0, draw.size() + 1, draw + "\n") == 0)
                                return true;
                            bool fresh;
                            size_seen = past_size(&fresh); /* the size there now (a stale one replaced) */
                            if (fresh && !size_seen.empty())
                                throw std::runtime_error(size_seen);
                            /* rank 0 clears the entry when it comes (put it back); anything
                             * else there now is another live process's, started as this rank too */
                            const std::string there = store->value(key);
                            if (there.empty())
                                store->set(key, as_bytes(entry));
                            else if (there != entry)
                                throw std::runtime_error("another process was started as rank " +
                                                         std::to_string(rank) +
                                                         " of this group (the same RANK twice, or a second launch "
                                                         "into the same --out and rendezvous port)");
                            return false;
                        } catch (const std::exception &) { /* FileStore's open of a file gone: system_error */
                            if (gone())
                                throw formed_without();
                            throw;
                        }
                    },
                    "rank 0 (its answer, key " + akey + ")", deadline);
            } catch (const std::runtime_error &e) {
                if (size_seen.empty() || std::string(e.what()).find("found no rank 0") == std::string::npos)
                    throw;
                throw std::runtime_error(std::string(e.what()) + "; the store's rank 0, this launch's or an earlier "
                                         "one's, says: " + size_seen);
            }
            file->setTimeout(g->timeout);
            const size_t a = draw.size() + 1, nl = answer.find('\n', a);
            g->id = answer.substr(a, nl == std::string::npos ? std::string::npos : nl - a);
            const std::string d =
                meta_differs(mine, rank, nl == std::string::npos ? "" : answer.substr(nl + 1), 0);
            if (!d.empty())
                throw std::runtime_error(d);
        }
        /* the rest of the join under this launch's id */
        const std::string scope = std::string(name) + "/" + g->id;
        auto launch_store = deadline_store(scope);
        auto opts = c10d::ProcessGroupGloo::Options::create(g->timeout);
        char hn[256] = "";
        if (!host) {
            if (gethostname(hn, sizeof hn - 1) == 0)
                host = hn;
        }
        try {
            opts->devices.push_back(host ? c10d::ProcessGroupGloo::createDeviceForHostname(host)
                                         : c10d::ProcessGroupGloo::createDefaultDevice());
        } catch (...) {
            if (host == hn) /* this machine's name does not resolve: loopback (one host) */
                opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            else
                throw;
        }
        opts->threads = 1;
        g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(launch_store, rank, world, opts);
        const char *slow = getenv("BODHI_GROUP_SLOW"); /* comparisons; every rank must say the same */
        if (world > 1 && !(slow && *slow && strcmp(slow, "0") != 0)) {
            c10d::ProcessGroupGloo::GlooStore gs(deadline_store(scope + "/fast"));
            g->fast = std::make_shared<gloo::rendezvous::Context>(rank, world);
            g->fast->setTimeout(g->timeout);
            g->fast->connectFullMesh(gs, opts->devices[0]);
            for (int i = 0; i < world; i++)
                if (i != rank)
                    g->fast->getPair(i)->setSync(true, false);
            /* each rank's end of each pair, so that an error on a pair can name its rank:
             * "<rank>=<address>" lines under "ends/<rank>" */
            std::string ends;
            for (int i = 0; i < world; i++)
                if (i != rank) { /* "[ip]:port" (a later Gloo adds "$<sequence>", which its errors do not) */
                    const std::string a = g->fast->getPair(i)->address().str();
                    ends += std::to_string(i) + "=" + a.substr(0, a.find('$')) + "\n";
                }
            launch_store->set("ends/" + std::to_string(rank), as_bytes(ends));
            g->peer.assign((size_t)world, "");
            const std::string me = std::to_string(rank) + "=";
            for (int k = 0; k < world; k++) {
                if (k == rank)
                    continue;
                const std::vector<uint8_t> v = launch_store->get("ends/" + std::to_string(k));
                const std::string t(v.begin(), v.end());
                for (size_t at = 0, nl; at < t.size(); at = nl + 1) {
                    nl = std::min(t.find('\n', at), t.size());
                    if (t.compare(at, me.size(), me) == 0)
                        g->peer[(size_t)k] = t.substr(at + me.size(), nl - at - me.size());
                }
            }
        }
        launch_store->armed = false; /* the group keeps its store */
        /* Once every rank has made both rendezvous nobody reads the store again: rank 0
         * removes it (the store counts no workers: c10d removes nothing). What a launch
         * that failed leaves stays until a later run that ends well sweeps it: its keys are
         * under its own id, read by no one. */
        if (world > 1) {
            auto rest = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            /* at least a second: a rendezvous that ended near the deadline must not fail
             * one rank's barrier while the others pass theirs */
            g->pg->barrier()->wait(std::max(rest, std::chrono::milliseconds(1000)));
            if (rank == 0)
                std::remove(store_path);
        }
        *out = g.release();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_group_join", store_path);
    }
}

extern "C" const char *bdt_group_id(const bdt_group *g) { return g ? g->id.c_str() : ""; }

extern "C" void bdt_group_leave(bdt_group *g)
{
    try {
        delete g;
    } catch (...) {
    }
}

extern "C" int bdt_group_rank(const bdt_group *g) { return g ? g->rank : 0; }
extern "C" int bdt_group_size(const bdt_group *g) { return g ? g->size : 1; }
extern "C" int bdt_group_fast(const bdt_group *g) { return g && g->fast ? 1 : 0; }

extern "C" void bdt_group_spin(bdt_group *g, int on)
{
    if (g)
        g->spin = on != 0;
}

/* A collective that failed, in words: which rank's learner it lost and how, then Gloo's
 * own words. Gloo's error names the far end of the pair that failed: on the calling
 * thread's own pairs, that rank's end (`peer`) on the side that connected, a port of the
 * moment on the side that listened; on c10d's pairs (broadcasts, all-reduces past 16 MiB),
 * none recorded. With two ranks it can only be the other; otherwise "another rank's".
 * Call inside a catch. */
static int group_catch(const bdt_group *g, const char *where)
{
    std::string msg;
    try {
        throw;
    } catch (const c10::Error &e) {
        msg = e.what_without_backtrace();
    } catch (const std::bad_alloc &) {
        return catch_torch(where);
    } catch (const std::exception &e) {
        msg = e.what();
    } catch (...) {
        return catch_torch(where);
    }
    int who = -1;
    for (size_t k = 0; k < g->peer.size() && who < 0; k++) /* whole: ":1698" is not ":16985" */
        for (size_t at = 0; !g->peer[k].empty() && (at = msg.find(g->peer[k], at)) != std::string::npos; at++)
            if (!isdigit((unsigned char)msg[at + g->peer[k].size()]))
                who = (int)k;
    if (who < 0 && g->size == 2)
        who = 1 - g->rank;
    const std::string whose = who >= 0 ? "rank " + std::to_string(who) + "'s" : "another rank's";
    const std::string why = who >= 0 ? "rank " + std::to_string(who) + "'s summary.json says why"
                                     : "the other ranks' summary.json say which and why";
    auto has = [&](const char *w) { return msg.find(w) != std::string::npos; };
    if (has("imeout") || has("imed out"))
        return bd_seterr(BD_ETORCH, "%s: %s learner did not answer within the group's timeout (%g s, "
                         "BODHI_GROUP_TIMEOUT): it hangs, or the network between the ranks is down; %s (%s)",
                         where, whose.c_str(), (double)g->timeout.count() / 1000.0, why.c_str(), msg.c_str());
    if (has("reset by peer") || has("losed") || has("EOF") || has("roken pipe") || has("refused"))
        return bd_seterr(BD_ETORCH,
                         "%s: %s learner is gone: its brain or its machine died, or its run ended; %s (%s)", where,
                         whose.c_str(), why.c_str(), msg.c_str());
    return bd_seterr(BD_ETORCH, "%s: %s", where, msg.c_str());
}

template <typename T> static torch::Tensor wrap(T *x, size_t n)
{
    return torch::from_blob(x, {(int64_t)n}, std::is_same<T, double>::value ? torch::kFloat64 : torch::kFloat32);
}

extern "C" int bdt_group_allreduce_mean(bdt_group *g, float *x, size_t n)
{
    if (!g || (!x && n))
        return bd_seterr(BD_EINVAL, "bdt_group_allreduce_mean: no group or buffer");
    if (n == 0 || g->size == 1)
        return BD_OK;
    try {
        FtzGuard ftz;
        if (g->fast && n * sizeof(float) <= kFastMaxBytes) {
            auto &op = fast_op(g, g->fast_mean[n], n, gloo::ReductionFunction<float>::sum);
            std::memcpy(op.buf.data(), x, n * sizeof(float));
            {
                SpinGuard spin(g, g->spin);
                fast_run(op);
            }
            const float k = (float)g->size;
            for (size_t i = 0; i < n; i++)
                x[i] = op.buf[i] / k;
            return BD_OK;
        }
        std::vector<torch::Tensor> t{wrap(x, n)};
        c10d::AllreduceOptions o;
        o.timeout = g->timeout;
        g->pg->allreduce(t, o)->wait(g->timeout);
        t[0].div_((float)g->size);
        return BD_OK;
    } catch (...) {
        return group_catch(g, "all-reduce of the learners' gradients");
    }
}

extern "C" int bdt_group_allreduce_f64(bdt_group *g, double *x, size_t n, int op)
{
    if (!g || (!x && n) || op < 0 || op > 2)
        return bd_seterr(BD_EINVAL, "bdt_group_allreduce_f64: bad arguments");
    if (n == 0 || g->size == 1)
        return BD_OK;
    try {
        if (g->fast && n * sizeof(double) <= kFastMaxBytes) {
            const gloo::ReductionFunction<double> *fn = op == 0   ? gloo::ReductionFunction<double>::sum
                                                        : op == 1 ? gloo::ReductionFunction<double>::max
                                                                  : gloo::ReductionFunction<double>::min;
            auto &f = fast_op(g, g->fast_f64[{n, op}], n, fn);
            std::memcpy(f.buf.data(), x, n * sizeof(double));
            fast_run(f);
            std::memcpy(x, f.buf.data(), n * sizeof(double));
            return BD_OK;
        }
        std::vector<torch::Tensor> t{wrap(x, n)};
        c10d::AllreduceOptions o;
        o.reduceOp = op == 0 ? c10d::ReduceOp::SUM : op == 1 ? c10d::ReduceOp::MAX : c10d::ReduceOp::MIN;
        o.timeout = g->timeout;
        g->pg->allreduce(t, o)->wait(g->timeout);
        return BD_OK;
    } catch (...) {
        return group_catch(g, "all-reduce of the learners' statistics");
    }
}

extern "C" int bdt_group_broadcast(bdt_group *g, float *x, size_t n, int root)
{
    if (!g || (!x && n) || root < 0 || root >= g->size)
        return bd_seterr(BD_EINVAL, "bdt_group_broadcast: bad arguments");
    if (n == 0 || g->size == 1)
        return BD_OK;
    try {
        std::vector<torch::Tensor> t{wrap(x, n)};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        o.timeout = g->timeout;
        g->pg->broadcast(t, o)->wait(g->timeout);
        return BD_OK;
    } catch (...) {
        return group_catch(g, "broadcast of rank 0's parameters");
    }
}
