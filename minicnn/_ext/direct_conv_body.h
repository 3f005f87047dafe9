/* One instantiation of the direct-convolution kernel; included by direct_conv.h once per
 * instruction set, with these macros set:
 *
 *   DC_NAME(s)   the name of function s in this instantiation
 *   DC_TARGET    the function attribute that selects the instruction set
 *   DC_V         floats per vector register
 *   DC_FB        filters per register block
 *   DC_JB        vectors of output columns per register block
 *   DC_RB        output rows per register block
 *   DC_GFB, DC_TAPS  (optional) filters and taps per register block of the weight gradient
 *
 * The register block: DC_FB filters x DC_RB output rows x DC_JB * DC_V output columns, held
 * in DC_FB * DC_RB * DC_JB accumulator registers for the whole sum over (c, p, q).  Each step
 * of that sum loads DC_RB * DC_JB vectors of input (shifted by q) and DC_FB filter weights
 * (broadcast), and does DC_FB * DC_RB * DC_JB fused multiply-adds: every load feeds several
 * FMAs, which is what keeps the FMA units busy (a GEMM's micro-kernel does the same).
 */

typedef float DC_NAME(vec) __attribute__((vector_size(DC_V * 4)));

DC_TARGET static inline DC_NAME(vec) DC_NAME(load)(const float* p)
{
    DC_NAME(vec) v;
    memcpy(&v, p, sizeof v);           /* an unaligned vector load */
    return v;
}

/* The first count (< DC_V) floats of v to p, by one masked store: a memcpy of a variable
 * length here was a library call per filter and output row -- LeNet-5's first conv (rows of
 * 28, vectors of 16) made 21,500 of them per forward pass. */
DC_TARGET static inline void DC_NAME(store_first)(float* p, DC_NAME(vec) v, long count)
{
#if DC_V == 16
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << count) - 1u), (__m512)v);
#else
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), lane), (__m256)v);
#endif
}

/* out[f, i, j] for the DC_FB filters of block wb and all output rows, one image.
 *   xpad: (c, hp, wp) the zero-padded image, wp >= (columns rounded up to the block) + kw - 1
 *   wb:   (c, kh, kw, DC_FB) the block's weights, filter innermost
 *   out:  (f_here, oh, ow) where the block's first filter goes; f_here <= DC_FB are stored
 * A block covers DC_RB output rows (the last block of an image may repeat a row, not stored). */
DC_TARGET static void DC_NAME(filter_block)(const float* xpad, long c, long hp, long wp,
                                            long pad_h, long h, const float* wb, long kh, long kw,
                                            const float* bias, long f_here,
                                            float* out, long oh, long ow)
{
    const long plane = hp * wp;
    const long cols = DC_V * DC_JB;
    for (long i0 = 0; i0 < oh; i0 += DC_RB) {
        long row[DC_RB];                 /* the block's output rows; past oh, the last one again */
        for (int r = 0; r < DC_RB; r++)
            row[r] = i0 + r < oh ? i0 + r : oh - 1;
        /* Kernel rows p that read only padding rows for every row of the block add nothing:
         * skipped (the backward pass's dx conv pads by KH - 1, where they are ~30% of the work).
         * The real image rows are pad_h .. pad_h + h - 1 of xpad. */
        long p_lo = pad_h - row[DC_RB - 1], p_hi = pad_h + h - i0;
        p_lo = p_lo > 0 ? p_lo : 0;
        p_hi = p_hi < kh ? p_hi : kh;
        for (long j0 = 0; j0 < ow; j0 += cols) {
            DC_NAME(vec) acc[DC_FB][DC_RB * DC_JB];
            for (int a = 0; a < DC_FB; a++) {
                float b0 = (bias != NULL && a < f_here) ? bias[a] : 0.0f;
                for (int t = 0; t < DC_RB * DC_JB; t++)
                    acc[a][t] = (DC_NAME(vec)){0} + b0;
            }
            for (long cc = 0; cc < c; cc++) {
                for (long p = p_lo; p < p_hi; p++) {
                    const float* xr = xpad + cc * plane + p * wp + j0;
                    const float* wr = wb + (cc * kh + p) * kw * DC_FB;
                    for (long q = 0; q < kw; q++) {
                        DC_NAME(vec) xv[DC_RB * DC_JB];
                        for (int r = 0; r < DC_RB; r++)
                            for (int t = 0; t < DC_JB; t++)
                                xv[r * DC_JB + t] = DC_NAME(load)(xr + row[r] * wp + q + t * DC_V);
                        for (int a = 0; a < DC_FB; a++) {
                            const float s = wr[q * DC_FB + a];
                            for (int t = 0; t < DC_RB * DC_JB; t++)
                                acc[a][t] += xv[t] * s;
                        }
                    }
                }
            }
            for (int r = 0; r < DC_RB && i0 + r < oh; r++) {
                for (int a = 0; a < DC_FB && a < f_here; a++) {
                    float* o = out + (a * oh + i0 + r) * ow;
                    for (int t = 0; t < DC_JB; t++) {
                        const long j = j0 + t * DC_V;
                        if (j + DC_V <= ow) {
                            memcpy(o + j, &acc[a][r * DC_JB + t], sizeof(DC_NAME(vec)));
                        } else if (j < ow) {       /* the row's last, partial vector */
                            DC_NAME(store_first)(o + j, acc[a][r * DC_JB + t], ow - j);
                        }
                    }
                }
            }
        }
    }
}

