/* One instantiation of the Winograd F(2x2, 3x3) tile loops; included by winograd_tiles.h
 * once per (element type, instruction set), with these macros set:
 *
 *   WT_T         float or double
 *   WT_FN(s)     the name of function s in this instantiation
 *   WT_TARGET    the function attribute that selects the instruction set (or nothing)
 *
 * Every loop here but one (input_grad_tile_row_short) is written so that the compiler
 * vectorises it: unit-stride (or stride-2) reads, unit-stride stores, no value carried from
 * one iteration to the next, restrict-qualified pointers, and WT_IVDEP where 16 streams are
 * written into one buffer (the compiler will not emit run-time overlap checks for that
 * many, so without them it keeps the loop scalar).  Each value is
 * computed by the same operations in the same order as the scalar kernels this replaced
 * (and as winograd.py's matrices B^T, A^T spell out), so the results are bit for bit
 * those of the scalar loops.
 */

/* ---------------------------------------------------------------- V = B^T d B */

/* B^T d B for a row of tiles as one loop: r the first of the 4 rows of a zero-bordered
 * plane (wp apart), tile s's value xi to v[xi * xs + s].  Each tile reads its 4 columns
 * afresh -- the scalar loop carried columns 2 and 3 over as the next tile's 0 and 1, which
 * kept it from vectorising -- so the loop runs over the tiles in vectors: stride-2 reads,
 * 16 contiguous store streams. */
WT_TARGET static void WT_FN(input_tile_row)(const WT_T* WT_RESTRICT r, ptrdiff_t wp, ptrdiff_t tw,
                                            WT_T* WT_RESTRICT v, ptrdiff_t xs)
{
    const WT_T* WT_RESTRICT r0 = r;
    const WT_T* WT_RESTRICT r1 = r + wp;
    const WT_T* WT_RESTRICT r2 = r + 2 * wp;
    const WT_T* WT_RESTRICT r3 = r + 3 * wp;
    WT_IVDEP
    for (ptrdiff_t s = 0; s < tw; s++) {
        const ptrdiff_t q = 2 * s;
        /* B^T d, column j of the tile: x_k_j = row k */
        const WT_T x00 = r0[q] - r2[q], x10 = r1[q] + r2[q], x20 = r2[q] - r1[q], x30 = r1[q] - r3[q];
        const WT_T x01 = r0[q + 1] - r2[q + 1], x11 = r1[q + 1] + r2[q + 1];
        const WT_T x21 = r2[q + 1] - r1[q + 1], x31 = r1[q + 1] - r3[q + 1];
        const WT_T x02 = r0[q + 2] - r2[q + 2], x12 = r1[q + 2] + r2[q + 2];
        const WT_T x22 = r2[q + 2] - r1[q + 2], x32 = r1[q + 2] - r3[q + 2];
        const WT_T x03 = r0[q + 3] - r2[q + 3], x13 = r1[q + 3] + r2[q + 3];
        const WT_T x23 = r2[q + 3] - r1[q + 3], x33 = r1[q + 3] - r3[q + 3];
        /* (B^T d) B: the same combination on the columns of every row */
        v[0 * xs + s] = x00 - x02;
        v[1 * xs + s] = x01 + x02;
        v[2 * xs + s] = x02 - x01;
        v[3 * xs + s] = x01 - x03;
        v[4 * xs + s] = x10 - x12;
        v[5 * xs + s] = x11 + x12;
        v[6 * xs + s] = x12 - x11;
        v[7 * xs + s] = x11 - x13;
        v[8 * xs + s] = x20 - x22;
        v[9 * xs + s] = x21 + x22;
        v[10 * xs + s] = x22 - x21;
        v[11 * xs + s] = x21 - x23;
        v[12 * xs + s] = x30 - x32;
        v[13 * xs + s] = x31 + x32;
        v[14 * xs + s] = x32 - x31;
        v[15 * xs + s] = x31 - x33;
    }
}

/* V (16, C, m*TH*TW), matrices xs apart, from x (m, c, h, w).  plane: scratch of
 * (2*th + 2) * (2*tw + 2) values, zeroed by the caller: a zero-bordered copy of one
 * plane (every plane rewrites the same interior entries, so the borders stay zero). */
