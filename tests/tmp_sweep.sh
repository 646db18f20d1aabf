#!/bin/sh
# The suite's leftovers in /tmp, removed after every other test has run (a ctest cleanup
# fixture, CMakeLists.txt): the run files, run directories, credentials and traces that the
# tests write as /tmp/bd-<name>-<pid>... (their own process id in the name), some hundreds
# of MB a suite, which piled up run after run on a developer's machine. Only this user's,
# and only those whose process is gone: a suite running beside this one (another build
# tree) keeps its files while its tests live. BODHI_KEEP_TMP=1 keeps everything (to read a
# failed test's run afterwards).
if [ -n "$BODHI_KEEP_TMP" ]; then
    echo "tmp_sweep: BODHI_KEEP_TMP is set: /tmp/bd-* kept"
    exit 0
fi
# bd-<lowercase words>-<pid>, then nothing or '-' or '.' and the rest: "<pid> <path>"
find /tmp -maxdepth 1 -name 'bd-*' -user "$(id -u)" |
    sed -n 's|^/tmp/bd-[a-z][a-z-]*-\([0-9][0-9]*\)\([-.].*\)\{0,1\}$|\1 &|p' | {
    removed=0
    kept=0
    while read -r pid p; do
        [ -d "/proc/$pid" ] && continue
        # a test may leave a folder of mode 0 behind (refused paths): open it to remove it
        [ -d "$p" ] && [ ! -L "$p" ] && chmod -R u+rwx -- "$p" 2>/dev/null
        if rm -rf -- "$p" 2>/dev/null && [ ! -e "$p" ] && [ ! -L "$p" ]; then
            removed=$((removed + 1))
        else
            kept=$((kept + 1))
        fi
    done
    echo "tmp_sweep: removed $removed of the suite's leftovers in /tmp (could not remove $kept)"
}
exit 0
