"""Stochastic depth (Huang, Sun, Liu, Sedra & Weinberger, 2016, "Deep Networks with
Stochastic Depth"): train a short network, test a deep one.

In training, once per forward (per mini-batch, as in the paper) each residual branch
survives with probability p; a dropped branch is not even computed, so the block is
just its shortcut.  At test time every branch runs, scaled by p (its expected training
value)::

    training:  out = shortcut(x) + f(x)   with probability p,  else  shortcut(x)
    testing:   out = shortcut(x) + p * f(x)

The expected depth in training is sum_l p_l; the paper decays p_l linearly from 1 at
the input to p_L = 0.5 at the output (``linear_decay``) and trains a 110-layer ResNet
about 25% faster, and better.  The draws come from an explicit Generator.

Here:

* ``branch_scale(p, training, rng)`` -- one forward's factor of a branch (0, 1 or p): the
  rule itself, which ``BasicBlock`` and ``Bottleneck`` call for their own branch
  (``survival_prob=``);
* ``StochasticDepth(f, p)`` -- the same rule around any branch Module, and
  ``Residual(branch)`` -- ``x + branch(x)`` -- to build a stochastic-depth block from parts;
* ``linear_decay`` -- the paper's p_l.
"""
from minicnn import backend
from minicnn.checks import as_generator, check_prob
from minicnn.nn.module import Module


def check_survival_prob(op, p):
    """``p`` as a probability in (0, 1] (a branch that never survives is no branch)."""
    return check_prob(op, "survival_prob", p, allow_zero=False)


def branch_scale(survival_prob, training, rng):
    """The factor of a residual branch in one forward: in training 1.0 (kept, with probability
    ``survival_prob``) or 0.0 (dropped: do not compute the branch); in evaluation
    ``survival_prob`` itself.  Draws one number from ``rng`` per training forward, none
    when ``survival_prob`` is 1 (no stochastic depth) or in evaluation."""
    if survival_prob == 1.0:
        return 1.0
    if not training:
        return survival_prob
    return 1.0 if rng.random() < survival_prob else 0.0


def linear_decay(index, total, last_survival_prob):
    """Huang et al.'s rule: block ``index`` (1 .. total) survives with probability
    p_l = 1 - index / total * (1 - p_L), from ~1 at the input to p_L at the output."""
    return 1.0 - index / total * (1.0 - last_survival_prob)


class StochasticDepth(Module):
    """Stochastic depth around a branch Module f: ``out = scale * f(x)`` with the scale of
    ``branch_scale`` (the module doc).  Use it inside a residual connection,
    ``Residual(StochasticDepth(f, p))``, so that a dropped block is exactly its shortcut.

    - x: any shape -> out: f's output shape.  A dropped branch outputs zeros of that
      shape without running f: the input's shape, or ``f.output_shape(x.shape)`` if f
      defines it (a branch that downsamples).
    - backward: dropped -> dx = 0 and no parameter gradient; kept -> f.backward(dout);
      testing -> f.backward(p * dout).
    - rng: a Generator, seed or None; one draw per training forward.
    """

    def __init__(self, branch, survival_prob=0.5, rng=None):
        super().__init__()
        if not isinstance(branch, Module):
            raise ValueError(f"StochasticDepth: expected a Module branch, received "
                             f"{type(branch).__name__}")
        self.branch = branch
        self.survival_prob = check_survival_prob("StochasticDepth", survival_prob)
        self.rng = as_generator(rng, "StochasticDepth")
        self._cache = None

    def forward(self, x):
        scale = branch_scale(self.survival_prob, self.training, self.rng)
        if scale == 0.0:
            self._cache = ("dropped", x.shape, x.dtype)
            return backend.get_array_module(x).zeros(self._output_shape(x), dtype=x.dtype)
        out = self.branch(x)
        if tuple(out.shape) != self._output_shape(x):
            raise ValueError(f"StochasticDepth: expected a branch output of shape "
                             f"{self._output_shape(x)} (the input's shape, or the branch's "
                             f"output_shape), received {tuple(out.shape)}")
        self._cache = ("kept", scale, None)
        return out if scale == 1.0 else out * scale  # a Python float keeps float32 float32

    def _output_shape(self, x):
        shape_of = getattr(self.branch, "output_shape", None)
        return tuple(x.shape) if shape_of is None else tuple(shape_of(tuple(x.shape)))

    def backward(self, dout):
        state, a, b = self._get_cache()
        if state == "dropped":
            return backend.get_array_module(dout).zeros(a, dtype=b)
        return self.branch.backward(dout if a == 1.0 else dout * a)

    def extra_repr(self):
        return f"survival_prob={self.survival_prob}"


class Residual(Module):
    """The bare residual connection ``out = x + branch(x)`` around any shape-keeping branch.

    - x: (N, ...) -> out: same shape.  Backward: dx = dout + branch.backward(dout).
    With ``Residual(StochasticDepth(f, p))`` a dropped block is exactly the identity.
    """

    def __init__(self, branch):
        super().__init__()
        if not isinstance(branch, Module):
            raise ValueError(f"Residual: expected a Module branch, received {type(branch).__name__}")
        self.branch = branch

    def forward(self, x):
        out = self.branch(x)
        if out.shape != x.shape:
            raise ValueError(f"Residual: expected a branch that keeps the shape of its input "
                             f"{tuple(x.shape)}, received output {tuple(out.shape)}")
        return x + out

    def backward(self, dout):
        return dout + self.branch.backward(dout)  # x fans out: branch and identity
