/* GEMM from C, through the CBLAS sgemm / dgemm of the OpenBLAS that NumPy has loaded.
 *
 * Why: a chunked conv runs, per chunk, a transform, a few small GEMMs and another
 * transform -- tens of microseconds each.  Run as a Python loop on two threads, every call
 * gives up the GIL and takes it back, and on the 2-core Xeon VM the second thread gained
 * almost nothing on such short calls (the Winograd output transform of 2 images: 135k
 * calls/s on one thread or on two) -- the threads spent their time handing the GIL to
 * each other.  With the GEMMs callable from C, each thread runs its whole share of the
 * chunks in one call without the GIL (forward_chunks and backward_chunks in winograd.pyx and
 * im2col.pyx; the declarations Cython needs are in chunk_loops.pxi).
 *
 * NumPy has no C API for its BLAS, so minicnn.runtime finds the functions in the loaded
 * library (as it finds openblas_set_num_threads) and hands their addresses to
 * gemm_use().  NumPy's own wheels use an OpenBLAS with 64-bit integers (ILP64), others
 * 32-bit ones: ``ilp64`` says which signature to call.  Without them (another BLAS) the
 * chunk loops stay in Python.
 */
#ifndef MINICNN_BLAS_GEMM_H
#define MINICNN_BLAS_GEMM_H

#include <stddef.h>
#include <stdint.h>
#if defined(_MSC_VER)
#include <intrin.h>
#endif

enum { MC_ROW_MAJOR = 101, MC_NO_TRANS = 111, MC_TRANS = 112 };

typedef void (*mc_sgemm32_fn)(int, int, int, int32_t, int32_t, int32_t, float, const float*, int32_t,
                              const float*, int32_t, float, float*, int32_t);
typedef void (*mc_sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t,
                              const float*, int64_t, float, float*, int64_t);
typedef void (*mc_dgemm32_fn)(int, int, int, int32_t, int32_t, int32_t, double, const double*, int32_t,
                              const double*, int32_t, double, double*, int32_t);
typedef void (*mc_dgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, double, const double*, int64_t,
                              const double*, int64_t, double, double*, int64_t);

static void* mc_sgemm_ptr = NULL;
static void* mc_dgemm_ptr = NULL;
static int mc_ilp64 = 0;

static void mc_gemm_set(size_t sgemm, size_t dgemm, int ilp64)
{
    mc_sgemm_ptr = (void*)sgemm;
    mc_dgemm_ptr = (void*)dgemm;
    mc_ilp64 = ilp64;
}

static int mc_gemm_ready(void) { return mc_sgemm_ptr != NULL && mc_dgemm_ptr != NULL; }

/* C (m x n) = alpha * op(A) @ op(B) + beta * C, all row-major; op(A) is m x k, A^T when trans_a. */
static void mc_gemm_f(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                      const float* a, ptrdiff_t lda, const float* b, ptrdiff_t ldb, float beta,
                      float* c, ptrdiff_t ldc)
{
    int ta = trans_a ? MC_TRANS : MC_NO_TRANS, tb = trans_b ? MC_TRANS : MC_NO_TRANS;
    if (mc_ilp64)
        ((mc_sgemm64_fn)mc_sgemm_ptr)(MC_ROW_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        ((mc_sgemm32_fn)mc_sgemm_ptr)(MC_ROW_MAJOR, ta, tb, (int32_t)m, (int32_t)n, (int32_t)k, alpha, a,
                                      (int32_t)lda, b, (int32_t)ldb, beta, c, (int32_t)ldc);
}

static void mc_gemm_d(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
                      const double* a, ptrdiff_t lda, const double* b, ptrdiff_t ldb, double beta,
                      double* c, ptrdiff_t ldc)
{
    int ta = trans_a ? MC_TRANS : MC_NO_TRANS, tb = trans_b ? MC_TRANS : MC_NO_TRANS;
    if (mc_ilp64)
        ((mc_dgemm64_fn)mc_dgemm_ptr)(MC_ROW_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        ((mc_dgemm32_fn)mc_dgemm_ptr)(MC_ROW_MAJOR, ta, tb, (int32_t)m, (int32_t)n, (int32_t)k, alpha, a,
                                      (int32_t)lda, b, (int32_t)ldb, beta, c, (int32_t)ldc);
}

/* The first image of the next chunk, shared by the threads of one call: each takes
 * ``step`` images from *next (an atomic add) until it passes n -- the Python loops' shared
 * iterator, in C. */
static ptrdiff_t mc_next_chunk(long long* next, ptrdiff_t step)
{
#if defined(__GNUC__) || defined(__clang__)
    return (ptrdiff_t)__atomic_fetch_add(next, (long long)step, __ATOMIC_RELAXED);
#elif defined(_MSC_VER)
    return (ptrdiff_t)_InterlockedExchangeAdd64((volatile long long*)next, (long long)step);
#else
#error "mc_next_chunk needs an atomic add"
#endif
}

#endif
