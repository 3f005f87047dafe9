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

/* Image x (c, h, w) into the interior of xpad (c, hp, wp), rows pad_h.. and columns pad_w..;
 * the padding around it is left as it is (zeroed once per call by the kernels). */
static inline void minicnn_direct_pad_image(const float* x, long c, long h, long w,
                                            long pad_h, long pad_w, long hp, long wp, float* xpad)
{
    for (long cc = 0; cc < c; cc++)
        for (long r = 0; r < h; r++)
            memcpy(xpad + (cc * hp + r + pad_h) * wp + pad_w, x + (cc * h + r) * w,
                   (size_t)w * sizeof(float));
}

#if MINICNN_DIRECT_X86
#include <immintrin.h>     /* masked stores (store_first in direct_conv_body.h) */

/* AVX-512: 32 vector registers; 8 filters x 2 vectors = 16 accumulators.  The weight
 * gradient: 4 filters x 5 taps = 20 (measured on the 16 -> 16 3x3 layer, per image: 4 x 5
 * 30 us, 4 x 4 38 us, 4 x 3 61 us, 2 x 9 46 us; im2col + GEMM ~50 us). */
#define DC_NAME(s) dc512_##s
#define DC_TARGET __attribute__((target("avx512f")))
#define DC_V 16
#define DC_FB 8
#define DC_JB 2
#define DC_RB 1
#define DC_GFB 4
#define DC_TAPS 5
#include "direct_conv_body.h"
#undef DC_NAME
#undef DC_JB
#undef DC_RB
#undef DC_GFB
#undef DC_TAPS
/* The same with one vector of columns per block, for rows of at most 16 (half of a two-vector
 * block would be wasted work), and DC_RB_NARROW rows per block instead. */
#ifndef DC_RB_NARROW
#define DC_RB_NARROW 2
#endif
#define DC_NAME(s) dc512n_##s
#define DC_JB 1
#define DC_RB DC_RB_NARROW
#include "direct_conv_body.h"
#undef DC_NAME
#undef DC_TARGET
#undef DC_V
#undef DC_FB
#undef DC_JB
#undef DC_RB

/* AVX2: 16 vector registers; 8 filters x 1 vector = 8 accumulators.  The weight gradient:
 * 4 filters x 3 taps = 12 (measured as above: 42 us; 4 x 2 67 us, 2 x 5 77 us). */
#define DC_NAME(s) dc256_##s
#define DC_TARGET __attribute__((target("avx2,fma")))
#define DC_V 8
#define DC_FB 8
#define DC_JB 1
#define DC_RB 1
#define DC_GFB 4
#define DC_TAPS 3
#include "direct_conv_body.h"
#undef DC_NAME
#undef DC_TARGET
#undef DC_V
#undef DC_FB
#undef DC_JB
#undef DC_RB
#undef DC_GFB
#undef DC_TAPS

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

/* Filters in the vector lanes: the other way round, for a layer with 16 filters and short
 * rows (LeNet-5's second conv: 16 filters, rows of 10).  The kernel above puts output columns
 * in the lanes, and a 16-lane vector over a row of 10 computes 6 lanes of nothing; here one
 * vector holds a position's 16 filters, all useful, and the register block is
 * MINICNN_LANES_COLS positions of one output row (one accumulator each).  Each step of the
 * sum over (c, p, q) loads the tap's 16 weights once and multiplies them by each position's
 * input value (broadcast).  Measured (LeNet-5's 6 -> 16 5x5 on 14x14, batch 128, one core):
 * 1.01 ms with the columns in the lanes, 0.70 ms with the filters (conv_direct.py has more).
 * AVX-512 only: AVX2's 8 lanes would need two vectors per position and half the block. */
#define MINICNN_LANES_COLS 12

/* Can the filters-in-lanes kernel run a layer of f filters and rows of ow outputs on isa? */
static int minicnn_direct_lanes_fit(int isa, long f, long ow)
{
    return isa == MINICNN_ISA_AVX512 && f == 16 && ow <= MINICNN_LANES_COLS;
}

