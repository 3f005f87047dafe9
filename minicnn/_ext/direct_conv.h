/* Direct convolution, stride 1, float32: the kernel behind minicnn._ext.direct.
 *
 *   out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xpad[n, c, i + p, j + q]
 *
 * Why it exists: a layer with few channels (a CIFAR ResNet's 16 -> 16 3x3) makes im2col's
 * GEMMs small and flat -- 16 rows -- and BLAS runs those at a fraction of its peak.  Here
 * the convolution is computed where the data lies, a register block of filters x output
 * columns at a time, with vector FMAs.
 *
 * Why C with an instruction-set dispatch: the Cython extension is built for the baseline
 * x86-64 (SSE2: 4 floats per instruction, no FMA), since the build machine's CPU is not
 * known to be the one that runs it.  This kernel is compiled twice more, for AVX-512 and
 * for AVX2 + FMA (GCC/Clang function attributes), and the CPU is asked at run time which
 * it can run (__builtin_cpu_supports).  Elsewhere (other compilers, other architectures,
 * old CPUs) minicnn_direct_isa() is 0 and minicnn keeps its im2col path.
 */
#ifndef MINICNN_DIRECT_CONV_H
#define MINICNN_DIRECT_CONV_H

#include <stddef.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define MINICNN_DIRECT_X86 1
#else
#define MINICNN_DIRECT_X86 0
#endif

#define MINICNN_ISA_NONE 0
#define MINICNN_ISA_AVX2 1
#define MINICNN_ISA_AVX512 2

#if MINICNN_DIRECT_X86

/* AVX-512: 32 vector registers; 8 filters x 2 vectors = 16 accumulators. */
#define DC_NAME(s) dc512_##s
#define DC_TARGET __attribute__((target("avx512f")))
#define DC_V 16
#define DC_FB 8
#define DC_JB 2
#include "direct_conv_body.h"
#undef DC_NAME
#undef DC_JB
/* The same with one vector of columns per block, for rows of at most 16 (half of a two-vector
 * block would be wasted work). */
#define DC_NAME(s) dc512n_##s
#define DC_JB 1
#include "direct_conv_body.h"
#undef DC_NAME
#undef DC_TARGET
#undef DC_V
#undef DC_FB
#undef DC_JB

/* AVX2: 16 vector registers; 8 filters x 1 vector = 8 accumulators. */
#define DC_NAME(s) dc256_##s
#define DC_TARGET __attribute__((target("avx2,fma")))
#define DC_V 8
#define DC_FB 8
#define DC_JB 1
#include "direct_conv_body.h"
#undef DC_NAME
#undef DC_TARGET
#undef DC_V
#undef DC_FB
#undef DC_JB

#endif

/* The best instruction set this CPU runs the kernel with (MINICNN_ISA_*). */
static int minicnn_direct_isa(void)
{
#if MINICNN_DIRECT_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return MINICNN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return MINICNN_ISA_AVX2;
#endif
    return MINICNN_ISA_NONE;
}

/* Filters per register block: the packed weights hold ceil(f / block) blocks. */
static long minicnn_direct_fblock(int isa)
{
    (void)isa;
    return 8;   /* every instantiation above */
}

/* Output columns per register block for rows of ow outputs. */
static long minicnn_direct_cols(int isa, long ow)
{
    if (isa == MINICNN_ISA_AVX512)
        return ow > 16 ? 32 : 16;
    return 8;
}

/* Floats of scratch for the padded image: c * (oh + kh - 1) * wp, wp as returned here. */
static long minicnn_direct_row_len(int isa, long ow, long kw)
{
    long cols = minicnn_direct_cols(isa, ow);
    return (ow + cols - 1) / cols * cols + kw - 1;
}

/* Stride-1 convolution of images [0, n): x (n, c, h, w) -> out (n, f, oh, ow), with
 * oh = h + 2*pad_h - kh + 1, ow likewise.
 *   wpk:  (ceil(f / FB), c, kh, kw, FB) the weights packed by block, zero past filter f
 *   bias: (f,) or NULL
 *   xpad: scratch of at least c * (oh + kh - 1) * minicnn_direct_row_len(isa, ow, kw) floats
 * Returns 0, or -1 if this CPU or build cannot run isa. */
static int minicnn_direct_conv_f32(int isa, const float* x, long n, long c, long h, long w,
                                   const float* wpk, long f, long kh, long kw,
                                   long pad_h, long pad_w, const float* bias,
                                   float* out, long oh, long ow, float* xpad)
{
    long wp = minicnn_direct_row_len(isa, ow, kw);
    if (isa == MINICNN_ISA_NONE || isa > minicnn_direct_isa())
        return -1;
#if MINICNN_DIRECT_X86
    if (isa == MINICNN_ISA_AVX512 && ow > 16)
        dc512_conv(x, n, c, h, w, wpk, f, kh, kw, pad_h, pad_w, bias, out, oh, ow, xpad, wp);
    else if (isa == MINICNN_ISA_AVX512)
        dc512n_conv(x, n, c, h, w, wpk, f, kh, kw, pad_h, pad_w, bias, out, oh, ow, xpad, wp);
    else
        dc256_conv(x, n, c, h, w, wpk, f, kh, kw, pad_h, pad_w, bias, out, oh, ow, xpad, wp);
    return 0;
#else
    (void)x; (void)n; (void)c; (void)h; (void)w; (void)wpk; (void)f; (void)kh; (void)kw;
    (void)pad_h; (void)pad_w; (void)bias; (void)out; (void)oh; (void)ow; (void)xpad; (void)wp;
    return -1;
#endif
}

#endif