/* Images [0, n) of x (n, c, h, w) -> out (n, f, oh, ow); see minicnn_direct_conv_f32. */
DC_TARGET static void DC_NAME(conv)(const float* x, long n, long c, long h, long w,
                                    const float* wpk, long f, long kh, long kw,
                                    long pad_h, long pad_w, const float* bias,
                                    float* out, long oh, long ow, float* xpad, long wp)
{
    const long hp = oh + kh - 1;
    const long fblocks = (f + DC_FB - 1) / DC_FB;
    /* The padding never changes between images, so it is zeroed once; each image then
     * overwrites only the interior. */
    memset(xpad, 0, (size_t)(c * hp * wp) * sizeof(float));
    for (long m = 0; m < n; m++) {
        minicnn_direct_pad_image(x + m * c * h * w, c, h, w, pad_h, pad_w, hp, wp, xpad);
        for (long fb = 0; fb < fblocks; fb++) {
            const long f0 = fb * DC_FB;
            const long f_here = f - f0 < DC_FB ? f - f0 : DC_FB;
            DC_NAME(filter_block)(xpad, c, hp, wp, pad_h, h, wpk + fb * c * kh * kw * DC_FB, kh, kw,
                                  bias != NULL ? bias + f0 : NULL, f_here,
                                  out + (m * f + f0) * oh * ow, oh, ow);
        }
    }
}

#ifdef DC_TAPS
/* The weight gradient of images [0, m): dw[f, c, p, q] += sum_{n, i, j} dout[n, f, i, j] *
 * xpad[n, c, i + p, j + q], the padded images and output gradients already in scratch, both
 * with rows of wp = ow + kw - 1 (dout's zero past ow), so that one flat index k = i*wp + j walks
 * both -- a long loop of vectors instead of rows only a couple of vectors long:
 *   xpad: (m, c, xplane)   the (hp, wp) padded image, then zeros
 *   dpad: (m, fr, dplane)  the (oh, wp) output gradient, then zeros; fr >= f whole blocks,
 *                          zero past f; dplane a whole number of vectors
 * Register block: DC_GFB filters x DC_TAPS taps (kernel positions (p, q)), each a vector of
 * partial sums, summed across the lanes once the block has seen every image. */
DC_TARGET static void DC_NAME(grad_w)(const float* xpad, const float* dpad, long m, long c,
                                      long f, long fr, long xplane, long dplane, long wp,
                                      long kh, long kw, float* dw)
{
    _Static_assert(8 % DC_GFB == 0, "dpad holds whole blocks of 8 filters");
    const long taps = kh * kw;
    const long fblocks = (f + DC_GFB - 1) / DC_GFB;
    for (long fb = 0; fb < fblocks; fb++) {
        const long f0 = fb * DC_GFB;
        const long f_here = f - f0 < DC_GFB ? f - f0 : DC_GFB;
        for (long cc = 0; cc < c; cc++) {
            for (long t0 = 0; t0 < taps; t0 += DC_TAPS) {
                long off[DC_TAPS];               /* where each tap's window starts in a plane */
                for (int t = 0; t < DC_TAPS; t++) {
                    long tap = t0 + t < taps ? t0 + t : t0;   /* past the last tap: a repeat, dropped */
                    off[t] = (tap / kw) * wp + tap % kw;
                }
                DC_NAME(vec) acc[DC_GFB][DC_TAPS];
                for (int a = 0; a < DC_GFB; a++)
                    for (int t = 0; t < DC_TAPS; t++)
                        acc[a][t] = (DC_NAME(vec)){0};
                for (long n = 0; n < m; n++) {
                    const float* xp = xpad + (n * c + cc) * xplane;
                    const float* dp = dpad + (n * fr + f0) * dplane;
                    for (long k = 0; k < dplane; k += DC_V) {
                        DC_NAME(vec) d[DC_GFB];
                        for (int a = 0; a < DC_GFB; a++)
                            d[a] = DC_NAME(load)(dp + a * dplane + k);
                        for (int t = 0; t < DC_TAPS; t++) {
                            DC_NAME(vec) xv = DC_NAME(load)(xp + k + off[t]);
                            for (int a = 0; a < DC_GFB; a++)
                                acc[a][t] += d[a] * xv;
                        }
                    }
                }
                for (int a = 0; a < DC_GFB && a < f_here; a++) {
                    for (int t = 0; t < DC_TAPS && t0 + t < taps; t++) {
                        float lanes[DC_V];
                        memcpy(lanes, &acc[a][t], sizeof lanes);
                        float s = 0.0f;
                        for (int v = 0; v < DC_V; v++)
                            s += lanes[v];
                        dw[((f0 + a) * c + cc) * taps + t0 + t] += s;
                    }
                }
            }
        }
    }
}
#endif
