/* envbench.c: `bodhi-envbench [ENV] [options]`: `bodhi bench` (cli/bench.c) in an
 * executable that links only the env library (no libtorch, HDF5 or NNG), so the CUDA env
 * benchmarks can be carried to a GPU machine that has none of them (bench/gpu/). */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return bd_cmd_bench(argc, argv);
}
