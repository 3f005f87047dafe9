"""What each exercise function is checked against, and how its classic mistakes are recognised.

One ``Check`` per function (see checker.py).  Cases are small: a gradient check costs two
forward passes per input entry, and a student's naive loops are slow.  Inputs keep away
from kinks and ties (``minicnn.testing.strategies``) except in the cases that test them.

A *diagnosis* computes, on a fixed input, what a classic mistake would return and
compares it with what the student's function returns: a match names the hint.
"""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.exercises import templates
from minicnn.exercises.checker import (Check, Mismatch, NotImplementedYet, StudentError, call, close, expect,
                                         expect_numeric, unpack)
from minicnn.testing import strategies as mst

seeds = mst.seeds


def rnd(seed, shape, scale=1.0, shift=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def shape_text(**arrays):
    return ", ".join(f"{k} {tuple(v.shape) if hasattr(v, 'shape') else v}" for k, v in arrays.items())


def attempt(fn, *args):
    """Run student code for a diagnosis; None if it raises anything."""
    try:
        return call(fn, *args)
    except Exception:  # noqa: BLE001 - a diagnosis only looks for matches
        return None


def batch_hints(got, per_example):
    """Hint ids for a parameter gradient that should be the sum of ``per_example`` over the batch."""
    want = sum(per_example)
    got = np.asarray(got) if got is not None else None
    if got is None:
        return []
    if got.shape == (len(per_example),) + want.shape:
        return ["batch_sum"]
    if close(got, want):
        return []
    if any(close(got, pe) for pe in per_example):
        return ["batch_sum"]
    if close(got, want / len(per_example)):
        return ["batch_mean"]
    return []


CHECKS = []


def check(name, strategy, first, diagnose=None, needs=(), max_examples=10):
    def deco(body):
        CHECKS.append(Check(name, body, strategy, first, diagnose, needs, max_examples))
        return body
    return deco


# ---------------------------------------------------------------- linear
linear_cases = st.fixed_dictionaries({"N": st.integers(1, 3), "dims": st.sampled_from([(4,), (3,), (2, 3)]),
                                      "M": st.integers(1, 3), "seed": seeds()})
LINEAR_FIRST = {"N": 3, "dims": (4,), "M": 2, "seed": 1}


def linear_data(c):
    d = int(np.prod(c["dims"]))
    s = c["seed"]
    return rnd(s, (c["N"],) + tuple(c["dims"])), rnd(s + 1, (c["M"], d)), rnd(s + 2, (c["M"],))


def diagnose_linear_forward(mod):
    x, w, b = linear_data(LINEAR_FIRST)
    out = attempt(lambda *a: unpack("linear_forward", mod.linear_forward(*a), ("out", "cache")), x, w, b)
    return ["bias"] if out is not None and close(out[0], x @ w.T) else []


@check("linear_forward", linear_cases, LINEAR_FIRST, diagnose_linear_forward)
def linear_forward(mod, c, notes):
    x, w, b = linear_data(c)
    out, _ = unpack("linear_forward", call(mod.linear_forward, x, w, b), ("out", "cache"))
    return expect("out", out, F.linear_forward(x, w, b)[0], shape_text(x=x, w=w))


def student_linear_grads(mod, c):
    x, w, b = linear_data(c)
    _, cache = unpack("linear_forward", call(mod.linear_forward, x, w, b), ("out", "cache"))
    dout = rnd(c["seed"] + 3, (c["N"], c["M"]))
    grads = unpack("linear_backward", call(mod.linear_backward, dout, cache), ("dx", "dw", "db"))
    return x, w, b, dout, grads


def diagnose_linear_backward(mod):
    try:
        x, w, b, dout, (dx, dw, db) = student_linear_grads(mod, LINEAR_FIRST)
    except Exception:  # noqa: BLE001
        return []
    found = batch_hints(dw, [np.outer(dout[n], x[n]) for n in range(len(x))])
    found += batch_hints(db, list(dout))
    x3, w3, b3 = linear_data({"N": 2, "dims": (2, 3), "M": 2, "seed": 5})
    res = attempt(lambda: student_linear_grads(mod, {"N": 2, "dims": (2, 3), "M": 2, "seed": 5}))
    if res is not None and np.shape(res[4][0]) != x3.shape:
        found.append("reshape_dx")
    return found


@check("linear_backward", linear_cases, LINEAR_FIRST, diagnose_linear_backward, needs=("linear_forward",))
def linear_backward(mod, c, notes):
    x, w, b, dout, (dx, dw, db) = student_linear_grads(mod, c)
    case = shape_text(x=x, w=w)
    tdx, tdw, tdb = F.linear_backward(dout, F.linear_forward(x, w, b)[1])
    err = max(expect("dx", dx, tdx, case), expect("dw", dw, tdw, case), expect("db", db, tdb, case))
    return max(err, expect_numeric("dw", dw, lambda v: F.linear_forward(x, v, b)[0], w, dout, case),
               expect_numeric("dx", dx, lambda v: F.linear_forward(v, w, b)[0], x, dout, case))


# ---------------------------------------------------------------- relu
relu_cases = st.fixed_dictionaries({"shape": st.sampled_from([(5,), (2, 3), (2, 2, 2, 3)]), "seed": seeds()})
RELU_FIRST = {"shape": (3, 4), "seed": 2}


@check("relu_forward", relu_cases, RELU_FIRST)
def relu_forward(mod, c, notes):
    x = mst.kink_free_array(c["shape"], c["seed"])
    out, _ = unpack("relu_forward", call(mod.relu_forward, x), ("out", "cache"))
    return expect("out", out, np.maximum(x, 0), shape_text(x=x))


def student_relu_dx(mod, x, dout):
    _, cache = unpack("relu_forward", call(mod.relu_forward, x), ("out", "cache"))
    return call(mod.relu_backward, dout, cache)


def diagnose_relu_backward(mod):
    x = mst.kink_free_array((3, 4), 2)
    dout = rnd(3, (3, 4))
    dx = attempt(student_relu_dx, mod, x, dout)
    if dx is None:
        return []
    if close(dx, dout * np.maximum(x, 0)):
        return ["relu_local_grad"]
    if close(dx, (x > 0).astype(float)):
        return ["relu_dout"]
    return []


@check("relu_backward", relu_cases, RELU_FIRST, diagnose_relu_backward, needs=("relu_forward",))
def relu_backward(mod, c, notes):
    x = mst.kink_free_array(c["shape"], c["seed"])
    dout = rnd(c["seed"] + 1, c["shape"])
    dx = student_relu_dx(mod, x, dout)
    err = expect("dx", dx, F.relu_backward(dout, F.relu_forward(x)[1]), shape_text(x=x))
    err = max(err, expect_numeric("dx", dx, lambda v: F.relu_forward(v)[0], x, dout, shape_text(x=x)))
    # At the kink both choices are subgradients: accept either, and say which one is used.
    xk = np.array([-1.0, 0.0, 2.0, 0.0])
    dk = np.array([1.5, 2.5, -0.5, 3.0])
    dxk = np.asarray(student_relu_dx(mod, xk, dk), dtype=float)
    if dxk.shape == xk.shape and np.allclose(dxk[[0, 2]], [0.0, -0.5]):
        if np.allclose(dxk[[1, 3]], [2.5, 3.0]):
            notes.add("relu_kink")
        elif not np.allclose(dxk[[1, 3]], 0.0):
            raise Mismatch("at x == 0 dx should be 0 or dout (a subgradient of ReLU), received "
                           f"{dxk[[1, 3]]} for dout {dk[[1, 3]]}")
    return err


# ---------------------------------------------------------------- convolution
conv_cases = mst.conv_geometries(max_batch=2, max_channels=3, max_size=5, max_kernel=3, max_stride=2,
                                 max_pad=1, groups=False)


def conv_case(n, c, h, w, f, k, stride, pad, seed=7):
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    return dict(N=n, C=c, H=h, W=w, F=f, KH=k, KW=k, stride=stride, pad=pad, groups=1, OH=oh, OW=ow,
                seed=seed)


CONV_FIRST = conv_case(2, 2, 4, 4, 2, 3, 1, 1)
# Fixed cases that separate the classic mistakes: plain, padded, strided, non-overlapping.
CONV_PLAIN = conv_case(3, 2, 5, 5, 2, 3, 1, 0)
CONV_PADDED = conv_case(3, 2, 5, 5, 2, 3, 1, 1)
CONV_STRIDED = conv_case(3, 2, 5, 5, 2, 3, 2, 0)
CONV_DISJOINT = conv_case(3, 2, 4, 4, 2, 2, 2, 0)


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
            found = []
            if not conv_forward_ok(mod, fwd_name, CONV_PADDED)[0]:
                found.append("conv_pad_forward")
            if not conv_forward_ok(mod, fwd_name, CONV_STRIDED)[0]:
                found.append("stride")
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
        if not plain and grads_ok(mod, CONV_DISJOINT)[0]:
            found.append("overlap_add")
        if res is not None:
            x, w, b, dout = conv_data(CONV_PLAIN)
            per = [F.conv2d_backward(dout[n:n + 1], F.conv2d_forward(x[n:n + 1], w, b)[1]) for n in range(len(x))]
            found += batch_hints(res[1], [p[1] for p in per]) + batch_hints(res[2], [p[2] for p in per])
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
    return cols is not None and close(np.reshape(cols, (-1,)) if np.size(cols) == np.prod(cols_shape(g)) else cols,
                                      true_im2col(x, g).reshape(-1))


def diagnose_im2col(mod):
    if not im2col_ok(mod, CONV_PLAIN):
        return []
    return ([] if im2col_ok(mod, CONV_PADDED) else ["conv_pad_forward"]) + \
           ([] if im2col_ok(mod, CONV_STRIDED) else ["stride"])


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
    return found


CHECKS.append(Check("col2im", col2im_body, with_seed(conv_cases), CONV_FIRST, diagnose_col2im))


# ---------------------------------------------------------------- max pooling
@st.composite
def pool_cases(draw):
    size = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    return dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 2)), H=draw(st.integers(size, 6)),
                W=draw(st.integers(size, 6)), size=size, stride=stride, seed=draw(seeds()))