WT_TARGET static void WT_FN(input)(const WT_T* WT_RESTRICT x, ptrdiff_t m, ptrdiff_t c, ptrdiff_t h,
                                   ptrdiff_t w, ptrdiff_t pad, ptrdiff_t th, ptrdiff_t tw,
                                   WT_T* WT_RESTRICT v, ptrdiff_t xs, WT_T* WT_RESTRICT plane)
{
    const ptrdiff_t wp = 2 * tw + 2, t_all = m * th * tw;
    for (ptrdiff_t n = 0; n < m; n++)
        for (ptrdiff_t ci = 0; ci < c; ci++) {
            const WT_T* WT_RESTRICT src = x + (n * c + ci) * h * w;
            WT_T* WT_RESTRICT dst = v + ci * t_all + n * th * tw;
            for (ptrdiff_t i = 0; i < h; i++)
                memcpy(plane + (i + pad) * wp + pad, src + i * w, (size_t)w * sizeof(WT_T));
            for (ptrdiff_t t = 0; t < th; t++)
                WT_FN(input_tile_row)(plane + 2 * t * wp, wp, tw, dst + t * tw, xs);
        }
}

/* One output matrix of a row of tiles, channels last: out[u] = e[u] - e[u + cl] (kind 0),
 * o[u] + e[u + cl] (1), e[u + cl] - o[u] (2) or o[u] - o[u + cl] (3), for the cb channels
 * u = s * cl + ci of each tile s (dst s * c + ci) -- one loop over all of them when they
 * are contiguous (cb == cl == c). */
WT_TARGET static void WT_FN(cl_column)(int kind, const WT_T* WT_RESTRICT e, const WT_T* WT_RESTRICT o,
                                       ptrdiff_t tw, ptrdiff_t cb, ptrdiff_t cl, ptrdiff_t c,
                                       WT_T* WT_RESTRICT out)
{
    const int flat = cb == cl && cl == c;
    const ptrdiff_t rows = flat ? 1 : tw, len = flat ? tw * c : cb;
    for (ptrdiff_t s = 0; s < rows; s++) {
        const WT_T* WT_RESTRICT e0 = e + s * cl;
        const WT_T* WT_RESTRICT e1 = e0 + cl;
        const WT_T* WT_RESTRICT o0 = o + s * cl;
        const WT_T* WT_RESTRICT o1 = o0 + cl;
        WT_T* WT_RESTRICT d = out + s * c;
        if (kind == 0)
            for (ptrdiff_t u = 0; u < len; u++) d[u] = e0[u] - e1[u];
        else if (kind == 1)
            for (ptrdiff_t u = 0; u < len; u++) d[u] = o0[u] + e1[u];
        else if (kind == 2)
            for (ptrdiff_t u = 0; u < len; u++) d[u] = e1[u] - o0[u];
        else
            for (ptrdiff_t u = 0; u < len; u++) d[u] = o0[u] - o1[u];
    }
}

/* V^T (16, m*TH*TW, C), matrices xs apart, channels [c0, c0 + cb) of image n of x
 * (m, c, h, w).  planes: scratch of (2*th + 2) * wp * cl + wp * cl values (wp = 2*tw + 2),
 * its first (2*th + 2) * wp * cl zeroed by the caller: the block's planes channels-last --
 * (row, column, channel), cl >= cb channels apart, columns de-interleaved (the even ones
 * first) -- zero-bordered, so that every loop below runs over channels, contiguous in the
 * planes and in V^T, and, where the block is every channel, over a whole row of tiles.
 * (A fixed cl keeps a shorter last block's borders where they were zeroed.) */
