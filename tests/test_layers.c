/* test_layers.c: the project guards its own layering (docs/architecture.md, "Layers").
 *
 * Layers, lowest first: include/bodhi (public headers), common -> config, env, wire,
 * memory, torch -> brain, muscle -> conductor, replay -> cli, python (the Python package's C
 * modules, over the env engine and the torch shim). A file includes only its own folder
 * and folders of lower layers; folders on one layer never include each other. kernels/
 * is the device half of env/ and muscle/ and holds .cu files only: no folder includes
 * kernels/ (env/ and muscle/ declare their launchers in their own env_launch.h and
 * muscle_launch.h, so no arrow runs back up from them into a kernels/ header that
 * includes them); a kernels/ file includes common/, bodhi/ and the headers of the one
 * folder it serves (env/ or muscle/, never both). torch/ holds the only C++. bench/ and
 * tests/ stand above everything.
 *
 * The checker reads `#include "..."` and `#include <...>` lines as text (any spacing), so
 * it is tested first on a small tree with planted wrong-way includes, then run on the
 * repository. It checks direct includes: a header that includes another is checked in
 * its own right. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *folder;
    int layer;
} layer_of;

static const layer_of LAYERS[] = {
    {"include", 0}, {"common", 1}, {"config", 2}, {"env", 2},       {"wire", 2},
    {"memory", 2},  {"torch", 2},  {"brain", 3},  {"muscle", 3},    {"conductor", 4},
    {"replay", 4},  {"cli", 5},    {"python", 5}, {"bench", 9},  {"tests", 9},
};

/* An include written "bodhi/x.h" is include/bodhi/x.h. */
static const char *folder_of_include(const char *inc, char *buf, size_t len)
{
    const char *slash = strchr(inc, '/');
    if (!slash)
        return NULL;
    snprintf(buf, len, "%.*s", (int)(slash - inc), inc);
    if (strcmp(buf, "bodhi") == 0)
        snprintf(buf, len, "include");
    return buf;
}

static int bd_file_exists(const char *root, const char *inc)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", root, inc);
    struct stat st;
    return stat(p, &st) == 0;
}

static int layer(const char *folder)
{
    for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0]; i++)
        if (strcmp(LAYERS[i].folder, folder) == 0)
            return LAYERS[i].layer;
    return -1;
}

typedef struct {
    char report[8192];
    int bad;
    int files;
} check_result;

static void complain(check_result *r, const char *fmt, const char *a, int line, const char *b)
{
    size_t l = strlen(r->report);
    if (l < sizeof r->report - 256)
        snprintf(r->report + l, sizeof r->report - l, fmt, a, line, b);
    r->bad++;
}