POOL_FIRST = dict(N=2, C=2, H=4, W=4, size=2, stride=2, seed=3)
POOL_OVERLAP = dict(N=2, C=2, H=5, W=5, size=3, stride=1, seed=4)
POOL_DISJOINT = dict(N=2, C=2, H=4, W=4, size=2, stride=2, seed=4)


def pool_text(g):
    return f"x ({g['N']}, {g['C']}, {g['H']}, {g['W']}), size={g['size']}, stride={g['stride']}"


def pool_data(g):
    shape = (g["N"], g["C"], g["H"], g["W"])
    x = mst.tie_free_array(shape, g["seed"], spacing=0.1)
    out_shape = F.max_pool2d_forward(x, g["size"], g["stride"])[0].shape
    return x, rnd(g["seed"] + 1, out_shape)


@check("max_pool_forward", pool_cases(), POOL_FIRST)
def max_pool_forward(mod, g, notes):
    x, _ = pool_data(g)
    out, _ = unpack("max_pool_forward", call(mod.max_pool_forward, x, g["size"], g["stride"]), ("out", "cache"))
    return expect("out", out, F.max_pool2d_forward(x, g["size"], g["stride"])[0], pool_text(g))


def student_pool_dx(mod, x, dout, size, stride):
    _, cache = unpack("max_pool_forward", call(mod.max_pool_forward, x, size, stride), ("out", "cache"))
    return call(mod.max_pool_backward, dout, cache)


