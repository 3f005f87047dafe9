"""Checks of average pooling, padding included (count_include_pad, as minicnn's op)."""
import numpy as np

import minicnn.functional as F
from minicnn.exercises.checker import call, close, expect, expect_numeric, unpack
from minicnn.exercises.checks._common import attempt, check, rnd
from minicnn.exercises.checks.maxpool import (POOL_DISJOINT, POOL_FIRST, POOL_OVERLAP, POOL_PADDED, POOL_UNEVEN,
                                              pool_args, pool_cases, pool_text)


def avg_data(g):
    x = rnd(g["seed"], (g["N"], g["C"], g["H"], g["W"]))
    out_shape = F.avg_pool2d_forward(x, *pool_args(g))[0].shape
    return x, rnd(g["seed"] + 1, out_shape)


def excluding_pad(x, size, stride, pad):
    """The mistake: each window divided by its count of real pixels (count_include_pad=False)."""
    real = F.avg_pool2d_forward(np.ones_like(x), size, stride, pad)[0]   # fraction of real pixels
    return F.avg_pool2d_forward(x, size, stride, pad)[0] / real


def student_avg(mod, g):
    x, dout = avg_data(g)
    out, cache = unpack("avg_pool_forward", call(mod.avg_pool_forward, x, *pool_args(g)), ("out", "cache"))
    return x, dout, out, cache


def diagnose_avg_pool_forward(mod):
    def ok(g):
        res = attempt(student_avg, mod, g)
        return res is not None and close(res[2], F.avg_pool2d_forward(res[0], *pool_args(g))[0])
    found = ["out_size_floor"] if ok(POOL_FIRST) and not ok(POOL_UNEVEN) else []
    res = attempt(student_avg, mod, POOL_PADDED)
    if res is not None and close(res[2], excluding_pad(res[0], *pool_args(POOL_PADDED))):
        found.append("avg_exclude_pad")
    return found


@check("avg_pool_forward", pool_cases(), POOL_FIRST, diagnose_avg_pool_forward)
def avg_pool_forward(mod, g, notes):
    x, _, out, _ = student_avg(mod, g)
    return expect("out", out, F.avg_pool2d_forward(x, *pool_args(g))[0], pool_text(g))


def true_avg_dx(x, dout, g):
    return F.avg_pool2d_backward(dout, F.avg_pool2d_forward(x, *pool_args(g))[1])


def student_avg_dx(mod, g):
    x, dout, _, cache = student_avg(mod, g)
    return x, dout, call(mod.avg_pool_backward, dout, cache)


def diagnose_avg_pool_backward(mod):
    def dx_of(g):
        res = attempt(student_avg_dx, mod, g)
        return (None, None) if res is None else (res[2], true_avg_dx(res[0], res[1], g))
    found = []
    got, want = dx_of(POOL_DISJOINT)
    if close(got, want * POOL_DISJOINT["size"] ** 2):
        found.append("avg_grad_scale")
    if close(got, want) and not close(*dx_of(POOL_OVERLAP)):
        found.append("overlap_add")
    return found


@check("avg_pool_backward", pool_cases(), POOL_OVERLAP, diagnose_avg_pool_backward, needs=("avg_pool_forward",))
def avg_pool_backward(mod, g, notes):
    x, dout, dx = student_avg_dx(mod, g)
    case = pool_text(g)
    err = expect("dx", dx, true_avg_dx(x, dout, g), case)
    return max(err, expect_numeric("dx", dx, lambda v: F.avg_pool2d_forward(v, *pool_args(g))[0], x, dout, case))
