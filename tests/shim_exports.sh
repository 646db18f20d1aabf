#!/bin/sh
# The C network's functions that the torch shim calls (torch/*.cpp) are exported by every
# executable or module that loads it (CMakeLists.txt's BD_SHIM_EXPORTS; bodhi._policy): a
# shim rebuilt on a GPU machine compiles no C and binds them there at load time, and a
# name missing from the list would only show as a load failure on that machine.
#   sh tests/shim_exports.sh SOURCE_DIR FILE...
src=$1
shift
used=$(cat "$src"/torch/*.cpp | grep -o 'bdt_cpunet_[a-z_]*\|bdt_policy_init_params' | sort -u)
[ -n "$used" ] || { echo "shim_exports: no C network function found in $src/torch/*.cpp"; exit 1; }
[ $# -gt 0 ] || { echo "shim_exports: no file to check"; exit 1; }
missing=0
for exe in "$@"; do
    for f in $used; do
        if ! nm -D --defined-only "$exe" | grep -q " $f\$"; then
            echo "shim_exports: $exe does not export $f, which torch/*.cpp calls (add it to BD_SHIM_EXPORTS)"
            missing=1
        fi
    done
    [ $missing = 0 ] && echo "shim_exports: $exe exports all of: $(echo $used)"
done
exit $missing
