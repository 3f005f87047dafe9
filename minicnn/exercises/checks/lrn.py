"""Checks of local response normalisation."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.exercises.checker import call, close, expect, expect_numeric, unpack
from minicnn.exercises.checks._common import attempt, check, rnd, seeds


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
