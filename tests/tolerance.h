/* tolerance.h: how far apart two float32 results of one computation may be when they were
 * computed in another order, for the test suites.
 *
 * libtorch picks its GEMM and reduction kernels when it runs (AVX2 on one machine, AVX-512
 * on another, a batched GEMM for many rows and a GEMV for one), and each sums its products
 * in its own order. A sum of `terms` products whose magnitudes are at most `scale` rounds by
 * at most terms * u * scale (u = FLT_EPSILON / 2, the unit roundoff; Higham, "Accuracy and
 * Stability of Numerical Algorithms", 3.1), so two orders differ by at most twice that. A
 * network's terms are the fan-ins along its longest path (observation width plus each hidden
 * width); its scale the largest magnitude the same network produced on the same batch.
 * Comparisons that must be exact (a copy, the same kernel on the same data) stay
 * cr_assert_eq; these are for results that are only the same maths. */
#ifndef BD_TESTS_TOLERANCE_H
#define BD_TESTS_TOLERANCE_H

#include <float.h>
#include <math.h>

/* The largest difference between two orders of a sum of `terms` float32 products whose
 * magnitudes are at most `scale`. */
static inline double bd_tol_sum(int terms, double scale)
{
    return 2.0 * (double)terms * (FLT_EPSILON / 2.0) * fabs(scale);
}

/* 1 when a and b are within bd_tol_sum(terms, scale) of each other (never for a NaN). */
static inline int bd_close_sum(double a, double b, int terms, double scale)
{
    return fabs(a - b) <= bd_tol_sum(terms, scale);
}

#endif
