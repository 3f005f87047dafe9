"""Optimizers (SGD, Adam, RMSProp); the learning-rate schedules are importable from here too.

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt = make_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.9)   # by name
    schedule = MultiStepLR(opt, milestones=[100, 150])     # He et al. 2016, CIFAR-10
    for epoch in range(epochs):
        for xb, yb in loader:
            opt.zero_grad(); ...forward, backward...; opt.step()
        schedule.step()

An optimizer takes parameters -- objects with ``.data`` and ``.grad`` arrays of the same
shape, like ``nn.Parameter`` -- and updates every ``.data`` in place from its ``.grad``.
The arrays may be NumPy or CuPy (the update asks ``get_array_module`` for ``xp``); they
keep their dtype (float32 stays float32: the hyper-parameters are Python floats, which
NumPy never lets promote an array).  The update rules are PyTorch's, so that recipes
and learning rates carry over; each class writes its rule in its docstring.

``state_dict()`` returns a flat dict: the hyper-parameters and the step count as Python
scalars, and the per-parameter buffers as NumPy arrays named ``"<buffer>.<i>"`` (i = the
parameter's position).  It can be saved with ``np.savez`` as is -- no pickle -- and
``load_state_dict`` accepts it back, with scalars as 0-d arrays.

The schedules (``StepLR``, ``MultiStepLR``, ``CosineAnnealingLR``, ``LinearWarmup``,
``ReduceLROnPlateau``, ``make_schedule``) live in ``minicnn/schedules.py``: a schedule
only sets an optimizer's ``lr`` once per epoch.
"""
import math

import numpy as np

from minicnn import backend
from minicnn.backend import get_array_module
# The schedules, importable from here as before; _nonnegative checks hyper-parameters here too.
from minicnn.schedules import (CosineAnnealingLR, LinearWarmup, MultiStepLR,  # noqa: F401
                               ReduceLROnPlateau, StepLR, _nonnegative, make_schedule)

__all__ = ["Optimizer", "SGD", "Adam", "RMSProp", "OPTIMIZERS", "make_optimizer", "StepLR",
           "MultiStepLR", "CosineAnnealingLR", "LinearWarmup", "ReduceLROnPlateau", "make_schedule"]


def _scalar(owner, key, v, like):
    """A saved scalar (Python or 0-d array) converted to the type of ``like``."""
    if hasattr(v, "shape"):
        if tuple(v.shape) != ():
            raise ValueError(f"{owner}.load_state_dict: expected {key!r} to be a scalar, "
                             f"received an array of shape {tuple(v.shape)}")
        v = backend.asnumpy(v).item()
    if isinstance(like, bool):
        return bool(v)
    if isinstance(like, int):
        if float(v) != int(v):
            raise ValueError(f"{owner}.load_state_dict: expected {key!r} to be an int, received {v!r}")
        return int(v)
    return float(v)