def tie_case(seed):
    """Windows of 2x2 (stride 2) full of ties: small integers."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(1, 2, 4, 4)).astype(float), rnd(seed + 1, (1, 2, 2, 2))


def all_ties_dx(x, dout):
    """The mistake: every maximum of a (2x2, stride 2) window gets the window's gradient."""
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2)
    is_max = win == win.max(axis=(3, 5), keepdims=True)
    return (is_max * dout[:, :, :, None, :, None]).reshape(x.shape)


@check("max_pool_backward", pool_cases(), POOL_FIRST, needs=("max_pool_forward",),
       diagnose=lambda mod: diagnose_max_pool_backward(mod))
def max_pool_backward(mod, g, notes):
    x, dout = pool_data(g)
    case = pool_text(g)
    dx = student_pool_dx(mod, x, dout, g["size"], g["stride"])
    err = expect("dx", dx, F.max_pool2d_backward(dout, F.max_pool2d_forward(x, g["size"], g["stride"])[1]), case)
    err = max(err, expect_numeric("dx", dx, lambda v: F.max_pool2d_forward(v, g["size"], g["stride"])[0],
                                  x, dout, case))
    # Ties: not differentiable; any one maximum per window is a valid choice, all of them is not.
    xt, dt = tie_case(g["seed"])
    dxt = np.asarray(student_pool_dx(mod, xt, dt, 2, 2), dtype=float)
    first = F.max_pool2d_backward(dt, F.max_pool2d_forward(xt, 2, 2)[1])
    if not close(dxt, first):
        if close(dxt, all_ties_dx(xt, dt)):
            raise Mismatch("with tied maxima in a window (x of small integers, size=2, stride=2) the "
                           "gradient goes to every tied maximum")
        ok_sum = dxt.shape == xt.shape and close(dxt.reshape(1, 2, 2, 2, 2, 2).sum(axis=(3, 5)), dt)
        at_max = np.all((dxt == 0) | (all_ties_dx(xt, np.ones_like(dt)) > 0))
        if not (ok_sum and at_max):
            raise Mismatch("with tied maxima in a window (x of small integers, size=2, stride=2) dx is "
                           "not a gradient to one maximum per window")
        notes.add("pool_ties_other")
    return err


def diagnose_max_pool_backward(mod):
    def ok(g):
        x, dout = pool_data(g)
        dx = attempt(student_pool_dx, mod, x, dout, g["size"], g["stride"])
        return close(dx, F.max_pool2d_backward(dout, F.max_pool2d_forward(x, g["size"], g["stride"])[1]))
    found = []
    if ok(POOL_DISJOINT) and not ok(POOL_OVERLAP):
        found.append("overlap_add")
    xt, dt = tie_case(0)
    if close(attempt(student_pool_dx, mod, xt, dt, 2, 2), all_ties_dx(xt, dt)):
        found.append("pool_ties_all")
    return found


