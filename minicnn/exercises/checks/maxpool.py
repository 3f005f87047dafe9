"""Checks of max pooling, padding and ties included."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.exercises.checker import Mismatch, call, close, expect, expect_numeric, unpack
from minicnn.exercises.checks._common import attempt, check, mst, rnd, seeds


@st.composite
def pool_cases(draw):
    size = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    return dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 2)), H=draw(st.integers(size, 6)),
                W=draw(st.integers(size, 6)), size=size, stride=stride, pad=draw(st.integers(0, size // 2)),
                seed=draw(seeds()))


POOL_FIRST = dict(N=2, C=2, H=4, W=4, size=2, stride=2, pad=0, seed=3)
POOL_OVERLAP = dict(N=2, C=2, H=5, W=5, size=3, stride=1, pad=0, seed=4)
POOL_DISJOINT = dict(N=2, C=2, H=4, W=4, size=2, stride=2, pad=0, seed=4)
POOL_UNEVEN = dict(N=2, C=2, H=5, W=5, size=2, stride=2, pad=0, seed=5)   # (5 - 2) / 2 is not whole
POOL_PADDED = dict(N=2, C=2, H=5, W=5, size=3, stride=2, pad=1, seed=6)


def pool_text(g):
    return f"x ({g['N']}, {g['C']}, {g['H']}, {g['W']}), size={g['size']}, stride={g['stride']}, pad={g['pad']}"


def pool_args(g):
    return g["size"], g["stride"], g["pad"]


def pool_data(g, shift=0.0):
    """A tie-free x (shifted: all negative for shift < -max) and a dout of the output's shape."""
    shape = (g["N"], g["C"], g["H"], g["W"])
    x = mst.tie_free_array(shape, g["seed"], spacing=0.1) + shift
    out_shape = F.max_pool2d_forward(x, *pool_args(g))[0].shape
    return x, rnd(g["seed"] + 1, out_shape)


def zero_padded_max(x, size, stride, pad):
    """The mistake: padding with 0, so that a window of negative numbers returns 0."""
    xz = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return F.max_pool2d_forward(xz, size, stride)[0]


def pool_forward_ok(mod, g):
    x, _ = pool_data(g)
    res = attempt(mod.max_pool_forward, x, *pool_args(g))
    return isinstance(res, tuple) and close(res[0], F.max_pool2d_forward(x, *pool_args(g))[0])


def diagnose_max_pool_forward(mod):
    found = []
    if pool_forward_ok(mod, POOL_FIRST) and not pool_forward_ok(mod, POOL_UNEVEN):
        found.append("out_size_floor")
    x, _ = pool_data(POOL_PADDED, shift=-10.0)
    res = attempt(mod.max_pool_forward, x, *pool_args(POOL_PADDED))
    if isinstance(res, tuple) and close(res[0], zero_padded_max(x, *pool_args(POOL_PADDED))):
        found.append("pool_pad_zero")
    return found


@check("max_pool_forward", pool_cases(), POOL_FIRST, diagnose_max_pool_forward)
def max_pool_forward(mod, g, notes):
    x, _ = pool_data(g, shift=-10.0 if g["seed"] % 2 else 0.0)   # all negative half of the time
    out, _ = unpack("max_pool_forward", call(mod.max_pool_forward, x, *pool_args(g)), ("out", "cache"))
    return expect("out", out, F.max_pool2d_forward(x, *pool_args(g))[0], pool_text(g))


def student_pool_dx(mod, x, dout, size, stride, pad=0):
    _, cache = unpack("max_pool_forward", call(mod.max_pool_forward, x, size, stride, pad), ("out", "cache"))
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


@check("max_pool_backward", pool_cases(), POOL_OVERLAP, needs=("max_pool_forward",),
       diagnose=lambda mod: diagnose_max_pool_backward(mod))
def max_pool_backward(mod, g, notes):
    x, dout = pool_data(g)
    case = pool_text(g)
    dx = student_pool_dx(mod, x, dout, *pool_args(g))
    err = expect("dx", dx, F.max_pool2d_backward(dout, F.max_pool2d_forward(x, *pool_args(g))[1]), case)
    err = max(err, expect_numeric("dx", dx, lambda v: F.max_pool2d_forward(v, *pool_args(g))[0],
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
        dx = attempt(student_pool_dx, mod, x, dout, *pool_args(g))
        return close(dx, F.max_pool2d_backward(dout, F.max_pool2d_forward(x, *pool_args(g))[1]))
    found = []
    if ok(POOL_DISJOINT) and not ok(POOL_OVERLAP):
        found.append("overlap_add")
    x, dout = pool_data(POOL_DISJOINT)
    dx = attempt(student_pool_dx, mod, x, dout, 2, 2)
    spread = np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3)   # every position of its window
    if close(dx, spread) or close(dx, spread / 4):
        found.append("pool_grad_window")
    xt, dt = tie_case(0)
    if close(attempt(student_pool_dx, mod, xt, dt, 2, 2), all_ties_dx(xt, dt)):
        found.append("pool_ties_all")
    return found