WT_TARGET static void WT_FN(input_cl_block)(const WT_T* WT_RESTRICT x, ptrdiff_t c, ptrdiff_t h,
                                            ptrdiff_t w, ptrdiff_t pad, ptrdiff_t th, ptrdiff_t tw,
                                            ptrdiff_t n, ptrdiff_t c0, ptrdiff_t cb, ptrdiff_t cl,
                                            WT_T* WT_RESTRICT v, ptrdiff_t xs, WT_T* WT_RESTRICT planes)
{
    const ptrdiff_t half = tw + 1, wp = 2 * half, hp = 2 * th + 2, rl = wp * cl;
    /* src[2k] lands on column 2k + pad, src[2k + 1] on 2k + 1 + pad: the columns of the
     * de-interleaved row (even ones first) where they go */
    const ptrdiff_t first = (pad & 1) ? half + pad / 2 : pad / 2;
    const ptrdiff_t second = (pad & 1) ? (pad + 1) / 2 : half + pad / 2;
    WT_T* WT_RESTRICT b = planes + hp * rl;
    /* the copy, a row of the block at a time: below 256 channels each channel's row read
     * contiguously and stored cl apart; from 256, a pixel of every channel stored
     * contiguously and read h*w apart (per layer, one thread, float32: 32->32 16x16 1.14 vs
     * 1.45 ms, 512->512 7x7 1.50 vs 1.37 -- stores 1 KB or more apart share a few sets of
     * the L1 cache) */
    for (ptrdiff_t i = 0; i < h; i++) {
        const WT_T* WT_RESTRICT src = x + ((n * c + c0) * h + i) * w;
        WT_T* WT_RESTRICT dst = planes + (i + pad) * rl;
        if (cb < 256)
            for (ptrdiff_t ci = 0; ci < cb; ci++) {
                for (ptrdiff_t k = 0; k < (w + 1) / 2; k++)
                    dst[(first + k) * cl + ci] = src[ci * h * w + 2 * k];
                for (ptrdiff_t k = 0; k < w / 2; k++)
                    dst[(second + k) * cl + ci] = src[ci * h * w + 2 * k + 1];
            }
        else
            for (ptrdiff_t j = 0; j < w; j++) {
                const ptrdiff_t col = (j & 1) ? second + j / 2 : first + j / 2;
                for (ptrdiff_t ci = 0; ci < cb; ci++)
                    dst[col * cl + ci] = src[ci * h * w + j];
            }
    }
    for (ptrdiff_t t = 0; t < th; t++) {
        const WT_T* WT_RESTRICT r0 = planes + 2 * t * rl;
        const WT_T* WT_RESTRICT r1 = r0 + rl;
        const WT_T* WT_RESTRICT r2 = r1 + rl;
        const WT_T* WT_RESTRICT r3 = r2 + rl;
        /* B^T d on whole rows, one of its rows k at a time (b, wp * cl values, stays in
         * the L1 cache for the 4 uses below: 4 rows of it at once did not, at 512 channels) */
        for (ptrdiff_t k = 0; k < 4; k++) {
            if (k == 0)
                for (ptrdiff_t j = 0; j < rl; j++) b[j] = r0[j] - r2[j];
            else if (k == 1)
                for (ptrdiff_t j = 0; j < rl; j++) b[j] = r1[j] + r2[j];
            else if (k == 2)
                for (ptrdiff_t j = 0; j < rl; j++) b[j] = r2[j] - r1[j];
            else
                for (ptrdiff_t j = 0; j < rl; j++) b[j] = r1[j] - r3[j];
            /* (B^T d) B: tile s's columns 0..3 are e[s], o[s], e[s + 1], o[s + 1] (each cl
             * channels); output matrix xi = 4k + l at a time */
            for (int l = 0; l < 4; l++)
                WT_FN(cl_column)(l, b, b + half * cl, tw, cb, cl, c,
                                 v + (4 * k + l) * xs + (n * th + t) * tw * c + c0);
        }
    }
}

/* ---------------------------------------------------------------- Y = A^T M A */