# ---------------------------------------------------------------- batch norm
@st.composite
def bn_cases(draw):
    if draw(st.booleans()):
        shape = (draw(st.integers(2, 4)), draw(st.integers(1, 3)))
    else:
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(2, 3)))
    return dict(shape=shape, training=draw(st.booleans()), momentum=draw(st.sampled_from([0.1, 0.3])),
                seed=draw(seeds()))


BN_FIRST = dict(shape=(4, 3), training=True, momentum=0.1, seed=5)
BN_SPATIAL = dict(shape=(2, 3, 2, 2), training=True, momentum=0.1, seed=6)


def bn_data(c):
    s, shape = c["seed"], c["shape"]
    ch = shape[1]
    x = rnd(s, shape, 2.0, 0.5)
    return (x, rnd(s + 1, (ch,), 0.5, 1.0), rnd(s + 2, (ch,)), rnd(s + 3, (ch,), 0.1),
            np.random.default_rng(s + 4).uniform(0.5, 1.5, ch), rnd(s + 5, shape))


def bn_text(c):
    return f"x {c['shape']}, training={c['training']}, momentum={c['momentum']}"


def student_bn_forward(mod, c, x, gamma, beta, rm, rv):
    """Run the student's forward with its own running-stat arrays; return (out, cache, rm, rv)."""
    rm, rv = rm.copy(), rv.copy()
    try:
        res = mod.batchnorm_forward(x.copy(), gamma.copy(), beta.copy(), rm, rv, c["training"], c["momentum"], 1e-5)
    except NotImplementedError:
        raise NotImplementedYet("batchnorm_forward") from None
    except Exception as exc:  # noqa: BLE001 - the student's bug, reported like call() does
        raise StudentError("batchnorm_forward", exc) from None
    out, cache = unpack("batchnorm_forward", res, ("out", "cache"))
    return out, cache, rm, rv


@check("batchnorm_forward", bn_cases(), BN_FIRST, diagnose=lambda mod: diagnose_bn_forward(mod))
def batchnorm_forward(mod, c, notes):
    x, gamma, beta, rm, rv, _ = bn_data(c)
    out, _, srm, srv = student_bn_forward(mod, c, x, gamma, beta, rm, rv)
    trm, trv = rm.copy(), rv.copy()
    want = F.batchnorm_forward(x, gamma, beta, trm, trv, c["training"], c["momentum"])[0]
    case = bn_text(c)
    return max(expect("out", out, want, case), expect("running_mean", srm, trm, case),
               expect("running_var", srv, trv, case))


def diagnose_bn_forward(mod):
    found = []
    # A conv input reshaped to (N*H*W, C) without moving C last first mixes the channels.
    c = BN_SPATIAL
    x, gamma, beta, rm, rv, _ = bn_data(c)
    res = attempt(student_bn_forward, mod, c, x, gamma, beta, rm, rv)
    if res is not None:
        mixed = F.batchnorm_forward(x.reshape(-1, x.shape[1]), gamma, beta, rm.copy(), rv.copy(), True)[0]
        if close(res[0], mixed.reshape(x.shape)):
            found.append("bn_per_channel")
    # Per-position statistics for a conv input.
    c = BN_SPATIAL
    x, gamma, beta, rm, rv, _ = bn_data(c)
    res = attempt(student_bn_forward, mod, c, x, gamma, beta, rm, rv)
    if res is not None:
        xc = x - x.mean(axis=0)
        per_pos = xc / np.sqrt(xc.var(axis=0) + 1e-5) * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)
        if close(res[0], per_pos):
            found.append("bn_per_channel")
    # Running statistics of a training step.
    c = BN_FIRST
    x, gamma, beta, rm, rv, _ = bn_data(c)
    res = attempt(student_bn_forward, mod, c, x, gamma, beta, rm, rv)
    if res is not None:
        _, _, srm, srv = res
        m, mu, var = len(x), x.mean(axis=0), x.var(axis=0)
        if close(srm, rm) and close(srv, rv):
            found.append("bn_running_in_place")
        elif close(srv, 0.9 * rv + 0.1 * var):
            found.append("bn_running_unbiased")
        elif close(srm, 0.1 * rm + 0.9 * mu) or close(srv, 0.1 * rv + 0.9 * var * m / (m - 1)):
            found.append("bn_momentum")
    # Evaluation mode.
    c = dict(BN_FIRST, training=False)
    x, gamma, beta, rm, rv, _ = bn_data(c)
    res = attempt(student_bn_forward, mod, c, x, gamma, beta, rm, rv)
    if res is not None:
        batch = F.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), True)[0]
        if close(res[0], batch) or not (close(res[2], rm) and close(res[3], rv)):
            found.append("bn_eval_batch_stats")
    return found


