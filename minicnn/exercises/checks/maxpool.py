"""Checks of max pooling, ties included."""
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
                W=draw(st.integers(size, 6)), size=size, stride=stride, seed=draw(seeds()))


POOL_FIRST = dict(N=2, C=2, H=4, W=4, size=2, stride=2, seed=3)
POOL_OVERLAP = dict(N=2, C=2, H=5, W=5, size=3, stride=1, seed=4)
POOL_DISJOINT = dict(N=2, C=2, H=4, W=4, size=2, stride=2, seed=4)
POOL_UNEVEN = dict(N=2, C=2, H=5, W=5, size=2, stride=2, seed=5)   # (5 - 2) / 2 is not whole


def pool_text(g):
    return f"x ({g['N']}, {g['C']}, {g['H']}, {g['W']}), size={g['size']}, stride={g['stride']}"


def pool_data(g):
    shape = (g["N"], g["C"], g["H"], g["W"])
    x = mst.tie_free_array(shape, g["seed"], spacing=0.1)
    out_shape = F.max_pool2d_forward(x, g["size"], g["stride"])[0].shape
    return x, rnd(g["seed"] + 1, out_shape)


def pool_forward_ok(mod, g):
    x, _ = pool_data(g)
    res = attempt(mod.max_pool_forward, x, g["size"], g["stride"])
    return isinstance(res, tuple) and close(res[0], F.max_pool2d_forward(x, g["size"], g["stride"])[0])


def diagnose_max_pool_forward(mod):
    return ["out_size_floor"] if pool_forward_ok(mod, POOL_FIRST) and not pool_forward_ok(mod, POOL_UNEVEN) else []


@check("max_pool_forward", pool_cases(), POOL_FIRST, diagnose_max_pool_forward)
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
    x, dout = pool_data(POOL_DISJOINT)
    dx = attempt(student_pool_dx, mod, x, dout, 2, 2)
    spread = np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3)   # every position of its window
    if close(dx, spread) or close(dx, spread / 4):
        found.append("pool_grad_window")
    xt, dt = tie_case(0)
    if close(attempt(student_pool_dx, mod, xt, dt, 2, 2), all_ties_dx(xt, dt)):
        found.append("pool_ties_all")
    return found
