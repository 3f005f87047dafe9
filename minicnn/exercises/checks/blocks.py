"""Checks of the blocks a student builds from minicnn.nn's layers.

Each block is checked three ways, in float64 on tiny inputs:

1. its parameter count equals that of minicnn's own block with the same configuration
   (nn.Inception, nn.Bottleneck, ... -- without their BatchNorms where the exercise
   leaves them out);
2. its forward equals minicnn's computation (minicnn.functional) from the weights of
   the student's own layers, read by the attribute names the skeleton gives;
3. its backward -- dx and every parameter's gradient -- equals numeric gradients of its
   forward (``minicnn.gradcheck.check_module``).

The wiring mistakes (concatenation order or axis, the shortcut's gradient, a bottleneck
without its 1x1, a per-position SE gate, a dense block that drops its input) are
recognised by computing what they would give from the same weights.
"""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn import nn
from minicnn.exercises import integrity
from minicnn.exercises.checker import FLOOR, Mismatch, call, close, expect
from minicnn.exercises.checks._common import check, rnd, seeds
from minicnn.gradcheck import check_module, numeric_gradient

# What the blocks may be built from: the plain layers, not the blocks (they are the answers).
LAYERS = (nn.Module, nn.Sequential, nn.Parameter, nn.Conv2d, nn.Linear, nn.ReLU, nn.Sigmoid, nn.MaxPool2d,
          nn.AvgPool2d, nn.GlobalAvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity)
NAMES = ("InceptionModule", "BottleneckBlock", "DepthwiseSeparableBlock", "SEBlock", "DenseBlock")
for _name in NAMES:
    integrity.allow_classes(_name, *LAYERS)


def run(name, thunk):
    """Run student code ``thunk()`` as the checked ``name`` (call() names it, watches it)."""
    thunk.__name__ = name
    return call(thunk, copy=False)


def build(mod, name, *args, rng=0):
    """The student's block, built (NotImplementedError: not implemented) and cast to float64."""
    block = run(name, lambda: getattr(mod, name)(*args, rng=rng))
    if not isinstance(block, nn.Module):
        raise Mismatch(f"{name}(...) should build a minicnn.nn.Module, built {type(block).__name__}")
    return block.to(np.float64)


def layer(block, attr, name):
    """The student's layer ``attr`` (the checker reads its weights)."""
    found = getattr(block, attr, None)
    if not isinstance(found, nn.Module):
        raise Mismatch(f"{name} has no layer named {attr!r}: the docstring names the layers the checker reads")
    return found


def weights(block, attr, name):
    lay = layer(block, attr, name)
    bias = getattr(lay, "bias", None)
    return lay.weight.data, None if bias is None else bias.data


def conv(block, attr, name, x, stride=1, pad=0):
    lay = layer(block, attr, name)
    w, b = weights(block, attr, name)
    return F.conv2d_forward(x, w, b, stride, pad, getattr(lay, "groups", 1))[0]


def relu(x):
    return np.maximum(x, 0)