def student_bn_grads(mod, c):
    x, gamma, beta, rm, rv, dout = bn_data(c)
    _, cache, _, _ = student_bn_forward(mod, c, x, gamma, beta, rm, rv)
    return unpack("batchnorm_backward", call(mod.batchnorm_backward, dout, cache), ("dx", "dgamma", "dbeta"))


@check("batchnorm_backward", bn_cases(), BN_FIRST, needs=("batchnorm_forward",),
       diagnose=lambda mod: diagnose_bn_backward(mod))
def batchnorm_backward(mod, c, notes):
    x, gamma, beta, rm, rv, dout = bn_data(c)
    dx, dgamma, dbeta = student_bn_grads(mod, c)
    tr, mom = c["training"], c["momentum"]
    tdx, tdg, tdb = F.batchnorm_backward(dout, F.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), tr, mom)[1])
    case = bn_text(c)
    err = max(expect("dx", dx, tdx, case), expect("dgamma", dgamma, tdg, case), expect("dbeta", dbeta, tdb, case))
    fx = lambda v: F.batchnorm_forward(v, gamma, beta, rm.copy(), rv.copy(), tr, mom)[0]  # noqa: E731
    return max(err, expect_numeric("dx", dx, fx, x, dout, case))


def diagnose_bn_backward(mod):
    found = []
    for c in (BN_FIRST, BN_SPATIAL):
        x, gamma, beta, rm, rv, dout = bn_data(c)
        res = attempt(student_bn_grads, mod, c)
        if res is None:
            continue
        dx, dgamma, dbeta = res
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        vs = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
        inv_std = 1 / np.sqrt(x.var(axis=axes) + 1e-5)
        xhat = (x - x.mean(axis=axes).reshape(vs)) * inv_std.reshape(vs)
        g = (gamma * inv_std).reshape(vs)
        mean = lambda v: v.mean(axis=axes).reshape(vs)  # noqa: E731
        tdx = F.batchnorm_backward(dout, F.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), True)[1])[0]
        if close(dx, dout * g):
            found.append("bn_dx_constant_stats")
        elif close(dx, g * (dout - mean(dout))):
            found.append("bn_dx_no_var_term")
        elif close(dx, g * (dout - xhat * mean(dout * xhat))):
            found.append("bn_dx_no_mean_term")
        elif not close(dx, tdx) and np.shape(dx) == x.shape:
            found.append("bn_dx_terms")
        if x.ndim == 4 and np.shape(dgamma) in ((3, 2, 2), (1, 3, 2, 2)):
            found.append("bn_per_channel")
        if x.ndim == 2:
            found += batch_hints(dgamma, list(dout * xhat)) + batch_hints(dbeta, list(dout))
    return found


# ---------------------------------------------------------------- dropout
dropout_cases = st.fixed_dictionaries({"shape": st.sampled_from([(4, 50), (2, 3, 40), (300,)]),
                                       "p": st.sampled_from([0.2, 0.5, 0.75]), "seed": seeds()})
DROPOUT_FIRST = {"shape": (100, 100), "p": 0.25, "seed": 9}


def dropout_run(mod, x, p, training, seed):
    out, cache = unpack("dropout_forward", call(mod.dropout_forward, x, p, training, np.random.default_rng(seed)),
                        ("out", "cache"))
    return np.asarray(out, dtype=float), cache


@check("dropout_forward", dropout_cases, DROPOUT_FIRST, diagnose=lambda mod: diagnose_dropout_forward(mod))
def dropout_forward(mod, c, notes):
    p, seed = c["p"], c["seed"]
    x = mst.kink_free_array(c["shape"], seed)
    case = f"x {c['shape']}, p={p}"
    out, _ = dropout_run(mod, x, p, True, seed)
    if out.shape != x.shape:
        raise Mismatch(f"out has shape {out.shape}, expected {x.shape} for {case}")
    kept = out != 0
    err = expect("out (kept values)", out[kept], x[kept] / (1 - p), case) if kept.any() else 0.0
    again, _ = dropout_run(mod, x, p, True, seed)
    if not np.array_equal(again, out):
        raise Mismatch(f"two calls with Generators of the same seed dropped different units for {case}")
    frac = 1 - kept.mean()
    spread = 5 * np.sqrt(p * (1 - p) / x.size) + 0.01   # five standard deviations of the dropped fraction
    if abs(frac - p) > spread:
        raise Mismatch(f"dropped a fraction {frac:.3f} of the values, expected about p = {p} for {case}",
                       abs(frac - p) / p)
    ev, _ = dropout_run(mod, x, p, False, seed)
    return max(err, expect("out (evaluation)", ev, x, case + ", training=False"))