#if MINICNN_DIRECT_X86
typedef float dcl_vec __attribute__((vector_size(64)));

/* Images [0, n) of x (n, c, h, w) -> out (n, 16, oh, ow); wpk (c, kh, kw, 16), the filters
 * innermost; xpad: scratch as for minicnn_direct_conv_f32, with rows of
 * wp >= MINICNN_LANES_COLS + kw - 1 (a block reads a whole block's columns, stores ow). */
__attribute__((target("avx512f")))
static void dcl512_conv(const float* x, long n, long c, long h, long w, const float* wpk,
                        long kh, long kw, long pad_h, long pad_w, const float* bias,
                        float* out, long oh, long ow, float* xpad, long wp)
{
    enum { R = MINICNN_LANES_COLS, F = 16 };
    const long hp = oh + kh - 1, plane = hp * wp;
    dcl_vec b0 = {0};
    if (bias != NULL)
        memcpy(&b0, bias, sizeof b0);
    memset(xpad, 0, (size_t)(c * plane) * sizeof(float));
    for (long m = 0; m < n; m++) {
        minicnn_direct_pad_image(x + m * c * h * w, c, h, w, pad_h, pad_w, hp, wp, xpad);
        float* om = out + m * F * oh * ow;
        for (long i = 0; i < oh; i++) {
            dcl_vec acc[R];
            for (int r = 0; r < R; r++)
                acc[r] = b0;
            /* kernel rows over padding rows only add nothing (as in filter_block) */
            const long p_lo = pad_h - i > 0 ? pad_h - i : 0;
            const long p_hi = pad_h + h - i < kh ? pad_h + h - i : kh;
            for (long cc = 0; cc < c; cc++) {
                for (long p = p_lo; p < p_hi; p++) {
                    const float* xr = xpad + cc * plane + (i + p) * wp;
                    const float* wr = wpk + (cc * kh + p) * kw * F;
                    for (long q = 0; q < kw; q++) {
                        dcl_vec wv;
                        memcpy(&wv, wr + q * F, sizeof wv);
                        /* acc[r] += wv * xr[q + r] (broadcast), written as one instruction
                         * that broadcasts from memory: left to itself the compiler keeps the
                         * x values in registers between taps and broadcasts them from there,
                         * a second instruction on a port the FMAs need (2x slower here). */
                        for (int r = 0; r < R; r++)
                            __asm__("vfmadd231ps %1%{1to16%}, %2, %0"
                                    : "+v"(acc[r]) : "m"(xr[q + r]), "v"(wv));
                    }
                }
            }
            float tmp[R][F];
            memcpy(tmp, acc, sizeof tmp);
            for (int a = 0; a < F; a++)
                for (long j = 0; j < ow; j++)
                    om[(a * oh + i) * ow + j] = tmp[j][a];
        }
    }
}
#endif

/* The filters-in-lanes convolution (see above): as minicnn_direct_conv_f32, with wpk
 * (c, kh, kw, 16).  Returns 0, or -1 if this CPU or build cannot run it for this layer. */
static int minicnn_direct_conv_lanes_f32(int isa, const float* x, long n, long c, long h, long w,
                                         const float* wpk, long f, long kh, long kw,
                                         long pad_h, long pad_w, const float* bias,
                                         float* out, long oh, long ow, float* xpad)
{
    long wp = minicnn_direct_row_len(isa, ow, kw);
    if (isa > minicnn_direct_isa() || !minicnn_direct_lanes_fit(isa, f, ow)
            || wp < MINICNN_LANES_COLS + kw - 1)
        return -1;
#if MINICNN_DIRECT_X86
    dcl512_conv(x, n, c, h, w, wpk, kh, kw, pad_h, pad_w, bias, out, oh, ow, xpad, wp);
    return 0;
#else
    (void)x; (void)n; (void)c; (void)h; (void)w; (void)wpk; (void)kh; (void)kw;
    (void)pad_h; (void)pad_w; (void)bias; (void)out; (void)oh; (void)ow; (void)xpad;
    return -1;
#endif
}