/* One row of tiles: M's values mm[xi * xs + s] -> the 2 output rows y0, y1 (2*tw wide). */
WT_TARGET static void WT_FN(output_tile_row)(const WT_T* WT_RESTRICT mm, ptrdiff_t xs, ptrdiff_t tw,
                                             WT_T bv, WT_T* WT_RESTRICT y0, WT_T* WT_RESTRICT y1)
{
    const WT_T* WT_RESTRICT m0 = mm;
    const WT_T* WT_RESTRICT m1 = mm + xs;
    const WT_T* WT_RESTRICT m2 = mm + 2 * xs;
    const WT_T* WT_RESTRICT m3 = mm + 3 * xs;
    const WT_T* WT_RESTRICT m4 = mm + 4 * xs;
    const WT_T* WT_RESTRICT m5 = mm + 5 * xs;
    const WT_T* WT_RESTRICT m6 = mm + 6 * xs;
    const WT_T* WT_RESTRICT m7 = mm + 7 * xs;
    const WT_T* WT_RESTRICT m8 = mm + 8 * xs;
    const WT_T* WT_RESTRICT m9 = mm + 9 * xs;
    const WT_T* WT_RESTRICT m10 = mm + 10 * xs;
    const WT_T* WT_RESTRICT m11 = mm + 11 * xs;
    const WT_T* WT_RESTRICT m12 = mm + 12 * xs;
    const WT_T* WT_RESTRICT m13 = mm + 13 * xs;
    const WT_T* WT_RESTRICT m14 = mm + 14 * xs;
    const WT_T* WT_RESTRICT m15 = mm + 15 * xs;
    for (ptrdiff_t s = 0; s < tw; s++) {
        /* A^T M: rows p = m0 + m1 + m2 and q = m1 - m2 - m3 (each 4 wide) ... */
        WT_T p0 = m0[s] + m4[s] + m8[s], p1 = m1[s] + m5[s] + m9[s];
        WT_T p2 = m2[s] + m6[s] + m10[s], p3 = m3[s] + m7[s] + m11[s];
        WT_T q0 = m4[s] - m8[s] - m12[s], q1 = m5[s] - m9[s] - m13[s];
        WT_T q2 = m6[s] - m10[s] - m14[s], q3 = m7[s] - m11[s] - m15[s];
        /* ... then (A^T M) A on the columns the same way */
        y0[2 * s] = p0 + p1 + p2 + bv;
        y0[2 * s + 1] = p1 - p2 - p3 + bv;
        y1[2 * s] = q0 + q1 + q2 + bv;
        y1[2 * s + 1] = q1 - q2 - q3 + bv;
    }
}

/* out (m, f, oh, ow) from M (16, F, m*TH*TW), matrices xs apart; bias (f,) or NULL.
 * ybuf: scratch of 2*th * 2*tw values (odd sizes: the plane with the extra row/column). */
WT_TARGET static void WT_FN(output)(const WT_T* WT_RESTRICT mm, ptrdiff_t xs, const WT_T* WT_RESTRICT bias,
                                    ptrdiff_t m, ptrdiff_t f, ptrdiff_t oh, ptrdiff_t ow,
                                    WT_T* WT_RESTRICT out, WT_T* WT_RESTRICT ybuf)
{
    const ptrdiff_t th = (oh + 1) / 2, tw = (ow + 1) / 2, ow2 = 2 * tw, t_all = m * th * tw;
    const int even = oh == 2 * th && ow == ow2;
    for (ptrdiff_t n = 0; n < m; n++)
        for (ptrdiff_t fi = 0; fi < f; fi++) {
            WT_T* WT_RESTRICT plane = even ? out + (n * f + fi) * oh * ow : ybuf;
            const WT_T bv = bias ? bias[fi] : 0;
            for (ptrdiff_t t = 0; t < th; t++)
                WT_FN(output_tile_row)(mm + fi * t_all + (n * th + t) * tw, xs, tw, bv,
                                       plane + 2 * t * ow2, plane + (2 * t + 1) * ow2);
            if (!even)
                for (ptrdiff_t i = 0; i < oh; i++)
                    memcpy(out + ((n * f + fi) * oh + i) * ow, ybuf + i * ow2, (size_t)ow * sizeof(WT_T));
        }
}

/* ---------------------------------------------------------------- dM = A dY A^T */