def diagnose_dropout_forward(mod):
    c = DROPOUT_FIRST
    p, seed = c["p"], c["seed"]
    x = mst.kink_free_array(c["shape"], seed)
    found = []
    res = attempt(dropout_run, mod, x, p, True, seed)
    if res is not None and res[0].shape == x.shape:
        out = res[0]
        kept = out != 0
        if kept.any() and close(out[kept], x[kept]):
            found.append("dropout_not_inverted")
        if abs(1 - kept.mean() - (1 - p)) < 0.03:
            found.append("dropout_keep_prob")
        again = attempt(dropout_run, mod, x, p, True, seed)
        if again is not None and not np.array_equal(again[0], out):
            found.append("dropout_global_rng")
    ev = attempt(dropout_run, mod, x, p, False, seed)
    if ev is not None and not close(ev[0], x):
        found.append("dropout_eval")
    return found


def diagnose_dropout_backward(mod):
    c = DROPOUT_FIRST
    x = mst.kink_free_array(c["shape"], c["seed"])
    dout = rnd(1, x.shape)
    res = attempt(dropout_run, mod, x, c["p"], True, c["seed"])
    if res is None:
        return []
    dx = attempt(mod.dropout_backward, dout, res[1])
    return ["dropout_backward_mask"] if close(dx, dout * (res[0] != 0)) else []


@check("dropout_backward", dropout_cases, DROPOUT_FIRST, diagnose_dropout_backward, needs=("dropout_forward",))
def dropout_backward(mod, c, notes):
    p, seed = c["p"], c["seed"]
    x = mst.kink_free_array(c["shape"], seed)
    dout = rnd(seed + 1, x.shape)
    case = f"x {c['shape']}, p={p}"
    out, cache = dropout_run(mod, x, p, True, seed)
    # Given the mask, dropout is linear: out = x * scale, so dx = dout * out / x exactly,
    # and it is also the numeric gradient of the forward with the same seed.
    err = expect("dx", call(mod.dropout_backward, dout, cache), dout * out / x, case)
    _, cache_ev = dropout_run(mod, x, p, False, seed)
    return max(err, expect("dx (evaluation)", call(mod.dropout_backward, dout, cache_ev), dout,
                           case + ", training=False"))


# ---------------------------------------------------------------- LRN
lrn_cases = st.fixed_dictionaries({
    "shape": st.tuples(st.integers(1, 2), st.integers(1, 6), st.integers(1, 3), st.integers(1, 2)),
    "size": st.integers(1, 5), "alpha": st.sampled_from([1e-3, 0.1, 1.0]),
    "beta": st.sampled_from([0.75, 0.5]), "k": st.sampled_from([2.0, 1.0]), "seed": seeds()})
LRN_FIRST = {"shape": (2, 6, 2, 2), "size": 4, "alpha": 0.5, "beta": 0.75, "k": 2.0, "seed": 11}


def lrn_text(c):
    return f"x {c['shape']}, size={c['size']}, alpha={c['alpha']}, beta={c['beta']}, k={c['k']}"


def lrn_args(c):
    return c["size"], c["alpha"], c["beta"], c["k"]


def lrn_with_window(x, before, after, alpha_over_n, beta, k):
    """LRN with an arbitrary channel window (for recognising off-by-one windows)."""
    sq = np.pad(x * x, ((0, 0), (before, after), (0, 0), (0, 0)))
    s = sum(sq[:, d:d + x.shape[1]] for d in range(before + after + 1))
    return x / (k + alpha_over_n * s) ** beta


@check("lrn_forward", lrn_cases, LRN_FIRST, diagnose=lambda mod: diagnose_lrn_forward(mod))
def lrn_forward(mod, c, notes):
    x = rnd(c["seed"], c["shape"], 1.5)
    out, _ = unpack("lrn_forward", call(mod.lrn_forward, x, *lrn_args(c)), ("out", "cache"))
    return expect("out", out, F.lrn_forward(x, *lrn_args(c))[0], lrn_text(c))


