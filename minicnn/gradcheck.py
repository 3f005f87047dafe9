"""Check hand-written gradients against numeric ones.

A backward pass is easy to get subtly wrong and hard to see wrong: the loss still
falls, just less well.  The remedy is old and reliable: compare it with centred
differences,

    df/dx_i  ~  (f(x + h e_i) - f(x - h e_i)) / (2 h),

whose error is O(h^2).  Two rules make the comparison trustworthy:

* compute in float64.  In float32 the rounding error of f (about 1e-7 * |f|) divided
  by 2h swamps the truncation error, and correct code "fails".  Everything here
  runs in float64 whatever it is given;
* keep the shapes small and the inputs away from kinks (ReLU at 0, ties in a max
  pool): there the function is not differentiable and the two sides disagree.

The relative error ``|a - b| / max(|a| + |b|, 1e-8)`` is then below 1e-7 for a correct
op on a smooth input; around 1e-2 or more means a bug.
"""
import numpy as np

from minicnn import backend
from minicnn.checks import as_generator
from minicnn.nn.probe import generator_states, set_generator_states


def numeric_gradient(f, x, dout=None, h=1e-5):
    """The gradient of ``sum(f(x) * dout)`` with respect to x, by centred differences in float64.

    Inputs:
    - f: function of one array returning an array of any shape (or a scalar if dout is None)
    - x: the point (any shape); it is copied to float64 and never modified
    - dout: upstream gradient of f's output shape (None for a scalar f)
    - h: step
    Returns an array of x's shape, float64.
    """
    x = np.array(backend.asnumpy(x), dtype=np.float64)
    dout = None if dout is None else np.asarray(backend.asnumpy(dout), dtype=np.float64)
    grad = np.zeros_like(x)

    def value(at):
        out = np.asarray(backend.asnumpy(f(at)), dtype=np.float64)
        return float(out.sum()) if dout is None else float((out * dout).sum())

    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = value(x)
        flat[i] = old - h
        minus = value(x)
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b):
    """The largest elementwise relative error ``|a - b| / max(|a| + |b|, 1e-8)`` (a float)."""
    a = np.asarray(backend.asnumpy(a), dtype=np.float64)
    b = np.asarray(backend.asnumpy(b), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: expected arrays of one shape, received {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


class GradError(float):
    """A relative error (a float) that also says where it is largest: ``.index``, ``.analytic``, ``.numeric``."""

    def __new__(cls, error, index, analytic, numeric):
        self = super().__new__(cls, error)
        self.index, self.analytic, self.numeric = index, analytic, numeric
        return self

    def __repr__(self):
        return (f"{float(self):.3g} at {self.index} (analytic {self.analytic:.6g}, "
                f"numeric {self.numeric:.6g})")


def compare(analytic, numeric, floor=1e-8):
    """The worst relative error between two gradients, as a GradError telling where it occurs.

    ``floor`` bounds the denominator from below: centred differences in float64 carry an
    absolute noise of about 1e-16 * |f| / h, so entries much smaller than that cannot be
    compared relatively.  Tests pass a documented floor (e.g. 1e-6) for that reason.
    """
    a = np.asarray(backend.asnumpy(analytic), dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"compare: expected an analytic gradient of shape {n.shape}, received {a.shape}")
    if a.size == 0:
        return GradError(0.0, (), 0.0, 0.0)
    err = np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)
    where = np.unravel_index(int(np.argmax(err)), err.shape)
    return GradError(float(err[where]), tuple(int(i) for i in where), float(a[where]), float(n[where]))


def check_module(module, x, rng=None, h=1e-5, floor=1e-8):
    """Gradient-check a Module: its dx and every trainable (not frozen) parameter's gradient
    against numeric ones.

    The module is converted to float64 in place (``module.to(np.float64)``) and x is
    copied to float64.  A random upstream gradient (never all ones: that would hide,
    for example, batch norm's dx) is drawn from ``rng``.  Random modules (dropout,
    stochastic depth) draw the same numbers on every evaluation: the states of the
    Generators they hold are restored before each forward.

    Inputs: module (minicnn.nn.Module); x: its input; rng: Generator or seed for dout;
    h: the step; floor: the least denominator of the relative error (see ``compare``).
    Returns a dict: ``"x"`` and each parameter name -> GradError, the worst relative
    error (a float) with ``.index`` of the entry where it occurs.
    """
    rng = as_generator(rng, op="check_module")
    module.to(np.float64)
    x = np.array(backend.asnumpy(x), dtype=np.float64)
    states = generator_states(module)

    def run(inp):
        set_generator_states(module, states)
        return module(inp)

    out = run(x)
    dout = rng.standard_normal(np.shape(out))
    module.zero_grad()
    run(x)
    dx = module.backward(dout)
    # Frozen parameters (Module.freeze) get no gradient by design: nothing to check.
    params = list(module.named_parameters(trainable_only=True))
    analytic = {name: np.array(backend.asnumpy(p.grad)) for name, p in params}

    report = {"x": compare(dx, numeric_gradient(run, x, dout, h), floor)}
    for name, p in params:
        data = p.data  # perturbed in place, so that the module sees each change

        def f_of_param(value, data=data):
            data[...] = value
            return run(x)

        original = np.array(data)
        numeric = numeric_gradient(f_of_param, original, dout, h)
        data[...] = original
        report[name] = compare(analytic[name], numeric, floor)
    return report


def _op_cases(rng):
    """(label, module, input) for every layer built on a functional op, small and float64.

    Inputs are kept away from non-differentiable points: ReLU inputs away from 0, max-pool
    windows without near-ties (a shuffled ramp with gaps of 0.05, far above the step h).
    """
    from minicnn import nn

    def normal(*shape):
        return rng.standard_normal(shape)

    def away_from_zero(*shape):
        return np.sign(normal(*shape)) * (0.2 + np.abs(normal(*shape)))

    def distinct(*shape):
        return (rng.permutation(int(np.prod(shape))) * 0.05 - 1.0).reshape(shape)

    return [
        ("conv2d", nn.Conv2d(3, 4, 3, stride=1, padding=1, rng=rng), normal(2, 3, 5, 5)),
        ("conv2d stride 2, groups 2", nn.Conv2d(4, 4, (3, 2), stride=2, padding=1, groups=2, rng=rng),
         normal(2, 4, 6, 5)),
        ("linear", nn.Linear(6, 5, rng=rng), normal(4, 6)),
        ("relu", nn.ReLU(), away_from_zero(2, 3, 4, 4)),
        ("sigmoid", nn.Sigmoid(), normal(2, 3, 4)),
        ("max_pool2d", nn.MaxPool2d(2, stride=2), distinct(2, 2, 4, 4)),
        ("avg_pool2d", nn.AvgPool2d(3, stride=2, padding=1), normal(2, 2, 5, 5)),
        ("global_avg_pool", nn.GlobalAvgPool2d(), normal(2, 3, 4, 4)),
        ("lrn", nn.LocalResponseNorm(3, alpha=1e-2, beta=0.75, k=2.0), normal(2, 5, 3, 3)),
        ("batchnorm2d", nn.BatchNorm2d(3), normal(4, 3, 3, 3)),
        ("batchnorm1d", nn.BatchNorm1d(5), normal(6, 5)),
        ("dropout", nn.Dropout(0.3, rng=rng), normal(3, 8)),
    ]


def check_ops(rng=0, floor=1e-6):
    """Gradient-check every op of minicnn.functional through its layer, and the loss.

    Small float64 cases (see ``_op_cases``) drawn from ``rng`` (a Generator or a seed).
    Returns a list of ``(op label, gradient name, GradError)``, one per input and
    parameter of each op: ``minicnn gradcheck`` prints it as a table.
    """
    from minicnn import functional as F
    rng = as_generator(rng, op="check_ops")
    results = []
    for label, module, x in _op_cases(rng):
        for wrt, err in check_module(module, x, rng=rng, floor=floor).items():
            results.append((label, wrt, err))
    # The loss: d/dscores of the mean cross-entropy.
    scores = rng.standard_normal((4, 6))
    y = rng.integers(0, 6, size=4)
    _, dscores = F.softmax_cross_entropy(scores, y)
    numeric = numeric_gradient(lambda s: F.softmax_cross_entropy(s, y)[0], scores)
    results.append(("softmax_cross_entropy", "scores", compare(dscores, numeric, floor)))
    return results


def format_results(results, tol=1e-5):
    """``check_ops``' results as a table, worst first, ending with a verdict against ``tol``."""
    rows = sorted(((label, wrt, float(err)) for label, wrt, err in results), key=lambda r: -r[2])
    width = max(len(r[0]) for r in rows)
    lines = [f"{'op':<{width}}  {'gradient':<10}  rel. error (float64, centred differences)"]
    for label, wrt, err in rows:
        flag = "" if err < tol else "   <-- above tolerance"
        lines.append(f"{label:<{width}}  {wrt:<10}  {err:.2e}{flag}")
    label, wrt, worst = rows[0]
    verdict = "all gradients agree" if worst < tol else "FAILED"
    lines.append(f"worst: {worst:.2e} ({label}, d/{wrt}); tolerance {tol:g}: {verdict}")
    return "\n".join(lines)