/* The sizes of minicnn_direct_grad_w_f32's scratch (see grad_w in direct_conv_body.h). */
static void minicnn_direct_grad_w_layout(int isa, long c, long f, long oh, long ow, long kh,
                                         long kw, long* fr, long* xplane, long* dplane)
{
    const long v = isa == MINICNN_ISA_AVX512 ? 16 : 8;          /* the kernel's vector width */
    const long wp = ow + kw - 1;
    (void)c;
    *fr = (f + 7) / 8 * 8;                                      /* DC_GFB divides 8 */
    *dplane = (oh * wp + v - 1) / v * v;
    *xplane = (oh + kh - 1) * wp + v + kw;      /* the flat loop reads up to v + kw - 3 past */
}

/* Floats of scratch for minicnn_direct_grad_w_f32 on m images: their padded copies of x and dout. */
static long minicnn_direct_grad_w_scratch(int isa, long m, long c, long f, long oh, long ow,
                                          long kh, long kw)
{
    long fr, xplane, dplane;
    minicnn_direct_grad_w_layout(isa, c, f, oh, ow, kh, kw, &fr, &xplane, &dplane);
    return m * (c * xplane + fr * dplane);
}

/* dw (f, c, kh, kw) += the weight gradient of images [0, m) of a stride-1 conv:
 *   dw[f, c, p, q] += sum_{n, i, j} dout[n, f, i, j] * xpad[n, c, i + p, j + q]
 * x (m, c, h, w), dout (m, f, oh, ow), oh = h + 2*pad_h - kh + 1, ow likewise; scratch as
 * sized by minicnn_direct_grad_w_scratch.  Returns 0, or -1 if this CPU or build cannot run isa. */
static int minicnn_direct_grad_w_f32(int isa, const float* x, const float* dout, long m, long c,
                                     long h, long w, long f, long kh, long kw,
                                     long pad_h, long pad_w, long oh, long ow,
                                     float* dw, float* scratch)
{
    if (isa == MINICNN_ISA_NONE || isa > minicnn_direct_isa())
        return -1;
#if MINICNN_DIRECT_X86
    long fr, xplane, dplane;
    minicnn_direct_grad_w_layout(isa, c, f, oh, ow, kh, kw, &fr, &xplane, &dplane);
    const long wp = ow + kw - 1;
    float* xpad = scratch;
    float* dpad = scratch + m * c * xplane;
    /* zero everything first: x's padding, dout's row ends and the planes' tails stay zero */
    memset(scratch, 0, (size_t)(m * (c * xplane + fr * dplane)) * sizeof(float));
    for (long n = 0; n < m; n++) {
        for (long cc = 0; cc < c; cc++)
            for (long r = 0; r < h; r++)
                memcpy(xpad + (n * c + cc) * xplane + (r + pad_h) * wp + pad_w,
                       x + ((n * c + cc) * h + r) * w, (size_t)w * sizeof(float));
        for (long ff = 0; ff < f; ff++)
            for (long r = 0; r < oh; r++)
                memcpy(dpad + (n * fr + ff) * dplane + r * wp, dout + ((n * f + ff) * oh + r) * ow,
                       (size_t)ow * sizeof(float));
    }
    if (isa == MINICNN_ISA_AVX512)
        dc512_grad_w(xpad, dpad, m, c, f, fr, xplane, dplane, wp, kh, kw, dw);
    else
        dc256_grad_w(xpad, dpad, m, c, f, fr, xplane, dplane, wp, kh, kw, dw);
    return 0;
#else
    (void)x; (void)dout; (void)m; (void)c; (void)h; (void)w; (void)f; (void)kh; (void)kw;
    (void)pad_h; (void)pad_w; (void)oh; (void)ow; (void)dw; (void)scratch;
    return -1;
#endif
}

#endif