def diagnose_lrn_forward(mod):
    c = LRN_FIRST
    x = rnd(c["seed"], c["shape"], 1.5)
    n, alpha, beta, k = lrn_args(c)
    res = attempt(mod.lrn_forward, x, n, alpha, beta, k)
    if not isinstance(res, tuple):
        return []
    if close(res[0], F.lrn_forward(x, n, alpha * n, beta, k)[0]):
        return ["lrn_alpha_size"]
    if close(res[0], lrn_with_window(x, (n - 1) // 2, n // 2, alpha / n, beta, k)) or \
            close(res[0], lrn_with_window(x, n // 2, n // 2, alpha / n, beta, k)):
        return ["lrn_window"]
    return []


def student_lrn_dx(mod, c, x, dout):
    _, cache = unpack("lrn_forward", call(mod.lrn_forward, x, *lrn_args(c)), ("out", "cache"))
    return call(mod.lrn_backward, dout, cache)


def diagnose_lrn_backward(mod):
    c = LRN_FIRST
    x = rnd(c["seed"], c["shape"], 1.5)
    dout = rnd(c["seed"] + 1, c["shape"])
    dx = attempt(student_lrn_dx, mod, c, x, dout)
    n, alpha, beta, k = lrn_args(c)
    s = k + alpha / n * _window_sum(x * x, n // 2, (n - 1) // 2)
    own = dout * s ** -beta
    self_only = own - 2 * alpha * beta / n * x * x * dout * s ** (-beta - 1)
    return ["lrn_cross_terms"] if close(dx, own) or close(dx, self_only) else []


def _window_sum(v, before, after):
    vp = np.pad(v, ((0, 0), (before, after), (0, 0), (0, 0)))
    return sum(vp[:, d:d + v.shape[1]] for d in range(before + after + 1))


@check("lrn_backward", lrn_cases, LRN_FIRST, diagnose_lrn_backward, needs=("lrn_forward",))
def lrn_backward(mod, c, notes):
    x = rnd(c["seed"], c["shape"], 1.5)
    dout = rnd(c["seed"] + 1, c["shape"])
    dx = student_lrn_dx(mod, c, x, dout)
    err = expect("dx", dx, F.lrn_backward(dout, F.lrn_forward(x, *lrn_args(c))[1]), lrn_text(c))
    return max(err, expect_numeric("dx", dx, lambda v: F.lrn_forward(v, *lrn_args(c))[0], x, dout, lrn_text(c)))


# ---------------------------------------------------------------- softmax cross-entropy
softmax_cases = st.fixed_dictionaries({"N": st.integers(1, 4), "K": st.integers(2, 5), "seed": seeds()})
SOFTMAX_FIRST = {"N": 3, "K": 4, "seed": 13}


def softmax_data(c, scale=3.0):
    scores = rnd(c["seed"], (c["N"], c["K"]), scale)
    y = np.random.default_rng(c["seed"] + 1).integers(0, c["K"], c["N"])
    return scores, y


def student_softmax(mod, scores, y):
    loss, dscores = unpack("softmax_cross_entropy", call(mod.softmax_cross_entropy, scores, y), ("loss", "dscores"))
    return np.asarray(loss, dtype=float), dscores


@check("softmax_cross_entropy", softmax_cases, SOFTMAX_FIRST, diagnose=lambda mod: diagnose_softmax(mod))
def softmax_cross_entropy(mod, c, notes):
    scores, y = softmax_data(c)
    case = f"scores ({c['N']}, {c['K']})"
    loss, dscores = student_softmax(mod, scores, y)
    tloss, tds = F.softmax_cross_entropy(scores, y)
    err = max(expect("loss", loss, tloss, case), expect("dscores", dscores, tds, case))
    err = max(err, expect_numeric("dscores", dscores, lambda s: np.array(F.softmax_cross_entropy(s, y)[0]),
                                  scores, None, case, floor=1e-4))
    big = scores * (1e4 / 3)
    loss, dscores = student_softmax(mod, big, y)
    tloss, tds = F.softmax_cross_entropy(big, y)
    case = f"scores ({c['N']}, {c['K']}) of size ~1e4"
    return max(err, expect("loss", loss, tloss, case), expect("dscores", dscores, tds, case))


def diagnose_softmax(mod):
    found = []
    scores, y = softmax_data(SOFTMAX_FIRST)
    n = len(y)
    # Softmax is unchanged by adding a constant to a row: scores + 1e4 only trips exp()'s
    # overflow, while scores * 1e4 (gaps of 1e4) trips log(p) of an underflowed p.
    shifted = attempt(student_softmax, mod, scores + 1e4, y)
    if shifted is None or not (close(shifted[0], F.softmax_cross_entropy(scores, y)[0], 1e-4)
                               and close(shifted[1], F.softmax_cross_entropy(scores, y)[1], 1e-4)):
        found.append("softmax_overflow")
    else:
        res = attempt(student_softmax, mod, scores * 1e4, y)
        if res is not None and not np.all(np.isfinite(res[0])):
            found.append("softmax_log_underflow")
    res = attempt(student_softmax, mod, scores, y)
    if res is None:
        return found
    loss, dscores = res
    tloss, tds = F.softmax_cross_entropy(scores, y)
    if close(loss, tloss * n):
        found.append("softmax_mean_loss")
    if close(dscores, tds * n):
        found.append("softmax_grad_n")
    onehot = np.eye(scores.shape[1])[y]
    if close(dscores, tds + onehot / n) or close(dscores, (tds + onehot / n) * n):
        found.append("softmax_onehot")
    return found


# ---------------------------------------------------------------- residual block
residual_cases = st.fixed_dictionaries({"N": st.integers(1, 2), "C": st.integers(1, 2),
                                        "H": st.integers(2, 4), "W": st.integers(2, 3), "seed": seeds()})
RESIDUAL_FIRST = {"N": 2, "C": 2, "H": 3, "W": 3, "seed": 17}


def residual_data(c):
    s, ch = c["seed"], c["C"]
    x = rnd(s, (c["N"], ch, c["H"], c["W"]))
    return (x, rnd(s + 1, (ch, ch, 3, 3), 0.4), rnd(s + 2, (ch,), 0.1), rnd(s + 3, (ch, ch, 3, 3), 0.4),
            rnd(s + 4, (ch,), 0.1), rnd(s + 5, x.shape))


def residual_reference(x, w1, b1, w2, b2, dout, shortcut=True, final_relu=True):
    """Forward and backward with minicnn's ops; the flags build the classic mistakes."""
    a1, c1 = F.conv2d_forward(x, w1, b1, 1, 1)
    h, r1 = F.relu_forward(a1)
    a2, c2 = F.conv2d_forward(h, w2, b2, 1, 1)
    out, r2 = F.relu_forward(a2 + x)
    ds = F.relu_backward(dout, r2) if final_relu else dout
    dh, dw2, db2 = F.conv2d_backward(ds, c2)
    dx_branch, dw1, db1 = F.conv2d_backward(F.relu_backward(dh, r1), c1)
    return out, (dx_branch + ds if shortcut else dx_branch, dw1, db1, dw2, db2)


def residual_text(c):
    return f"x ({c['N']}, {c['C']}, {c['H']}, {c['W']}), w1 and w2 ({c['C']}, {c['C']}, 3, 3)"


def diagnose_residual_forward(mod):
    x, w1, b1, w2, b2, _ = residual_data(RESIDUAL_FIRST)
    res = attempt(mod.residual_block_forward, x, w1, b1, w2, b2)
    if not isinstance(res, tuple):
        return []
    h = np.maximum(F.conv2d_forward(x, w1, b1, 1, 1)[0], 0)
    a2 = F.conv2d_forward(h, w2, b2, 1, 1)[0]
    return ["residual_shortcut_forward"] if close(res[0], np.maximum(a2, 0)) or close(res[0], a2) else []


@check("residual_block_forward", residual_cases, RESIDUAL_FIRST, diagnose_residual_forward, max_examples=8)
def residual_block_forward(mod, c, notes):
    x, w1, b1, w2, b2, dout = residual_data(c)
    out, _ = unpack("residual_block_forward", call(mod.residual_block_forward, x, w1, b1, w2, b2), ("out", "cache"))
    return expect("out", out, residual_reference(x, w1, b1, w2, b2, dout)[0], residual_text(c))


GRAD_NAMES = ("dx", "dw1", "db1", "dw2", "db2")


def student_residual_grads(mod, c):
    x, w1, b1, w2, b2, dout = residual_data(c)
    _, cache = unpack("residual_block_forward", call(mod.residual_block_forward, x, w1, b1, w2, b2), ("out", "cache"))
    return unpack("residual_block_backward", call(mod.residual_block_backward, dout, cache), GRAD_NAMES)


def diagnose_residual_backward(mod):
    res = attempt(student_residual_grads, mod, RESIDUAL_FIRST)
    if res is None:
        return []
    data = residual_data(RESIDUAL_FIRST)
    found = []
    if close(res[0], residual_reference(*data, shortcut=False)[1][0]):
        found.append("residual_shortcut")
    if all(close(a, t) for a, t in zip(res, residual_reference(*data, final_relu=False)[1])):
        found.append("residual_final_relu")
    return found


@check("residual_block_backward", residual_cases, RESIDUAL_FIRST, diagnose_residual_backward,
       needs=("residual_block_forward",), max_examples=8)
def residual_block_backward(mod, c, notes):
    x, w1, b1, w2, b2, dout = residual_data(c)
    grads = student_residual_grads(mod, c)
    case = residual_text(c)
    truth = residual_reference(x, w1, b1, w2, b2, dout)[1]
    err = max(expect(name, g, t, case) for name, g, t in zip(GRAD_NAMES, grads, truth))
    fx = lambda v: residual_reference(v, w1, b1, w2, b2, dout)[0]  # noqa: E731
    return max(err, expect_numeric("dx", grads[0], fx, x, dout, case))


# Report in the order of the template (the order a student works in).
_ORDER = [f for name in templates.NAMES for f in templates.load(name).FUNCTIONS]
CHECKS.sort(key=lambda chk: _ORDER.index(chk.name))