/* One row of tiles: the 2 gradient rows y0, y1 (2*tw wide) -> dm[xi * xs + s]. */
WT_TARGET static void WT_FN(output_grad_tile_row)(const WT_T* WT_RESTRICT y0, const WT_T* WT_RESTRICT y1,
                                                  ptrdiff_t tw, WT_T* WT_RESTRICT dm, ptrdiff_t xs)
{
    WT_T* WT_RESTRICT o0 = dm;
    WT_T* WT_RESTRICT o1 = dm + xs;
    WT_T* WT_RESTRICT o2 = dm + 2 * xs;
    WT_T* WT_RESTRICT o3 = dm + 3 * xs;
    WT_T* WT_RESTRICT o4 = dm + 4 * xs;
    WT_T* WT_RESTRICT o5 = dm + 5 * xs;
    WT_T* WT_RESTRICT o6 = dm + 6 * xs;
    WT_T* WT_RESTRICT o7 = dm + 7 * xs;
    WT_T* WT_RESTRICT o8 = dm + 8 * xs;
    WT_T* WT_RESTRICT o9 = dm + 9 * xs;
    WT_T* WT_RESTRICT o10 = dm + 10 * xs;
    WT_T* WT_RESTRICT o11 = dm + 11 * xs;
    WT_T* WT_RESTRICT o12 = dm + 12 * xs;
    WT_T* WT_RESTRICT o13 = dm + 13 * xs;
    WT_T* WT_RESTRICT o14 = dm + 14 * xs;
    WT_T* WT_RESTRICT o15 = dm + 15 * xs;
    WT_IVDEP
    for (ptrdiff_t s = 0; s < tw; s++) {
        const WT_T u0 = y0[2 * s], u1 = y0[2 * s + 1], v0 = y1[2 * s], v1 = y1[2 * s + 1];
        /* A dY: rows (u, u + v, u - v, -v), then the same on the columns */
        const WT_T r0 = u0, r1 = u0 + u1, r2 = u0 - u1, r3 = -u1;
        const WT_T w0 = v0, w1 = v0 + v1, w2 = v0 - v1, w3 = -v1;
        o0[s] = r0;
        o1[s] = r1;
        o2[s] = r2;
        o3[s] = r3;
        o4[s] = r0 + w0;
        o5[s] = r1 + w1;
        o6[s] = r2 + w2;
        o7[s] = r3 + w3;
        o8[s] = r0 - w0;
        o9[s] = r1 - w1;
        o10[s] = r2 - w2;
        o11[s] = r3 - w3;
        o12[s] = -w0;
        o13[s] = -w1;
        o14[s] = -w2;
        o15[s] = -w3;
    }
}

/* dM (16, F, m*TH*TW), matrices xs apart, from dout (m, f, oh, ow).  ybuf: scratch of
 * 2*th * 2*tw values. */
WT_TARGET static void WT_FN(output_grad)(const WT_T* WT_RESTRICT dout, ptrdiff_t m, ptrdiff_t f,
                                         ptrdiff_t oh, ptrdiff_t ow, WT_T* WT_RESTRICT dm, ptrdiff_t xs,
                                         WT_T* WT_RESTRICT ybuf)
{
    const ptrdiff_t th = (oh + 1) / 2, tw = (ow + 1) / 2, ow2 = 2 * tw, t_all = m * th * tw;
    const int even = oh == 2 * th && ow == ow2;
    /* odd sizes: a copy of the plane with a zero row/column added (outputs past OH, OW
     * have gradient 0); every plane rewrites the same entries, so the zeros stay */
    memset(ybuf, 0, (size_t)(2 * th * ow2) * sizeof(WT_T));
    for (ptrdiff_t n = 0; n < m; n++)
        for (ptrdiff_t fi = 0; fi < f; fi++) {
            const WT_T* WT_RESTRICT plane = dout + (n * f + fi) * oh * ow;
            if (!even) {
                for (ptrdiff_t i = 0; i < oh; i++)
                    memcpy(ybuf + i * ow2, plane + i * ow, (size_t)ow * sizeof(WT_T));
                plane = ybuf;
            }
            for (ptrdiff_t t = 0; t < th; t++)
                WT_FN(output_grad_tile_row)(plane + 2 * t * ow2, plane + (2 * t + 1) * ow2, tw,
                                            dm + fi * t_all + (n * th + t) * tw, xs);
        }
}

/* ---------------------------------------------------------------- dd = B dV B^T */

/* Columns pad .. pad + w - 1 of a de-interleaved row -- its even columns in row[0, half),
 * its odd ones in row[half, 2*half) -- into dst. */