def bn_free_params(module):
    """minicnn's block's parameter count without its BatchNorms (the exercise leaves them out)."""
    bn = sum(p.size for m in module.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    return sum(p.size for p in module.parameters()) - bn


def run_block(name, reference, minicnn_block):
    """The body of a block's check: parameters, forward, then gradients."""
    def body(mod, c, notes):
        block = build(mod, name, *c["args"], rng=c["seed"])
        case = f"{name}{c['args']} on x {c['x']}"
        err = expect("number of parameters", sum(p.size for p in block.parameters()),
                     bn_free_params(minicnn_block(*c["args"])), case, tol=0.0)
        x = rnd(c["seed"] + 1, c["x"])
        out = run(name, lambda: block(x))
        err = max(err, expect("out", out, reference(block, name, x), case))
        return max(err, gradients(block, name, x, c["seed"], case))
    body.__name__ = name
    return body


def gradients(block, name, x, seed, case):
    worst = 0.0
    for what, err in run(name, lambda: check_module(block, x, rng=seed, floor=FLOOR)).items():
        if float(err) > 1e-5:
            at = "dx" if what == "x" else f"the gradient of {what}"
            raise Mismatch(f"{at} differs from the numeric gradient of your forward: relative error "
                           f"{float(err):.3g} at index {err.index} for {case}", float(err))
        worst = max(worst, float(err))
    return worst


def student_out(mod, name, args, x_shape, seed=0):
    """The student's block and its output on a fixed case (for the diagnoses); (None, None, x)."""
    x = rnd(seed + 1, x_shape)
    try:
        block = build(mod, name, *args, rng=seed)
        return block, run(name, lambda: block(x)), x
    except Exception:  # noqa: BLE001 - a diagnosis only looks for matches
        return None, None, x


def student_dx(block, name, x, seed=0):
    """(dout, dx) of the student's backward on x (None for dx if it fails)."""
    dout = rnd(seed + 2, block(x).shape)
    try:
        return dout, run(name, lambda: block.backward(dout))
    except Exception:  # noqa: BLE001
        return dout, None


# ----------------------------------------------------------------------------- Inception
def inception_branches(block, name, x):
    b1 = relu(conv(block, "b1", name, x))
    b2 = relu(conv(block, "b2", name, relu(conv(block, "b2_reduce", name, x)), pad=1))
    b3 = relu(conv(block, "b3", name, relu(conv(block, "b3_reduce", name, x)), pad=2))
    b4 = relu(conv(block, "b4", name, F.max_pool2d_forward(x, 3, 1, 1)[0]))
    return [b1, b2, b3, b4]


def inception_reference(block, name, x):
    return np.concatenate(inception_branches(block, name, x), axis=1)


inception_cases = st.fixed_dictionaries({
    "args": st.tuples(st.integers(1, 3), *[st.integers(1, 2)] * 6), "seed": seeds(),
    "hw": st.tuples(st.integers(1, 4), st.integers(1, 4))}).map(
    lambda c: dict(c, x=(2, c["args"][0]) + c["hw"]))
INCEPTION_FIRST = {"args": (3, 2, 1, 2, 1, 1, 2), "seed": 5, "x": (2, 3, 3, 4)}
EQUAL = (2, 2, 2, 2, 2, 2, 2)   # equal branch widths: a wrong order or axis still gives numbers


def diagnose_inception(mod):
    block, out, x = student_out(mod, "InceptionModule", EQUAL, (2, 2, 3, 3))
    if out is None:
        return []
    parts = inception_branches(block, "InceptionModule", x)
    found = []
    orders = [parts[::-1], parts[1:] + parts[:1], [parts[1], parts[0], parts[2], parts[3]]]
    if any(close(out, np.concatenate(p, axis=1)) for p in orders):
        found.append("concat_order")
    if any(close(out, np.concatenate(parts, axis=a)) for a in (0, 2, 3)):
        found.append("concat_axis")
    return found


check("InceptionModule", inception_cases, INCEPTION_FIRST, diagnose_inception, max_examples=4, tol=1e-5,
      typical=1e-8)(run_block("InceptionModule", inception_reference,
                              lambda *a: nn.Inception(*a, rng=0)))


# ---------------------------------------------------------------------------- bottleneck
def bottleneck_reference(block, name, x):
    h = relu(conv(block, "conv2", name, relu(conv(block, "conv1", name, x)), pad=1))
    return relu(x + conv(block, "conv3", name, h))


bottleneck_cases = st.fixed_dictionaries({"args": st.tuples(st.sampled_from([4, 8])), "seed": seeds(),
                                          "hw": st.tuples(st.integers(1, 3), st.integers(1, 3))}).map(
    lambda c: dict(c, x=(2, c["args"][0]) + c["hw"]))
BOTTLENECK_FIRST = {"args": (4,), "seed": 7, "x": (2, 4, 3, 3)}


def diagnose_bottleneck(mod):
    block, out, x = student_out(mod, "BottleneckBlock", (4,), (2, 4, 3, 3))
    if block is None:
        return ["bottleneck_1x1"] if _not_1x1(mod) else []
    found = ["bottleneck_1x1"] if _not_1x1(mod) else []
    dout, dx = student_dx(block, "BottleneckBlock", x)
    if dx is not None:
        # dx = dsum + (the branch's dx); without the shortcut only the branch's part is left.
        dsum = dout * (bottleneck_reference(block, "BottleneckBlock", x) > 0)
        full = numeric_gradient(lambda v: bottleneck_reference(block, "BottleneckBlock", v), x, dout)
        if close(dx, full - dsum, 1e-4):
            found.append("residual_shortcut")
    return found


def _not_1x1(mod):
    try:
        block = build(mod, "BottleneckBlock", 4, rng=0)
    except Exception:  # noqa: BLE001
        return False
    shapes = [getattr(getattr(block, a, None), "weight", None) for a in ("conv1", "conv3")]
    return any(w is None or tuple(w.data.shape[2:]) != (1, 1) for w in shapes)


check("BottleneckBlock", bottleneck_cases, BOTTLENECK_FIRST, diagnose_bottleneck, max_examples=4, tol=1e-5,
      typical=1e-8)(run_block("BottleneckBlock", bottleneck_reference,
                              lambda c: nn.Bottleneck(c, c // 4, rng=0)))


# --------------------------------------------------------------------- depthwise-separable
def separable_reference(block, name, x):
    stride = layer(block, "depthwise", name).stride
    return relu(conv(block, "pointwise", name, relu(conv(block, "depthwise", name, x, stride, 1))))


separable_cases = st.fixed_dictionaries({
    "args": st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2)), "seed": seeds(),
    "hw": st.tuples(st.integers(1, 4), st.integers(1, 4))}).map(lambda c: dict(c, x=(2, c["args"][0]) + c["hw"]))
SEPARABLE_FIRST = {"args": (3, 2, 2), "seed": 9, "x": (2, 3, 4, 3)}

check("DepthwiseSeparableBlock", separable_cases, SEPARABLE_FIRST, None, max_examples=4, tol=1e-5,
      typical=1e-8)(run_block("DepthwiseSeparableBlock", separable_reference,
                              lambda c, f, s: nn.DepthwiseSeparableConv(c, f, s, rng=0)))


# ------------------------------------------------------------------------------- SE
def se_gate(block, name, s):
    """sigmoid(fc2(relu(fc1(s)))) for s of shape (M, C)."""
    w1, b1 = weights(block, "fc1", name)
    w2, b2 = weights(block, "fc2", name)
    return 1 / (1 + np.exp(-(relu(s @ w1.T + b1) @ w2.T + b2)))


def se_reference(block, name, x):
    return x * se_gate(block, name, x.mean(axis=(2, 3)))[:, :, None, None]


def se_per_position(block, name, x):
    """The mistake: a gate for every position, from that position's channels."""
    n, c, h, w = x.shape
    g = se_gate(block, name, x.transpose(0, 2, 3, 1).reshape(-1, c))
    return x * g.reshape(n, h, w, c).transpose(0, 3, 1, 2)


se_cases = st.fixed_dictionaries({"args": st.tuples(st.integers(1, 6), st.integers(1, 3)), "seed": seeds(),
                                  "hw": st.tuples(st.integers(1, 3), st.integers(1, 3))}).map(
    lambda c: dict(c, x=(2, c["args"][0]) + c["hw"]))
SE_FIRST = {"args": (4, 2), "seed": 11, "x": (2, 4, 3, 2)}


def diagnose_se(mod):
    block, out, x = student_out(mod, "SEBlock", (4, 2), (2, 4, 3, 2))
    return ["se_per_channel"] if out is not None and close(out, se_per_position(block, "SEBlock", x)) else []


check("SEBlock", se_cases, SE_FIRST, diagnose_se, max_examples=4, tol=1e-5, typical=1e-8)(
    run_block("SEBlock", se_reference, lambda c, r: nn.SqueezeExcitation(c, r, rng=0)))


# ---------------------------------------------------------------------------- dense
def dense_reference(block, name, x, keep_input=True):
    features, new = x, []
    for i in range(1, _layers(block) + 1):
        h = relu(conv(block, f"reduce{i}", name, relu(features)))
        new.append(conv(block, f"conv{i}", name, h, pad=1))
        features = np.concatenate([features, new[-1]], axis=1)
    return features if keep_input else np.concatenate(new, axis=1)


def _layers(block):
    i = 0
    while isinstance(getattr(block, f"reduce{i + 1}", None), nn.Module):
        i += 1
    return i


dense_cases = st.fixed_dictionaries({"args": st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 2),
                                                       st.integers(1, 2)), "seed": seeds(),
                                     "hw": st.tuples(st.integers(1, 3), st.integers(1, 3))}).map(
    lambda c: dict(c, x=(2, c["args"][0]) + c["hw"]))
DENSE_FIRST = {"args": (2, 3, 2, 2), "seed": 13, "x": (2, 2, 3, 3)}


def diagnose_dense(mod):
    block, out, x = student_out(mod, "DenseBlock", (2, 3, 2, 2), (2, 2, 3, 3))
    if out is None:
        return []
    new_only = np.asarray(out).ndim == 4 and np.asarray(out).shape[1] == 3 * 2
    return ["dense_concat_input"] if new_only else []


check("DenseBlock", dense_cases, DENSE_FIRST, diagnose_dense, max_examples=4, tol=1e-5, typical=1e-8)(
    run_block("DenseBlock", dense_reference,
              lambda k0, n, k, b: nn.DenseBlock(n, k0, bn_size=b, growth_rate=k, rng=0)))