/* Checks one file (path relative to root, in folder `top`). */
static void check_file(const char *root, const char *rel, const char *top, check_result *r)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    size_t n = strlen(rel);
    int cxx = (n > 4 && strcmp(rel + n - 4, ".cpp") == 0) || (n > 3 && strcmp(rel + n - 3, ".cc") == 0);
    if (cxx && strcmp(top, "torch") != 0)
        complain(r, "%s:%d: C++ outside torch/%s\n", rel, 1, "");
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    r->files++;
    int me = layer(top);
    const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    int serves_env = 0, serves_muscle = 0;
    char line[1024];
    for (int ln = 1; fgets(line, sizeof line, f); ln++) {
        /* #include "x/y.h" or <x/y.h>, with any spaces around '#' and 'include' */
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p++ != '#')
            continue;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "include", 7) != 0)
            continue;
        p += 7;
        while (*p == ' ' || *p == '\t')
            p++;
        const char close = *p == '"' ? '"' : *p == '<' ? '>' : 0;
        if (!close)
            continue;
        char inc[512], fmt[16];
        snprintf(fmt, sizeof fmt, "%%511[^%c]", close);
        if (sscanf(p + 1, fmt, inc) != 1)
            continue;
        if (strstr(inc, "../") || strncmp(inc, "./", 2) == 0) {
            complain(r, "%s:%d: includes %s (write includes from the repository root)\n", rel, ln, inc);
            continue;
        }
        char fb[64];
        const char *to = folder_of_include(inc, fb, sizeof fb);
        if (!to || strcmp(to, top) == 0)
            continue;
        if (close == '>' && layer(to) < 0 && strcmp(to, "kernels") != 0)
            continue; /* a system header (<nng/nng.h>, <torch/...>) */
        if (close == '>' && strcmp(to, "torch") == 0 && strcmp(top, "torch") != 0 && !bd_file_exists(root, inc))
            continue; /* libtorch's own <torch/...> */
        if (strcmp(to, "kernels") == 0) {
            if (me != 9)
                complain(r, "%s:%d: includes %s (kernels/ holds .cu files only: env/ and muscle/ declare "
                            "their launchers beside them, so no arrow runs back up)\n", rel, ln, inc);
            continue;
        }
        if (strcmp(top, "kernels") == 0) {
            serves_env |= strcmp(to, "env") == 0;
            serves_muscle |= strcmp(to, "muscle") == 0;
            int ok = strcmp(to, "common") == 0 || strcmp(to, "include") == 0 || strcmp(to, "env") == 0
                     || strcmp(to, "muscle") == 0;
            if (!ok)
                complain(r, "%s:%d: includes %s (kernels/ serves env/ and muscle/ only)\n", rel, ln, inc);
            continue;
        }
        int them = layer(to);
        if (them < 0)
            complain(r, "%s:%d: includes %s, in a folder with no layer\n", rel, ln, inc);
        else if (me >= 0 && them >= me)
            complain(r, them == me ? "%s:%d: includes %s from a folder on its own layer\n"
                                   : "%s:%d: includes %s from a higher layer\n",
                     rel, ln, inc);
    }
    fclose(f);
    if (strcmp(top, "kernels") == 0) {
        if (serves_env && serves_muscle)
            complain(r, "%s:%d: serves both env/ and muscle/%s\n", rel, 1, "");
        if (!strrchr(base, '.') || strcmp(strrchr(base, '.'), ".cu") != 0)
            complain(r, "%s:%d: a header in kernels/ (launch headers live beside their callers, in env/ "
                        "and muscle/)%s\n", rel, 1, "");
    }
}

static int is_source(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    return !strcmp(dot, ".c") || !strcmp(dot, ".h") || !strcmp(dot, ".cu") || !strcmp(dot, ".cpp")
           || !strcmp(dot, ".cc") || !strcmp(dot, ".hpp");
}

/* Walks root/rel (a folder) recursively. */
static void walk(const char *root, const char *rel, const char *top, check_result *r)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[1024], full[3072];
        snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            walk(root, sub, top, r);
        else if (is_source(e->d_name))
            check_file(root, sub, top, r);
    }
    closedir(d);
}

/* Checks every product folder of a tree; folders not in LAYERS are reported when they
 * hold sources (a new folder needs a layer). */
static void check_tree(const char *root, check_result *r)
{
    memset(r, 0, sizeof *r);
    DIR *d = opendir(root);
    cr_assert_not_null(d, "cannot read %s", root);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, "build", 5) == 0)
            continue;
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", root, e->d_name);
        struct stat st;
        if (stat(full, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (layer(e->d_name) < 0 && strcmp(e->d_name, "kernels") != 0) {
            check_result sub = {0};
            walk(root, e->d_name, e->d_name, &sub);
            if (sub.files > 0)
                complain(r, "%s/:%d: a folder of sources with no layer%s\n", e->d_name, 0, "");
            continue;
        }
        walk(root, e->d_name, e->d_name, r);
    }
    closedir(d);
}