WT_TARGET static void WT_FN(join_row)(const WT_T* WT_RESTRICT row, ptrdiff_t half, ptrdiff_t pad,
                                      WT_T* WT_RESTRICT dst, ptrdiff_t w)
{
    const WT_T* WT_RESTRICT first = (pad & 1) ? row + half + pad / 2 : row + pad / 2;
    const WT_T* WT_RESTRICT second = (pad & 1) ? row + (pad + 1) / 2 : row + half + pad / 2;
    for (ptrdiff_t k = 0; k < (w + 1) / 2; k++)
        dst[2 * k] = first[k];
    for (ptrdiff_t k = 0; k < w / 2; k++)
        dst[2 * k + 1] = second[k];
}


/* One row of tiles of dV (dv[xi * xs + s]) added onto rows row .. row + 3 of a
 * de-interleaved plane (wp = 2*(tw + 1) apart), in two loops over the tiles.  First each
 * tile's dd = B dV B^T on its own: d[(4k + l) * rs + 1 + s] is row k, column l of tile s
 * (entries 0 and tw + 1 of each stay zero: the missing neighbours of the first and last
 * tiles).  Then, since tile s's columns 2 and 3 are tile s + 1's columns 0 and 1, each
 * entry of a row gets column 0 (or 1) of its tile plus column 2 (or 3) of the tile to its
 * left -- read from d, not carried over from the previous tile as the scalar loop did,
 * which kept it from vectorising.  d: scratch of 16 * (tw + 2) values. */
WT_TARGET static void WT_FN(input_grad_tile_row)(const WT_T* WT_RESTRICT dv, ptrdiff_t xs, ptrdiff_t tw,
                                                 WT_T* WT_RESTRICT row, WT_T* WT_RESTRICT d)
{
    const ptrdiff_t half = tw + 1, wp = 2 * half, rs = tw + 2;
    WT_IVDEP
    for (ptrdiff_t s = 0; s < tw; s++) {
        WT_T r[16];
        for (int l = 0; l < 4; l++) {           /* B dV: row k, column l in r[4k + l] */
            const WT_T a0 = dv[l * xs + s], a1 = dv[(4 + l) * xs + s];
            const WT_T a2 = dv[(8 + l) * xs + s], a3 = dv[(12 + l) * xs + s];
            r[l] = a0;
            r[4 + l] = a1 - a2 + a3;
            r[8 + l] = a1 + a2 - a0;
            r[12 + l] = -a3;
        }
        for (int k = 0; k < 4; k++) {           /* ... then (B dV) B^T on the columns */
            d[(4 * k) * rs + 1 + s] = r[4 * k];
            d[(4 * k + 1) * rs + 1 + s] = r[4 * k + 1] - r[4 * k + 2] + r[4 * k + 3];
            d[(4 * k + 2) * rs + 1 + s] = r[4 * k + 1] + r[4 * k + 2] - r[4 * k];
            d[(4 * k + 3) * rs + 1 + s] = -r[4 * k + 3];
        }
    }
    for (int k = 0; k < 4; k++) {
        const WT_T* WT_RESTRICT c0 = d + (4 * k) * rs;
        const WT_T* WT_RESTRICT c1 = c0 + rs;
        const WT_T* WT_RESTRICT c2 = c1 + rs;
        const WT_T* WT_RESTRICT c3 = c2 + rs;
        WT_T* WT_RESTRICT e = row + k * wp;
        WT_T* WT_RESTRICT o = e + half;
        WT_IVDEP
        for (ptrdiff_t s = 0; s <= tw; s++) {
            e[s] += c0[s + 1] + c2[s];
            o[s] += c1[s + 1] + c3[s];
        }
    }
}

/* The same for a short row of tiles (fewer than WT_LONG_ROW), a tile at a time, the
 * scalar loop, onto rows of a plane in natural column order (wp apart).  Columns 2 and 3 of a tile are columns 0 and
 * 1 of the next: their sums (c_k2, c_k3 of row k) carry over. */
