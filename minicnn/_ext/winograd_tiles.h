/* The Winograd F(2x2, 3x3) tile transforms' loops: the C behind minicnn._ext.winograd.
 *
 * Why C: the scalar Cython loops sent a tile's 16 values to 16 matrices one tile at a
 * time, with the columns a tile shares with the next carried in variables -- a loop no
 * compiler vectorises, and the transforms took as long as the 16 GEMMs.  Here a loop runs
 * over a row of tiles with nothing carried from one tile to the next (each reads its
 * columns afresh), or over a row of every channel, which GCC and Clang vectorise
 * (winograd_tiles_body.h), with the same operations per value, so the results are
 * unchanged bit for bit.  Timings: winograd.pyx's docstring.
 *
 * Why three copies: the extension is built for the baseline x86-64 (SSE2, 4 floats per
 * instruction), since the build machine's CPU is not known to be the one that runs it.
 * The loops are compiled twice more, for AVX2 (8 floats) and AVX-512 (16 floats), with
 * function attributes, and the CPU is asked at run time which it can run
 * (__builtin_cpu_supports), as direct_conv.h does.  Wider is not always faster here (short
 * rows, stride-2 reads): winograd.pyx caps each transform at the copy that measured
 * fastest.  The portable copy is the one every other compiler and architecture builds.
 * (Adds and subtracts only: FMA cannot change a result.)
 */
#ifndef MINICNN_WINOGRAD_TILES_H
#define MINICNN_WINOGRAD_TILES_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define WT_X86 1
#else
#define WT_X86 0
#endif
#if defined(__GNUC__) || defined(__clang__)
#define WT_RESTRICT __restrict__
#elif defined(_MSC_VER)
#define WT_RESTRICT __restrict
#else
#define WT_RESTRICT
#endif

/* "this loop's iterations are independent": the stores of a loop that writes 16 streams
 * into one buffer (xs apart, xs unknown) would otherwise need 120 run-time overlap checks,
 * and the compiler keeps such a loop scalar. */
#if defined(__clang__)
#define WT_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define WT_IVDEP _Pragma("GCC ivdep")
#else
#define WT_IVDEP
#endif

/* Rows of at least this many tiles take the two vector loops of the input-gradient
 * transform (shorter ones its scalar tile-at-a-time loop, which ran faster on rows of 4
 * and 7 tiles: 14x14 2.9 vs 3.2 ms per layer), and AVX-512 in the output transforms. */
#ifndef WT_LONG_ROW
#define WT_LONG_ROW 8
#endif

#define WT_ISA_BASE 0
#define WT_ISA_AVX2 1
#define WT_ISA_AVX512 2

#define WT_TARGET
#define WT_T float
#define WT_FN(s) wt_base_f_##s
#include "winograd_tiles_body.h"
#undef WT_T
#undef WT_FN
#define WT_T double
#define WT_FN(s) wt_base_d_##s
#include "winograd_tiles_body.h"
#undef WT_T
#undef WT_FN
#undef WT_TARGET

#if WT_X86
#define WT_TARGET __attribute__((target("avx2")))
#define WT_T float
#define WT_FN(s) wt_avx2_f_##s
#include "winograd_tiles_body.h"
#undef WT_T
#undef WT_FN
#define WT_T double
#define WT_FN(s) wt_avx2_d_##s
#include "winograd_tiles_body.h"
#undef WT_T
#undef WT_FN
#undef WT_TARGET

/* GCC's default tuning may use 256-bit vectors even where AVX-512 is enabled; this copy
 * exists for the 512-bit ones. */
#define WT_TARGET __attribute__((target("avx512f,prefer-vector-width=512")))
#define WT_T float
#define WT_FN(s) wt_avx512_f_##s
#include "winograd_tiles_body.h"
#undef WT_T
#undef WT_FN
#define WT_T double
#define WT_FN(s) wt_avx512_d_##s
#include "winograd_tiles_body.h"
#undef WT_T
#undef WT_FN
#undef WT_TARGET
#endif

/* The widest instruction set this CPU runs the loops with (WT_ISA_*). */
static int wt_best_isa(void)
{
#if WT_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return WT_ISA_AVX512;
    if (__builtin_cpu_supports("avx2"))
        return WT_ISA_AVX2;
#endif
    return WT_ISA_BASE;
}

/* wt_<op>_<f|d>(isa, args...): the copy of <op> for isa (one this CPU runs: the caller
 * checks against wt_best_isa()). */
#if WT_X86
#define WT_DISPATCH(isa, ty, op, ...) \
    ((isa) == WT_ISA_AVX512 ? wt_avx512_##ty##_##op(__VA_ARGS__) \
     : (isa) == WT_ISA_AVX2 ? wt_avx2_##ty##_##op(__VA_ARGS__) : wt_base_##ty##_##op(__VA_ARGS__))
#else
#define WT_DISPATCH(isa, ty, op, ...) ((void)(isa), wt_base_##ty##_##op(__VA_ARGS__))
#endif

#define WT_ENTRY_POINTS(ty, T) \
static void wt_input_##ty(int isa, const T* x, ptrdiff_t m, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, \
                          ptrdiff_t pad, ptrdiff_t th, ptrdiff_t tw, T* v, ptrdiff_t xs, T* scratch) \
{ WT_DISPATCH(isa, ty, input, x, m, c, h, w, pad, th, tw, v, xs, scratch); } \
static void wt_input_cl_block_##ty(int isa, const T* x, ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, \
                                   ptrdiff_t pad, ptrdiff_t th, ptrdiff_t tw, ptrdiff_t n, \
                                   ptrdiff_t c0, ptrdiff_t cb, ptrdiff_t cl, T* v, ptrdiff_t xs, T* scratch) \
{ WT_DISPATCH(isa, ty, input_cl_block, x, c, h, w, pad, th, tw, n, c0, cb, cl, v, xs, scratch); } \
static void wt_output_##ty(int isa, const T* mm, ptrdiff_t xs, const T* bias, ptrdiff_t m, \
                           ptrdiff_t f, ptrdiff_t oh, ptrdiff_t ow, T* out, T* scratch) \
{ WT_DISPATCH(isa, ty, output, mm, xs, bias, m, f, oh, ow, out, scratch); } \
static void wt_output_grad_##ty(int isa, const T* dout, ptrdiff_t m, ptrdiff_t f, ptrdiff_t oh, \
                                ptrdiff_t ow, T* dm, ptrdiff_t xs, T* scratch) \
{ WT_DISPATCH(isa, ty, output_grad, dout, m, f, oh, ow, dm, xs, scratch); } \
static void wt_input_grad_##ty(int isa, const T* dv, ptrdiff_t xs, ptrdiff_t m, ptrdiff_t c, \
                               ptrdiff_t h, ptrdiff_t w, ptrdiff_t pad, ptrdiff_t th, ptrdiff_t tw, \
                               T* dx, T* scratch) \
{ WT_DISPATCH(isa, ty, input_grad, dv, xs, m, c, h, w, pad, th, tw, dx, scratch); }

WT_ENTRY_POINTS(f, float)
WT_ENTRY_POINTS(d, double)

#endif