static void plant(const char *root, const char *rel, const char *text)
{
    char path[1024], dir[1200];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(dir, sizeof dir, "mkdir -p \"$(dirname '%s')\"", path);
    cr_assert_eq(system(dir), 0);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(layers, checker_finds_wrong_way_includes)
{
    char root[256];
    snprintf(root, sizeof root, "/tmp/bd-test-layers-%d", (int)getpid());
    plant(root, "common/util.c", "#include \"common/util.h\"\n#include \"bodhi/bodhi.h\"\n");
    plant(root, "env/env.c", "#include \"common/util.h\"\n#include \"env/env_launch.h\"\n");
    plant(root, "env/env_launch.h", "#include \"env/actions.h\"\n");
    plant(root, "kernels/random.cu", "#include \"env/env_launch.h\"\n#include \"common/cuda.h\"\n");
    plant(root, "muscle/muscle.c", "#include \"env/env.h\"\n#include \"config/plan.h\"\n");
    plant(root, "kernels/cartpole.cu", "#include \"env/cartpole.h\"\n#include \"common/cuda.h\"\n");
    /* replay/ reads traces and re-simulates with muscle/'s per-world work; cli/ calls it */
    plant(root, "replay/resim.c", "#include \"muscle/act.h\"\n#include \"memory/memory.h\"\n#include \"config/plan.h\"\n");
    plant(root, "cli/replay.c", "#include \"replay/replay.h\"\n#include \"conductor/builtins.h\"\n");
    check_result r;
    check_tree(root, &r);
    cr_assert_eq(r.bad, 0, "a clean tree passes:\n%s", r.report);
    plant(root, "config/plan.c", "#include \"brain/ppo.h\"\n");                 /* up */
    plant(root, "brain/brain.c", "  #include \"muscle/actor.h\"\n");            /* sideways */
    plant(root, "env/env_impl.h", "#include \"kernels/muscle_launch.h\"\n");    /* wrong kernels */
    plant(root, "kernels/both.cu", "#include \"env/a.h\"\n#include \"muscle/act.h\"\n");
    plant(root, "memory/h5.cpp", "#include \"memory/h5.h\"\n");                 /* C++ outside torch */
    plant(root, "extras/x.c", "int x;\n");                                      /* no layer */
    plant(root, "wire/a.c", "#  include <brain/brain.h>\n#include\"muscle/m.h\"\n#include \"../env/e.h\"\n");
    plant(root, "kernels/two.cu", "#include \"env/env_launch.h\"\n#include \"muscle/muscle_launch.h\"\n");
    plant(root, "replay/plot.c", "#include \"conductor/builtins.h\"\n");      /* its own layer */
    plant(root, "conductor/run.c", "#include \"replay/replay.h\"\n");         /* its own layer */
    plant(root, "memory/reader.c", "#include \"replay/replay.h\"\n");         /* up */
    /* the arrows back up of old: a launch header in kernels/ that includes env/ or muscle/,
     * and those folders including it */
    plant(root, "kernels/muscle_launch.h", "#include \"muscle/act.h\"\n");
    plant(root, "muscle/actor.c", "#include \"kernels/muscle_launch.h\"\n");
    check_tree(root, &r);
    cr_assert_eq(r.bad, 15, "fifteen wrong things found:\n%s", r.report);
    const char *want[] = {"config/plan.c:1: includes brain/ppo.h from a higher layer",
                          "brain/brain.c:1: includes muscle/actor.h from a folder on its own layer",
                          "env/env_impl.h:1: includes kernels/muscle_launch.h",
                          "kernels/both.cu:1: serves both env/ and muscle/",
                          "memory/h5.cpp:1: C++ outside torch/", "extras/:0: a folder of sources",
                          "wire/a.c:1: includes brain/brain.h from a higher layer",
                          "wire/a.c:2: includes muscle/m.h from a higher layer",
                          "wire/a.c:3: includes ../env/e.h", "kernels/two.cu:1: serves both env/ and muscle/",
                          "replay/plot.c:1: includes conductor/builtins.h from a folder on its own layer",
                          "conductor/run.c:1: includes replay/replay.h from a folder on its own layer",
                          "memory/reader.c:1: includes replay/replay.h from a higher layer",
                          "kernels/muscle_launch.h:1: a header in kernels/",
                          "muscle/actor.c:1: includes kernels/muscle_launch.h (kernels/ holds .cu files only"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(r.report, want[i]), "missing '%s' in:\n%s", want[i], r.report);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

/* BODHI_LAYERS_ROOT points the check at another checkout (to see what it finds there). */
Test(layers, the_repository_depends_one_way)
{
    check_result r;
    const char *root = getenv("BODHI_LAYERS_ROOT") ? getenv("BODHI_LAYERS_ROOT") : BODHI_SOURCE_DIR;
    check_tree(root, &r);
    cr_assert(r.files > 50, "read only %d files under %s", r.files, root);
    cr_assert_eq(r.bad, 0, "wrong-way includes:\n%s", r.report);
}

/* item 1 of issue 20: what the build compiles must not depend on the machine it runs on
 * (an -march=native build of the suites passes on the machine that built it and fails on
 * another), nor trade IEEE float for speed. Every compile command the build ran
 * (compile_commands.json) and the files that set flags (CMakeLists.txt, Makefile, .ci/) are
 * read. */
Test(layers, item01_build_flags_do_not_depend_on_the_build_cpu)
{
    static const char *banned[] = {"-march=native", "-mtune=native", "-mcpu=native", "-ffast-math", "-Ofast",
                                   "-funsafe-math-optimizations", "-ffp-contract=fast"};
    const char *files[] = {BODHI_BUILD_DIR "/compile_commands.json", BODHI_SOURCE_DIR "/CMakeLists.txt",
                           BODHI_SOURCE_DIR "/Makefile", BODHI_SOURCE_DIR "/.ci/run"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        FILE *f = fopen(files[i], "r");
        cr_assert_not_null(f, "%s cannot be read", files[i]);
        char line[65536];
        int commands = 0, contract_off = 0;
        for (int no = 1; fgets(line, sizeof line, f); no++) {
            for (size_t b = 0; b < sizeof banned / sizeof banned[0]; b++)
                cr_assert_null(strstr(line, banned[b]), "%s:%d: %s", files[i], no, banned[b]);
            if (i == 0 && strstr(line, "\"command\"") && strstr(line, ".c\"")) {
                commands++;
                contract_off += strstr(line, "-ffp-contract=off") != NULL;
            }
        }
        fclose(f);
        if (i == 0) {
            cr_assert(commands > 20, "only %d C compile commands in %s", commands, files[i]);
            cr_assert_eq(contract_off, commands, "every C file compiles with -ffp-contract=off");
        }
    }
}

/* Issue 21: a brain kind is an ops table (brain/learner.h), and PPO one kind among others:
 * outside the ppo kind's own files (brain/ppo*.c, brain/ppo.h) no brain/ file names a PPO
 * symbol (bd_ppo_*, bdt_ppo_*, BD_PPO_*) or includes brain/ppo.h, except the table of
 * kinds (brain/kinds.c), which lists the kind with BD_PPO_KIND. Comments and string
 * literals are skipped. */
static int ppo_symbol(const char *id)
{
    return strncmp(id, "bd_ppo_", 7) == 0 || strncmp(id, "bdt_ppo_", 8) == 0 || strncmp(id, "BD_PPO_", 7) == 0;
}

static void check_brain_file(const char *root, const char *name, check_result *r)
{
    char path[2048], rel[512];
    snprintf(rel, sizeof rel, "brain/%s", name);
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    r->files++;
    const int table = strcmp(name, "kinds.c") == 0;
    int in_comment = 0;
    char line[4096];
    for (int ln = 1; fgets(line, sizeof line, f); ln++) {
        if (!table && strstr(line, "\"brain/ppo.h\"") && strstr(line, "include"))
            complain(r, "%s:%d: includes %s outside the ppo kind's files\n", rel, ln, "brain/ppo.h");
        for (const char *p = line; *p;) {
            if (in_comment) {
                const char *end = strstr(p, "*/");
                if (!end)
                    break;
                in_comment = 0;
                p = end + 2;
            } else if (p[0] == '/' && p[1] == '*') {
                in_comment = 1;
                p += 2;
            } else if (p[0] == '/' && p[1] == '/') {
                break;
            } else if (*p == '"' || *p == '\'') { /* a literal */
                char q = *p++;
                while (*p && *p != q)
                    p += p[0] == '\\' && p[1] ? 2 : 1;
                if (*p)
                    p++;
            } else if (*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
                char id[256];
                size_t n = 0;
                while ((*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
                    if (n < sizeof id - 1)
                        id[n++] = *p;
                    p++;
                }
                id[n] = '\0';
                if (ppo_symbol(id) && !(table && strcmp(id, "BD_PPO_KIND") == 0))
                    complain(r, "%s:%d: names %s outside the ppo kind's files\n", rel, ln, id);
            } else {
                p++;
            }
        }
    }
    fclose(f);
}

static void check_brain_kinds(const char *root, check_result *r)
{
    memset(r, 0, sizeof *r);
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/brain", root);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot read %s", dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && is_source(e->d_name) && strncmp(e->d_name, "ppo", 3) != 0)
            check_brain_file(root, e->d_name, r);
    closedir(d);
}

Test(layers, checker_finds_ppo_outside_its_kind)
{
    char root[256];
    snprintf(root, sizeof root, "/tmp/bd-test-kinds-%d", (int)getpid());
    plant(root, "brain/ppo.c", "#include \"brain/ppo.h\"\nint bd_ppo_check(void) { return bdt_ppo_update(); }\n");
    plant(root, "brain/ppo_learner.c", "const bd_learner_ops bd_ppo_learner = {0};\n");
    plant(root, "brain/kinds.c", "#include \"brain/ppo.h\"\nconst bd_kind k[] = {BD_PPO_KIND(\"ppo\", \"ppo\")};\n");
    plant(root, "brain/brain.c", "/* once bd_ppo_params_parse,\n   now bd_learner_of */ // bdt_ppo_update\n"
                                 "const char *s = \"bd_ppo_x\"; int x = 'b';\n");
    check_result r;
    check_brain_kinds(root, &r);
    cr_assert_eq(r.bad, 0, "a clean tree passes:\n%s", r.report);
    cr_assert_eq(r.files, 2, "kinds.c and brain.c read, the ppo files not");
    plant(root, "brain/sac.c", "static int f(void *o) { return bdt_ppo_update(o); }\n");
    plant(root, "brain/brain.c", "#include \"brain/ppo.h\"\nstatic bd_ppo_params pp; /* ok */ int t = BD_PPO_AUTO_T_MAX;\n");
    plant(root, "brain/kinds.c", "const bd_kind k[] = {BD_PPO_KIND(\"ppo\", \"ppo\")};\nint y = BD_PPO_KL_STEP;\n");
    check_brain_kinds(root, &r);
    cr_assert_eq(r.bad, 5, "five PPO reaches found:\n%s", r.report);
    const char *want[] = {"brain/sac.c:1: names bdt_ppo_update", "brain/brain.c:1: includes brain/ppo.h",
                          "brain/brain.c:2: names bd_ppo_params", "brain/brain.c:2: names BD_PPO_AUTO_T_MAX",
                          "brain/kinds.c:2: names BD_PPO_KL_STEP"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(r.report, want[i]), "missing '%s' in:\n%s", want[i], r.report);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

Test(layers, brain_kinds_keep_ppo_to_itself)
{
    check_result r;
    const char *root = getenv("BODHI_LAYERS_ROOT") ? getenv("BODHI_LAYERS_ROOT") : BODHI_SOURCE_DIR;
    check_brain_kinds(root, &r);
    cr_assert(r.files >= 5, "read only %d files under %s/brain", r.files, root);
    cr_assert_eq(r.bad, 0, "PPO outside its kind:\n%s", r.report);
}