class Optimizer:
    """Base class: holds the parameters, per-parameter buffers and the step count.

    Subclasses name their buffers in ``buffers`` (made as zeros like each parameter),
    their hyper-parameters in ``hyper`` (saved in the state) and write ``_update``.
    """

    buffers = ()
    hyper = ("lr", "weight_decay")

    def __init__(self, params, lr, weight_decay=0.0):
        name = type(self).__name__
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{name}: expected a non-empty iterable of parameters, received none")
        seen = set()
        for i, p in enumerate(self.params):
            if not (hasattr(p, "data") and hasattr(p, "grad") and hasattr(p.data, "shape")):
                raise ValueError(f"{name}: expected parameters with .data and .grad arrays "
                                 f"(nn.Parameter), received {type(p).__name__} at position {i}")
            if p.data.dtype.kind != "f":
                raise ValueError(f"{name}: expected float parameters, received dtype "
                                 f"{p.data.dtype} at position {i}")
            if id(p) in seen:
                raise ValueError(f"{name}: parameter at position {i} appears twice; it would be "
                                 "updated twice per step")
            seen.add(id(p))
        self.lr = lr
        self.weight_decay = _nonnegative(name, "weight_decay", weight_decay)
        self.step_count = 0
        self.state = [{b: get_array_module(p.data).zeros_like(p.data) for b in self._active_buffers()}
                      for p in self.params]

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        # A Python float whatever is assigned (a schedule, a user): a NumPy float64 scalar
        # would promote float32 parameters under NEP 50.
        self._lr = _nonnegative(type(self).__name__, "lr", value)

    def _active_buffers(self):
        return self.buffers

    def zero_grad(self):
        """Set every parameter's ``.grad`` to zero, in place."""
        for p in self.params:
            if p.grad is not None:
                p.grad[...] = 0

    def step(self):
        """Update every parameter that has a gradient, in place; then count the step."""
        self.step_count += 1
        for i, (p, st) in enumerate(zip(self.params, self.state)):
            if p.grad is None:
                continue
            if p.grad.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}.step: expected the gradient of parameter "
                                 f"{i} with shape {tuple(p.data.shape)}, received "
                                 f"{tuple(p.grad.shape)}")
            self._update(p.data, p.grad, st, get_array_module(data=p.data, grad=p.grad, op="step"))

    def _decayed(self, data, grad):
        # L2 weight decay as PyTorch applies it: added to the gradient (a new array --
        # the caller's .grad is never written).
        return grad + self.weight_decay * data if self.weight_decay else grad

    def state_dict(self):
        """Hyper-parameters and ``step`` as Python scalars, buffers as NumPy arrays ``"<name>.<i>"``."""
        state = {"step": self.step_count}
        for h in self.hyper:
            state[h] = getattr(self, h)
        for i, st in enumerate(self.state):
            for b, a in st.items():
                state[f"{b}.{i}"] = np.array(backend.asnumpy(a), copy=True)
        return state

    def load_state_dict(self, state):
        """Restore ``state_dict()`` output (arrays may be NumPy or CuPy; scalars may be 0-d arrays).

        Raises ``ValueError`` naming a missing or unexpected key or an array of the wrong shape.
        """
        name = type(self).__name__
        current = self.state_dict()
        missing = [k for k in current if k not in state]
        unexpected = [k for k in state if k not in current]
        if missing or unexpected:
            raise ValueError(f"{name}.load_state_dict: state does not match this optimizer "
                             f"(missing {missing or 'none'}, unexpected {unexpected or 'none'}); "
                             "was it saved from the same optimizer class and parameters?")
        for i, (p, st) in enumerate(zip(self.params, self.state)):
            for b, a in st.items():
                key = f"{b}.{i}"
                v = state[key]
                if tuple(getattr(v, "shape", ())) != tuple(a.shape):
                    raise ValueError(f"{name}.load_state_dict: expected {key!r} of shape "
                                     f"{tuple(a.shape)}, received {tuple(getattr(v, 'shape', ()))}")
        # Everything checked: now assign (a failed load leaves the optimizer untouched).
        for i, (p, st) in enumerate(zip(self.params, self.state)):
            where = backend.device_of(p.data)
            for b, a in st.items():
                a[...] = backend.to_backend(state[f"{b}.{i}"], where).astype(a.dtype, copy=False)
        self.step_count = _scalar(name, "step", state["step"], 0)
        for h in self.hyper:
            setattr(self, h, _scalar(name, h, state[h], getattr(self, h)))

    def __repr__(self):
        hp = ", ".join(f"{h}={getattr(self, h)}" for h in self.hyper)
        return f"{type(self).__name__}({len(self.params)} parameters, {hp})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay.

    PyTorch's rule (Sutskever et al. 2013 in the form that keeps the same lr scale), per
    parameter p with gradient g, velocity v (zero at the start), mu = momentum:

        g = g + weight_decay * p
        v = mu * v + g                      (only if mu > 0; else the step uses g)
        p = p - lr * v                      (classical momentum)
        p = p - lr * (g + mu * v)           (nesterov=True: look ahead along the new v)

    CS231n writes momentum as ``v = mu * v - lr * g; p += v``: the same steps while lr is
    constant; here lr multiplies the whole velocity, so a schedule's change of lr takes
    effect at once.
    """

    hyper = ("lr", "momentum", "weight_decay", "nesterov")

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        self.momentum = _nonnegative("SGD", "momentum", momentum)
        if nesterov and self.momentum == 0:
            raise ValueError("SGD: expected momentum > 0 with nesterov=True, received momentum=0")
        self.nesterov = bool(nesterov)
        super().__init__(params, lr, weight_decay)

    def _active_buffers(self):
        return ("momentum_buffer",) if self.momentum else ()

    def _update(self, data, grad, st, xp):
        g = self._decayed(data, grad)
        if self.momentum:
            v = st["momentum_buffer"]
            v *= self.momentum
            v += g
            g = g + self.momentum * v if self.nesterov else v
        data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction; weight decay is L2, added to g.

    Per parameter p, gradient g, step t = 1, 2, ..., moments m, v (zero at the start):

        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    The two divisions by ``1 - beta^t`` undo the pull of the zero initial moments
    towards 0 in the first steps.
    """

    buffers = ("exp_avg", "exp_avg_sq")
    hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"Adam: expected betas as a pair (beta1, beta2), received {betas!r}")
        self.beta1 = _nonnegative("Adam", "beta1", betas[0], 1.0)
        self.beta2 = _nonnegative("Adam", "beta2", betas[1], 1.0)
        self.eps = _nonnegative("Adam", "eps", eps)
        super().__init__(params, lr, weight_decay)

    @property
    def betas(self):
        return (self.beta1, self.beta2)

    def _update(self, data, grad, st, xp):
        g = self._decayed(data, grad)
        m, v = st["exp_avg"], st["exp_avg_sq"]
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * (g * g)
        t = self.step_count
        bias1 = 1.0 - self.beta1 ** t
        bias2 = 1.0 - self.beta2 ** t
        denom = xp.sqrt(v) / math.sqrt(bias2) + self.eps
        data -= (self.lr / bias1) * (m / denom)


