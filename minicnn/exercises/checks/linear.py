"""Checks of linear_forward / linear_backward."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.exercises.checker import call, close, expect, expect_numeric, unpack
from minicnn.exercises.checks._common import attempt, batch_hints, check, rnd, seeds, shape_text


linear_cases = st.fixed_dictionaries({"N": st.integers(1, 3), "dims": st.sampled_from([(4,), (3,), (2, 3)]),
                                      "M": st.integers(1, 3), "seed": seeds()})
LINEAR_FIRST = {"N": 3, "dims": (4,), "M": 2, "seed": 1}
LINEAR_SQUARE = {"N": 3, "dims": (3,), "M": 3, "seed": 2}     # D == M: a transposed w still fits
LINEAR_MULTI = {"N": 2, "dims": (2, 3), "M": 2, "seed": 5}    # x of shape (N, d1, d2)


def linear_data(c):
    d = int(np.prod(c["dims"]))
    s = c["seed"]
    return rnd(s, (c["N"],) + tuple(c["dims"])), rnd(s + 1, (c["M"], d)), rnd(s + 2, (c["M"],))


def student_linear_out(mod, c):
    x, w, b = linear_data(c)
    res = attempt(mod.linear_forward, x, w, b)
    return x.reshape(len(x), -1), w, b, (res[0] if isinstance(res, tuple) and len(res) == 2 else None)


def diagnose_linear_forward(mod):
    found = []
    x, w, b, out = student_linear_out(mod, LINEAR_FIRST)
    if close(out, x @ w.T):
        found.append("bias")
    # Right for x of shape (N, D), wrong for (N, d1, d2): each example is not flattened.
    if close(out, x @ w.T + b) and not close(student_linear_out(mod, LINEAR_MULTI)[3],
                                             F.linear_forward(*linear_data(LINEAR_MULTI))[0]):
        found.append("linear_flatten")
    x, w, b, out = student_linear_out(mod, LINEAR_SQUARE)
    if close(out, x @ w + b):
        found.append("linear_weight_layout")
    return found


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
    if np.shape(dw) == w.T.shape and close(dw, (dout.T @ x).T):   # (in, out): x.T @ dout
        found.append("linear_weight_layout")
    x3 = linear_data(LINEAR_MULTI)[0]
    res = attempt(lambda: student_linear_grads(mod, LINEAR_MULTI))
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
