"""Checks of relu_forward / relu_backward."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.exercises.checker import Mismatch, call, close, expect, expect_numeric, unpack
from minicnn.exercises.checks._common import attempt, check, mst, rnd, seeds, shape_text


relu_cases = st.fixed_dictionaries({"shape": st.sampled_from([(5,), (2, 3), (2, 2, 2, 3)]), "seed": seeds()})
RELU_FIRST = {"shape": (3, 4), "seed": 2}


def diagnose_relu_forward(mod):
    x = mst.kink_free_array((3, 4), 2)
    res = attempt(mod.relu_forward, x)
    return ["relu_max_vs_maximum"] if isinstance(res, tuple) and close(res[0], np.max(x, 0)) else []


@check("relu_forward", relu_cases, RELU_FIRST, diagnose_relu_forward)
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
