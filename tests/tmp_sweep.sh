#!/bin/sh
# The suite's leftovers in /tmp, removed after every other test has run (a ctest cleanup
# fixture, CMakeLists.txt): the run files, run directories, credentials and traces that the
# tests write as /tmp/bd-<kind>-<pid>... (their own process id in the name), some hundreds
# of MB a suite, which piled up run after run on a developer's machine.
#
# Only what was made or changed since this suite began ($1, a stamp file the fixture's
# setup touched: a folder of the user's that happens to be named like the suite's is
# older), only names of the suite's own kinds (below; not the benchmarks' bd-train-*
# folders), only this user's, and only those whose process is gone from /proc: a suite
# running beside this one (another build tree) keeps its files while its tests live. A
# suite in another pid namespace that shares this /tmp (a container) looks gone: keep such
# suites apart, or set BODHI_KEEP_TMP=1, which keeps everything (also to read a failed
# test's run afterwards).
if [ -n "$BODHI_KEEP_TMP" ]; then
    echo "tmp_sweep: BODHI_KEEP_TMP is set: /tmp/bd-* kept"
    exit 0
fi
stamp=$1
if [ -z "$stamp" ] || [ ! -f "$stamp" ]; then
    echo "tmp_sweep: no stamp of the suite's start ('$stamp'): nothing removed"
    exit 0
fi
# Each path is taken whole (-exec ... {} +), whatever characters its name holds.
find /tmp -maxdepth 1 -user "$(id -u)" -newer "$stamp" \( -name 'bd-test-*' -o -name 'bd-run-*' -o -name 'bd-cli-*' \
    -o -name 'bd-ident-*' -o -name 'bd-trust-*' -o -name 'bd-common-*' -o -name 'bd-claim-*' \
    -o -name 'bd-wire-guard-*' -o -name 'bd-plugin-fifo-*' -o -name 'bd-obsnorm-*' \) -exec sh -c '
removed=0
kept=0
for p do
    case $p in *"
"*) continue ;; esac
    rest=${p#/tmp/bd-}
    tail=${rest#"${rest%%[0-9]*}"}   # from the first digit on
    words=${rest%"$tail"}            # "cli-", "test-run-", ...
    case $words in ""|*[!a-z-]*|*[!-]) continue ;; esac
    pid=${tail%%[!0-9]*}
    after=${tail#"$pid"}
    case $pid in ""|0*) continue ;; esac
    case $after in ""|-*|.*) ;; *) continue ;; esac
    [ -d "/proc/$pid" ] && continue
    # a test may leave a folder of mode 0 behind (refused paths): open it to remove it
    [ -d "$p" ] && [ ! -L "$p" ] && find "$p" -xdev -type d ! -perm -u=rwx -print0 2>/dev/null |
        xargs -0 -r chmod u+rwx -- 2>/dev/null
    if rm -rf --one-file-system -- "$p" 2>/dev/null && [ ! -e "$p" ] && [ ! -L "$p" ]; then
        removed=$((removed + 1))
    else
        kept=$((kept + 1))
    fi
done
echo "tmp_sweep: removed $removed of the suite'"'"'s leftovers in /tmp (could not remove $kept)"
' tmp_sweep {} +
# The socket folders of the suite's runs that a test killed (/tmp/bodhi-XXXXXX: a run's own
# removes it at its end, and the next run in the same directory reaps a killed one's,
# which most such tests never start): only this user's, mode 0700, made since the suite
# began, holding nothing but sockets and a TLS door's server.pem, at least one socket, and
# none of them answering a connect (a live run's answer, whoever started it).
find /tmp -maxdepth 1 -user "$(id -u)" -newer "$stamp" -type d -perm 0700 -name 'bodhi-??????' -print0 |
    /usr/bin/python3 -c '
import os, shutil, socket, stat, sys
removed = 0
for d in filter(None, sys.stdin.buffer.read().split(b"\0")):
    d = d.decode(errors="surrogateescape")
    try:
        names = os.listdir(d)
        modes = {n: os.lstat(os.path.join(d, n)).st_mode for n in names}
    except OSError:
        continue
    socks = [n for n in names if stat.S_ISSOCK(modes[n])]
    if not socks or any(not stat.S_ISSOCK(m) and not (n == "server.pem" and stat.S_ISREG(m)) for n, m in modes.items()):
        continue
    live = False
    for n in socks:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:  # as the product judges a killed run (wire/addr.c, bd_sock_live): refused or gone is dead
            s.connect(os.path.join(d, n))
            live = True
        except (ConnectionRefusedError, FileNotFoundError):
            pass
        except OSError:
            live = True  # cannot tell: taken for live
        finally:
            s.close()
    if not live:
        shutil.rmtree(d, ignore_errors=True)
        removed += not os.path.exists(d)
print(f"tmp_sweep: removed {removed} socket folders of killed runs (/tmp/bodhi-*)")
'
exit 0
