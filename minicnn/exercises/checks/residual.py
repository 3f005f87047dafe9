"""Checks of the residual block out = relu(x + conv(relu(conv(x))))."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.exercises.checker import call, close, expect, expect_numeric, unpack
from minicnn.exercises import integrity
from minicnn.exercises.checks._common import attempt, check, rnd, seeds

# The skeleton offers minicnn's conv and relu ops (the exercises before this one) as pieces.
for _fn in ("residual_block_forward", "residual_block_backward"):
    integrity.allow(_fn, F.conv2d_forward, F.conv2d_backward, F.relu_forward, F.relu_backward)


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
