"""Checks of the convolution: naive loops, im2col / col2im, and the im2col version."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.exercises.checker import Check, call, close, expect, expect_numeric, unpack
from minicnn.exercises.checks._common import CHECKS, attempt, batch_hints, mst, rnd, seeds


conv_cases = mst.conv_geometries(max_batch=2, max_channels=3, max_size=5, max_kernel=3, max_stride=2,
                                 max_pad=1, groups=False)


def conv_case(n, c, h, w, f, k, stride, pad, seed=7):
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    return dict(N=n, C=c, H=h, W=w, F=f, KH=k, KW=k, stride=stride, pad=pad, groups=1, OH=oh, OW=ow,
                seed=seed)


CONV_FIRST = conv_case(2, 2, 4, 4, 2, 3, 1, 1)
# Fixed cases that separate the classic mistakes: plain, padded, strided, non-overlapping,
# and strided where (H + 2*pad - K) / stride is not whole (floor drops the last window).
CONV_PLAIN = conv_case(3, 2, 5, 5, 2, 3, 1, 0)
CONV_PADDED = conv_case(3, 2, 5, 5, 2, 3, 1, 1)
CONV_STRIDED = conv_case(3, 2, 5, 5, 2, 3, 2, 0)
CONV_DISJOINT = conv_case(3, 2, 4, 4, 2, 2, 2, 0)
CONV_UNEVEN = conv_case(2, 2, 6, 6, 2, 3, 2, 0)


def out_size(g, pads=2):
    """(OH, OW) with the padding counted ``pads`` times (2: both sides, right; 1: a classic slip)."""
    return tuple((n + pads * g["pad"] - k) // g["stride"] + 1 for n, k in ((g["H"], g["KH"]), (g["W"], g["KW"])))


def padding_hints(got, want, unpadded, g):
    """Why an output (or im2col's columns, as (N, ., OH, OW)) that is right with pad=0 is wrong
    with padding: the output size counted the padding once, the padding was ignored, or else."""
    if close(got, want):
        return []
    oh, ow = out_size(g, pads=1)
    if close(got, want[:, :, :oh, :ow]):
        return ["conv_out_size_pad"]
    if np.ndim(got) == 4 and all(a >= b for a, b in zip(np.shape(got)[2:], unpadded.shape[2:])):
        if close(np.asarray(got)[:, :, :unpadded.shape[2], :unpadded.shape[3]], unpadded):
            return ["conv_pad_forward"]
    return ["conv_pad_other"]


def conv_data(g):
    s = g.get("seed", 0)
    x = rnd(s, (g["N"], g["C"], g["H"], g["W"]))
    w = rnd(s + 1, (g["F"], g["C"], g["KH"], g["KW"]))
    b = rnd(s + 2, (g["F"],))
    dout = rnd(s + 3, (g["N"], g["F"], g["OH"], g["OW"]))
    return x, w, b, dout


def conv_text(g):
    return (f"x ({g['N']}, {g['C']}, {g['H']}, {g['W']}), w ({g['F']}, {g['C']}, {g['KH']}, {g['KW']}), "
            f"stride={g['stride']}, pad={g['pad']}")


def with_seed(strategy):
    return st.tuples(strategy, seeds()).map(lambda t: dict(t[0], seed=t[1]))


def conv_forward_body(fwd_name):
    def body(mod, g, notes):
        x, w, b, _ = conv_data(g)
        out, _ = unpack(fwd_name, call(getattr(mod, fwd_name), x, w, b, g["stride"], g["pad"]), ("out", "cache"))
        return expect("out", out, F.conv2d_forward(x, w, b, g["stride"], g["pad"])[0], conv_text(g))
    return body


def conv_forward_ok(mod, fwd_name, g):
    x, w, b, _ = conv_data(g)
    res = attempt(getattr(mod, fwd_name), x, w, b, g["stride"], g["pad"])
    return res is not None and close(res[0], F.conv2d_forward(x, w, b, g["stride"], g["pad"])[0]), res


def conv_forward_diagnosis(fwd_name):
    def diagnose(mod):
        plain, res = conv_forward_ok(mod, fwd_name, CONV_PLAIN)
        if plain:
            g = CONV_PADDED
            x, w, b, _ = conv_data(g)
            padded = conv_forward_ok(mod, fwd_name, g)[1]
            found = padding_hints(padded[0] if isinstance(padded, tuple) else None,
                                  F.conv2d_forward(x, w, b, 1, g["pad"])[0], F.conv2d_forward(x, w, b)[0], g)
            if not conv_forward_ok(mod, fwd_name, CONV_STRIDED)[0]:
                found.append("stride")
            elif not conv_forward_ok(mod, fwd_name, CONV_UNEVEN)[0]:
                found.append("out_size_floor")
            return found
        x, w, b, _ = conv_data(CONV_PLAIN)
        out = None if res is None or not isinstance(res, tuple) else res[0]
        if close(out, F.conv2d_forward(x, w[:, :, ::-1, ::-1].copy(), b)[0]):
            return ["conv_flip"]
        if close(out, F.conv2d_forward(x, w, None)[0]):
            return ["bias"]
        return []
    return diagnose


def student_conv_grads(mod, fwd_name, bwd_name, g):
    x, w, b, dout = conv_data(g)
    _, cache = unpack(fwd_name, call(getattr(mod, fwd_name), x, w, b, g["stride"], g["pad"]), ("out", "cache"))
    return unpack(bwd_name, call(getattr(mod, bwd_name), dout, cache), ("dx", "dw", "db"))


def true_conv_grads(g):
    x, w, b, dout = conv_data(g)
    return F.conv2d_backward(dout, F.conv2d_forward(x, w, b, g["stride"], g["pad"])[1])


def conv_backward_body(fwd_name, bwd_name):
    def body(mod, g, notes):
        x, w, b, dout = conv_data(g)
        dx, dw, db = student_conv_grads(mod, fwd_name, bwd_name, g)
        tdx, tdw, tdb = true_conv_grads(g)
        case = conv_text(g)
        err = max(expect("dx", dx, tdx, case), expect("dw", dw, tdw, case), expect("db", db, tdb, case))
        s, p = g["stride"], g["pad"]
        return max(err, expect_numeric("dx", dx, lambda v: F.conv2d_forward(v, w, b, s, p)[0], x, dout, case),
                   expect_numeric("dw", dw, lambda v: F.conv2d_forward(x, v, b, s, p)[0], w, dout, case))
    return body


def conv_backward_diagnosis(fwd_name, bwd_name):
    def grads_ok(mod, g):
        res = attempt(student_conv_grads, mod, fwd_name, bwd_name, g)
        return res is not None and all(close(a, t) for a, t in zip(res, true_conv_grads(g))), res

    def diagnose(mod):
        found = []
        plain, res = grads_ok(mod, CONV_PLAIN)
        padded, pres = grads_ok(mod, CONV_PADDED)
        g = CONV_PADDED
        if pres is not None and np.shape(pres[0]) == (g["N"], g["C"], g["H"] + 2, g["W"] + 2):
            found.append("pad_crop")
        if res is not None and np.shape(res[0]) == (3, 2, 0, 0):
            found.append("pad_crop")
        if plain and not padded:
            found.append("conv_pad_backward")
        if plain and not grads_ok(mod, CONV_STRIDED)[0]:
            found.append("stride")
        elif plain and not grads_ok(mod, CONV_UNEVEN)[0]:
            found.append("out_size_floor")
        if not plain and grads_ok(mod, CONV_DISJOINT)[0]:
            found.append("overlap_add")
        if res is not None:
            x, w, b, dout = conv_data(CONV_PLAIN)
            per = [F.conv2d_backward(dout[n:n + 1], F.conv2d_forward(x[n:n + 1], w, b)[1]) for n in range(len(x))]
            found += batch_hints(res[1], [p[1] for p in per]) + batch_hints(res[2], [p[2] for p in per])
            if np.shape(res[2]) == dout.shape[1:]:   # dout.sum(axis=0): still one per position
                found.append("bias_grad_positions")
        return found
    return diagnose


for _fwd, _bwd in (("conv_forward_naive", "conv_backward_naive"), ("conv_forward_im2col", "conv_backward_im2col")):
    CHECKS.append(Check(_fwd, conv_forward_body(_fwd), with_seed(conv_cases), CONV_FIRST,
                        conv_forward_diagnosis(_fwd), max_examples=10))
    CHECKS.append(Check(_bwd, conv_backward_body(_fwd, _bwd), with_seed(conv_cases), CONV_FIRST,
                        conv_backward_diagnosis(_fwd, _bwd), needs=(_fwd,), max_examples=10))


def cols_shape(g):
    return (g["N"], g["C"] * g["KH"] * g["KW"], g["OH"] * g["OW"])


def true_im2col(x, g):
    return F.im2col(x, g["KH"], g["KW"], g["stride"], g["pad"]).reshape(cols_shape(g))


def im2col_body(mod, g, notes):
    x = conv_data(g)[0]
    cols = np.asarray(call(mod.im2col, x, g["KH"], g["KW"], g["stride"], g["pad"]))
    want = true_im2col(x, g)
    if cols.size == want.size and cols.shape == (g["N"], g["C"], g["KH"], g["KW"], g["OH"], g["OW"]):
        cols = cols.reshape(want.shape)   # minicnn's own 6-D layout is accepted too
    return expect("cols", cols, want, conv_text(g))


def im2col_ok(mod, g):
    x = conv_data(g)[0]
    cols = attempt(mod.im2col, x, g["KH"], g["KW"], g["stride"], g["pad"])
    want = true_im2col(x, g)
    if cols is None or np.size(cols) != want.size:
        return False
    return close(np.reshape(cols, -1), want.reshape(-1))   # either accepted layout (see im2col_body)


def student_cols(mod, g):
    """The student's im2col of conv_data(g)'s x as (N, C*KH*KW, windows), or None."""
    x = conv_data(g)[0]
    cols = attempt(mod.im2col, x, g["KH"], g["KW"], g["stride"], g["pad"])
    try:
        return np.asarray(cols, dtype=np.float64).reshape(g["N"], g["C"] * g["KH"] * g["KW"], -1)
    except (TypeError, ValueError):
        return None


def diagnose_im2col(mod):
    g = CONV_PLAIN
    if not im2col_ok(mod, g):
        # Rows (tap, channel) instead of (channel, tap): w.reshape(F, -1) no longer lines up.
        want = true_im2col(conv_data(g)[0], g).reshape(g["N"], g["C"], g["KH"] * g["KW"], -1)
        return ["im2col_row_order"] if close(student_cols(mod, g), want.transpose(0, 2, 1, 3).reshape(
            g["N"], g["C"] * g["KH"] * g["KW"], -1)) else []
    g = CONV_PADDED
    x, rows = conv_data(g)[0], g["C"] * g["KH"] * g["KW"]
    got = student_cols(mod, g)
    oh, ow = out_size(g, pads=1)
    if got is not None and got.shape[2] == oh * ow:   # windows of an output size that counted the padding once
        got = got.reshape(g["N"], rows, oh, ow)
    elif got is not None and got.shape[2] == g["OH"] * g["OW"]:
        got = got.reshape(g["N"], rows, g["OH"], g["OW"])
    g0 = dict(g, pad=0)
    g0["OH"], g0["OW"] = out_size(g0)
    unpadded = true_im2col(x, g0).reshape(g["N"], rows, g0["OH"], g0["OW"])
    found = padding_hints(got, true_im2col(x, g).reshape(g["N"], rows, g["OH"], g["OW"]), unpadded, g)
    if not im2col_ok(mod, CONV_STRIDED):
        found.append("stride")
    elif not im2col_ok(mod, CONV_UNEVEN):
        found.append("out_size_floor")
    return found


CHECKS.append(Check("im2col", im2col_body, with_seed(conv_cases), CONV_FIRST, diagnose_im2col))


def col2im_data(g):
    cols = rnd(g.get("seed", 0) + 4, cols_shape(g))
    x_shape = (g["N"], g["C"], g["H"], g["W"])
    want = F.col2im(cols.reshape(g["N"], g["C"], g["KH"], g["KW"], g["OH"], g["OW"]), x_shape, g["stride"], g["pad"])
    return cols, x_shape, want


def col2im_body(mod, g, notes):
    cols, x_shape, want = col2im_data(g)
    dx = call(mod.col2im, cols, x_shape, g["KH"], g["KW"], g["stride"], g["pad"])
    return expect("dx", dx, want, conv_text(g))


def diagnose_col2im(mod):
    def ok(g):
        cols, x_shape, want = col2im_data(g)
        dx = attempt(mod.col2im, cols, x_shape, g["KH"], g["KW"], g["stride"], g["pad"])
        return close(dx, want), dx
    found = []
    plain, _ = ok(CONV_PLAIN)
    padded, dxp = ok(CONV_PADDED)
    g = CONV_PADDED
    if np.shape(dxp) == (g["N"], g["C"], g["H"] + 2, g["W"] + 2) or (plain and not padded):
        found.append("pad_crop")
    if not plain and ok(CONV_DISJOINT)[0]:
        found.append("overlap_add")
    if plain and not ok(CONV_STRIDED)[0]:
        found.append("stride")
    elif plain and not ok(CONV_UNEVEN)[0]:
        found.append("out_size_floor")
    return found


CHECKS.append(Check("col2im", col2im_body, with_seed(conv_cases), CONV_FIRST, diagnose_col2im))
