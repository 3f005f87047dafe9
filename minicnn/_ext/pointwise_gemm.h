/* The forward GEMMs of a 1x1 convolution, float32, AVX-512: C = A @ B + a bias per row of C,
 * the operands read where they lie, without packing them first.
 *
 * Why: a 1x1 stride-1 layer needs no im2col -- an image's (C, H*W) block is already the
 * GEMM's right-hand matrix -- so conv_im2col runs it as one GEMM per image, out_i = W @ x_i.
 * They are small (ResNet-50's 256 -> 64 at 14x14: 64 x 256 by 256 x 196), and BLAS copies
 * both operands into its own tiled layout on every call.  Here the register block -- PW_MB
 * rows of C by PW_JB vectors of 16 columns, 24 of the 32 vector registers -- reads B's rows in
 * place (an image's channel rows are contiguous) and broadcasts A's entries, and the bias is
 * where the sums start.  Measured on the 2-core Xeon (AVX-512), that layer at batch 32:
 * forward 1.24-1.26 ms with OpenBLAS's sgemm, 1.12-1.20 ms with this kernel (the per-image
 * GEMMs alone, in a C loop on two threads: 207-230 / 226-254 GFLOP/s).  The backward pass keeps
 * BLAS: dx (W^T @ dout_i, the same kernel reading W down its columns) measured no faster in
 * the layer (1.17-1.21 ms either way), and dW (x_i @ dout_i^T, a reduction along the rows of
 * both) would need dout_i transposed first (15% slower).
 *
 * AVX-512 only, chosen at run time as for the direct kernel (conv_direct.best_isa(), capped by
 * $MINICNN_DIRECT_ISA): with AVX2's 16 registers the block would be a third the size, and
 * there BLAS is kept (not measured on an AVX2 machine).  Elsewhere minicnn_pointwise_gemm
 * returns -1 and the caller uses BLAS.
 */
#ifndef MINICNN_POINTWISE_GEMM_H
#define MINICNN_POINTWISE_GEMM_H

#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define MINICNN_PW_X86 1
#include <immintrin.h>
#else
#define MINICNN_PW_X86 0
#endif

#define PW_MB 8     /* rows of C per register block */
#define PW_JB 3     /* vectors of 16 columns of C per register block */

#if MINICNN_PW_X86
typedef float pw_vec __attribute__((vector_size(64)));
#define PW_TARGET __attribute__((target("avx512f")))

/* The first count (<= 16) floats at p; the rest of the vector zero. */
PW_TARGET static inline pw_vec pw_load(const float* p, long count)
{
    if (count == 16) {
        pw_vec v;
        memcpy(&v, p, sizeof v);              /* an unaligned vector load */
        return v;
    }
    return (pw_vec)_mm512_maskz_loadu_ps((__mmask16)((1u << count) - 1u), p);
}

PW_TARGET static inline void pw_store(float* p, pw_vec v, long count)
{
    if (count == 16)
        memcpy(p, &v, sizeof v);
    else
        _mm512_mask_storeu_ps(p, (__mmask16)((1u << count) - 1u), (__m512)v);
}

/* One register block: rows [0, rows) of C (rows <= PW_MB) by jb vectors of columns, the last
 * of them `last` (<= 16) columns wide.  Inlined with constant jb and last, so that the inner
 * loop has neither branches nor masks for the full blocks.  Past `rows` the block repeats the
 * last row (computed, not stored) rather than branch in the loop. */
PW_TARGET static inline __attribute__((always_inline)) void
pw_block(const float* a, long lda, long rows, long k, const float* b, long ldb,
         const float* bias, float* c, long ldc, const int jb, const long last)
{
    pw_vec acc[PW_MB][PW_JB];
    long row_at[PW_MB];
    for (int i = 0; i < PW_MB; i++) {
        long r = i < rows ? i : rows - 1;
        row_at[i] = r * lda;
        float b0 = bias != NULL ? bias[r] : 0.0f;
        for (int t = 0; t < jb; t++)
            acc[i][t] = (pw_vec){0} + b0;
    }
    for (long kk = 0; kk < k; kk++) {
        pw_vec bv[PW_JB];
        for (int t = 0; t < jb; t++)
            bv[t] = pw_load(b + kk * ldb + t * 16, t == jb - 1 ? last : 16);
        const float* ak = a + kk;
        for (int i = 0; i < PW_MB; i++) {
            const float s = ak[row_at[i]];
            for (int t = 0; t < jb; t++)
                acc[i][t] += s * bv[t];
        }
    }
    for (int i = 0; i < rows; i++)
        for (int t = 0; t < jb; t++)
            pw_store(c + i * ldc + t * 16, acc[i][t], t == jb - 1 ? last : 16);
}

/* Every row block over the columns [j0, j0 + jb*16 - 16 + last) of C. */
PW_TARGET static inline __attribute__((always_inline)) void
pw_column_block(long m, long k, const float* a, long lda, const float* b, long ldb,
                const float* bias, float* c, long ldc, long j0, const int jb, const long last)
{
    for (long i0 = 0; i0 < m; i0 += PW_MB)
        pw_block(a + i0 * lda, lda, m - i0 < PW_MB ? m - i0 : PW_MB, k, b + j0, ldb,
                 bias != NULL ? bias + i0 : NULL, c + i0 * ldc + j0, ldc, jb, last);
}

PW_TARGET static void pw512_gemm(long m, long n, long k, const float* a, long lda,
                                 const float* b, long ldb, const float* bias, float* c, long ldc)
{
    /* Column blocks outermost: a block's k rows of B (48 KB for k = 256) stay in the L1/L2
     * cache while every row block of A passes over them. */
    long j0 = 0;
    for (; j0 + PW_JB * 16 <= n; j0 += PW_JB * 16)
        pw_column_block(m, k, a, lda, b, ldb, bias, c, ldc, j0, PW_JB, 16);
    for (; j0 + 16 <= n; j0 += 16)
        pw_column_block(m, k, a, lda, b, ldb, bias, c, ldc, j0, 1, 16);
    if (j0 < n)                                  /* the last, partial vector of columns */
        pw_column_block(m, k, a, lda, b, ldb, bias, c, ldc, j0, 1, n - j0);
}
#endif

/* Can this CPU and build run the kernel?  (Asked once; a race between threads stores the
 * same answer twice.) */
static int minicnn_pointwise_ready(void)
{
#if MINICNN_PW_X86
    static int ready = -1;
    if (ready < 0) {
        __builtin_cpu_init();
        ready = __builtin_cpu_supports("avx512f") != 0;
    }
    return ready;
#else
    return 0;
#endif
}

/* C (m, n) = A (m, k) @ B (k, n), plus bias[i] on every entry of row i when bias != NULL;
 * A, B, C row-major, lda, ldb and ldc floats per row.
 * Returns 0, or -1 (nothing done) if minicnn_pointwise_ready() is false. */
static int minicnn_pointwise_gemm(long m, long n, long k, const float* a, long lda,
                                  const float* b, long ldb, const float* bias, float* c, long ldc)
{
#if MINICNN_PW_X86
    if (!minicnn_pointwise_ready())
        return -1;
    if (m > 0 && n > 0)
        pw512_gemm(m, n, k, a, lda, b, ldb, bias, c, ldc);
    return 0;
#else
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)bias; (void)c; (void)ldc;
    return -1;
#endif
}

#endif
