"""Checks of inverted dropout (the mask is the student's: checked by its properties)."""
import numpy as np
from hypothesis import strategies as st

from minicnn.exercises.checker import FORWARD_TOL, FORWARD_TYPICAL, Mismatch, call, close, expect, unpack
from minicnn.exercises.checks._common import attempt, check, mst, rnd, seeds


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


# Given the mask dropout is linear: its backward is compared exactly, with a forward's tolerance.
@check("dropout_backward", dropout_cases, DROPOUT_FIRST, diagnose_dropout_backward, needs=("dropout_forward",),
       tol=FORWARD_TOL, typical=FORWARD_TYPICAL)
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
