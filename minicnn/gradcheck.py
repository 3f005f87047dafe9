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


def _generators(module):
    """Every numpy Generator held by the module tree (dropout masks, stochastic depth, ...)."""
    found = []
    for _, m in module.named_modules():
        for v in vars(m).values():
            if isinstance(v, np.random.Generator) and all(v is not g for g in found):
                found.append(v)
    return found


def check_module(module, x, rng=None, h=1e-5, floor=1e-8):
    """Gradient-check a Module: its dx and every parameter's gradient against numeric ones.

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
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    module.to(np.float64)
    x = np.array(backend.asnumpy(x), dtype=np.float64)
    generators = _generators(module)
    states = [g.bit_generator.state for g in generators]

    def run(inp):
        for g, s in zip(generators, states):
            g.bit_generator.state = s
        return module(inp)

    out = run(x)
    dout = rng.standard_normal(np.shape(out))
    module.zero_grad()
    run(x)
    dx = module.backward(dout)
    params = list(module.named_parameters())
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
