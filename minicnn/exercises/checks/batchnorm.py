"""Checks of batch normalisation."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.exercises.checker import call, close, expect, expect_numeric, unpack
from minicnn.exercises.checks._common import attempt, batch_hints, check, rnd, seeds


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
    rm, rv = rm.copy(), rv.copy()   # copies made here: the student's forward updates them in place
    res = call(mod.batchnorm_forward, x.copy(), gamma.copy(), beta.copy(), rm, rv, c["training"],
               c["momentum"], 1e-5, copy=False)
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
        unbiased = (x - mu) / np.sqrt(x.var(axis=0, ddof=1) + 1e-5) * gamma + beta
        if close(res[0], unbiased):
            found.append("bn_biased_normalise")
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
       diagnose=lambda mod: diagnose_bn_backward(mod), typical=1e-7)
def batchnorm_backward(mod, c, notes):
    x, gamma, beta, rm, rv, dout = bn_data(c)
    dx, dgamma, dbeta = student_bn_grads(mod, c)
    tr, mom = c["training"], c["momentum"]
    tdx, tdg, tdb = F.batchnorm_backward(dout, F.batchnorm_forward(x, gamma, beta, rm.copy(), rv.copy(), tr, mom)[1])
    case = bn_text(c)
    err = max(expect("dx", dx, tdx, case), expect("dgamma", dgamma, tdg, case), expect("dbeta", dbeta, tdb, case))
    fx = lambda v: F.batchnorm_forward(v, gamma, beta, rm.copy(), rv.copy(), tr, mom)[0]  # noqa: E731
    # floor 1e-4: with N = 2 every xhat is +-1 and dx is ~1e-7 (an eps effect), below the
    # numeric gradient's noise; the comparison with minicnn's dx above checks those values.
    return max(err, expect_numeric("dx", dx, fx, x, dout, case, floor=1e-4))


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
