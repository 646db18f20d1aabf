/* opts.c: the small option parser every subcommand uses (see cli.h). */
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "cli/cli.h"

int bd_parse_opts(const char *cmd, int argc, char **argv, const bd_opt *spec,
                  const char **positional, int npos, int min_pos)
{
    int pos = 0;
    uint64_t given = 0; /* the spec's options seen so far (a second one would replace the first in silence) */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            bd_cmd_usage(cmd, stdout, 1);
            return BD_OPTS_HELP;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (pos >= npos) {
                fprintf(stderr, "bodhi %s: unexpected argument '%s'\n", cmd, a);
                bd_cmd_usage(cmd, stderr, 0);
                return 2;
            }
            positional[pos++] = a;
            continue;
        }
        const bd_opt *o = NULL;
        int takes = 0;
        for (const bd_opt *s = spec; s && s->name; s++) {
            size_t n = strlen(s->name);
            int val = n > 0 && s->name[n - 1] == '=';
            if (strncmp(a + 2, s->name, n - (size_t)val) == 0 && a[2 + n - (size_t)val] == '\0') {
                o = s;
                takes = val;
                break;
            }
        }
        if (!o) {
            fprintf(stderr, "bodhi %s: unknown option '%s'\n", cmd, a);
            bd_cmd_usage(cmd, stderr, 0);
            return 2;
        }
        const uint64_t bit = (uint64_t)1 << ((o - spec) & 63);
        if (given & bit) {
            fprintf(stderr, "bodhi %s: option '%s' given twice (only one is taken)\n", cmd, a);
            return 2;
        }
        given |= bit;
        if (takes) {
            if (i + 1 >= argc) {
                fprintf(stderr, "bodhi %s: option '%s' needs a value\n", cmd, a);
                bd_cmd_usage(cmd, stderr, 0);
                return 2;
            }
            *o->value = argv[++i];
        } else {
            *o->value = "1";
        }
    }
    if (pos < min_pos) {
        fprintf(stderr, "bodhi %s: missing argument\n", cmd);
        bd_cmd_usage(cmd, stderr, 0);
        return 2;
    }
    return 0;
}