class RMSProp(Optimizer):
    """RMSProp (Hinton, Coursera lecture 6e), PyTorch's form, optionally with momentum.

    Per parameter p, gradient g, mean square s and velocity b (zero at the start):

        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g^2
        b = momentum * b + g / (sqrt(s) + eps);   p = p - lr * b      (momentum > 0)
        p = p - lr * g / (sqrt(s) + eps)                              (momentum = 0)
    """

    hyper = ("lr", "alpha", "eps", "momentum", "weight_decay")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        self.alpha = _nonnegative("RMSProp", "alpha", alpha, 1.0, high_open=False)
        self.eps = _nonnegative("RMSProp", "eps", eps)
        self.momentum = _nonnegative("RMSProp", "momentum", momentum)
        super().__init__(params, lr, weight_decay)

    def _active_buffers(self):
        return ("square_avg", "momentum_buffer") if self.momentum else ("square_avg",)

    def _update(self, data, grad, st, xp):
        g = self._decayed(data, grad)
        s = st["square_avg"]
        s *= self.alpha
        s += (1.0 - self.alpha) * (g * g)
        avg = xp.sqrt(s) + self.eps
        if self.momentum:
            b = st["momentum_buffer"]
            b *= self.momentum
            b += g / avg
            data -= self.lr * b
        else:
            data -= self.lr * (g / avg)




OPTIMIZERS = ("sgd", "adam", "rmsprop")


def make_optimizer(name, params, lr, momentum=None, weight_decay=0.0, nesterov=False):
    """The optimizer ``name`` ("sgd", "adam" or "rmsprop") over ``params``.

    ``momentum`` (None: 0) is SGD's and RMSProp's; Adam keeps its own running averages
    (``betas``, left at their defaults) and refuses a momentum.  ``nesterov`` is SGD's only.
    For other hyper-parameters (Adam's betas, RMSProp's alpha) make the class directly.
    """
    op = "make_optimizer"
    if name not in OPTIMIZERS:
        raise ValueError(f"{op}: expected one of {', '.join(OPTIMIZERS)}, received {name!r}")
    if nesterov and name != "sgd":
        raise ValueError(f"{op}: nesterov=True is SGD's; {name} has no Nesterov form")
    if name == "adam":
        if momentum:
            raise ValueError(f"{op}: adam takes no momentum (its betas play that part), "
                             f"received momentum={momentum!r}")
        return Adam(params, lr=lr, weight_decay=weight_decay)
    momentum = 0.0 if momentum is None else momentum
    if name == "rmsprop":
        return RMSProp(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