WT_TARGET static void WT_FN(input_grad_tile_row_short)(const WT_T* WT_RESTRICT dv, ptrdiff_t xs,
                                                       ptrdiff_t tw, WT_T* WT_RESTRICT row, ptrdiff_t wp)
{
    WT_T r[16];
    WT_T c02 = 0, c03 = 0, c12 = 0, c13 = 0, c22 = 0, c23 = 0, c32 = 0, c33 = 0;
    for (ptrdiff_t s = 0; s < tw; s++) {
        for (int k = 0; k < 4; k++) {          /* B dV, column k of the tile */
            const WT_T a0 = dv[k * xs + s], a1 = dv[(4 + k) * xs + s];
            const WT_T a2 = dv[(8 + k) * xs + s], a3 = dv[(12 + k) * xs + s];
            r[k] = a0;
            r[4 + k] = a1 - a2 + a3;
            r[8 + k] = a1 + a2 - a0;
            r[12 + k] = -a3;
        }
        const ptrdiff_t q = 2 * s;             /* ... then (B dV) B^T on the columns */
        row[q] += r[0] + c02;
        row[q + 1] += r[1] - r[2] + r[3] + c03;
        c02 = r[1] + r[2] - r[0]; c03 = -r[3];
        row[wp + q] += r[4] + c12;
        row[wp + q + 1] += r[5] - r[6] + r[7] + c13;
        c12 = r[5] + r[6] - r[4]; c13 = -r[7];
        row[2 * wp + q] += r[8] + c22;
        row[2 * wp + q + 1] += r[9] - r[10] + r[11] + c23;
        c22 = r[9] + r[10] - r[8]; c23 = -r[11];
        row[3 * wp + q] += r[12] + c32;
        row[3 * wp + q + 1] += r[13] - r[14] + r[15] + c33;
        c32 = r[13] + r[14] - r[12]; c33 = -r[15];
    }
    const ptrdiff_t q = 2 * tw;
    row[q] += c02;
    row[q + 1] += c03;
    row[wp + q] += c12;
    row[wp + q + 1] += c13;
    row[2 * wp + q] += c22;
    row[2 * wp + q + 1] += c23;
    row[3 * wp + q] += c32;
    row[3 * wp + q + 1] += c33;
}

/* dx (m, c, h, w) from dV (16, C, m*TH*TW), matrices xs apart.  buf: scratch of
 * (2*th + 2) * (2*tw + 2) + 16 * (tw + 2) values: a zero-bordered plane the tiles add
 * onto (de-interleaved for the long rows' loops) and a row of tiles' B dV B^T. */
WT_TARGET static void WT_FN(input_grad)(const WT_T* WT_RESTRICT dv, ptrdiff_t xs, ptrdiff_t m,
                                        ptrdiff_t c, ptrdiff_t h, ptrdiff_t w, ptrdiff_t pad,
                                        ptrdiff_t th, ptrdiff_t tw, WT_T* WT_RESTRICT dx,
                                        WT_T* WT_RESTRICT buf)
{
    const ptrdiff_t half = tw + 1, wp = 2 * half, hp = 2 * th + 2, t_all = m * th * tw;
    const int long_row = tw >= WT_LONG_ROW;
    WT_T* WT_RESTRICT d = buf + hp * wp;
    memset(d, 0, (size_t)(16 * (tw + 2)) * sizeof(WT_T));
    for (ptrdiff_t n = 0; n < m; n++)
        for (ptrdiff_t ci = 0; ci < c; ci++) {
            const WT_T* WT_RESTRICT src = dv + ci * t_all + n * th * tw;
            WT_T* WT_RESTRICT dst = dx + (n * c + ci) * h * w;
            memset(buf, 0, (size_t)(hp * wp) * sizeof(WT_T));
            for (ptrdiff_t t = 0; t < th; t++) {
                if (long_row)
                    WT_FN(input_grad_tile_row)(src + t * tw, xs, tw, buf + 2 * t * wp, d);
                else
                    WT_FN(input_grad_tile_row_short)(src + t * tw, xs, tw, buf + 2 * t * wp, wp);
            }
            for (ptrdiff_t i = 0; i < h; i++) {
                if (long_row)
                    WT_FN(join_row)(buf + (i + pad) * wp, half, pad, dst + i * w, w);
                else
                    memcpy(dst + i * w, buf + (i + pad) * wp + pad, (size_t)w * sizeof(WT_T));
            }
        }
}
