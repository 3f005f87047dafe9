"""Optimizers (SGD, Adam, RMSProp) and learning-rate schedules.

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
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

A schedule owns the optimizer's ``lr``: it sets ``optimizer.lr`` when it is made and at
every ``step()`` (once per epoch).  ``StepLR``, ``MultiStepLR``, ``CosineAnnealingLR``
and ``LinearWarmup`` compute the rate from the epoch count alone (``lr_at(epoch)``);
``ReduceLROnPlateau`` watches a metric.  Their ``state_dict()`` is a JSON-able dict.
"""
import bisect
import math
import numbers

import numpy as np

from minicnn import backend
from minicnn.backend import get_array_module

__all__ = ["Optimizer", "SGD", "Adam", "RMSProp", "StepLR", "MultiStepLR", "CosineAnnealingLR",
           "LinearWarmup", "ReduceLROnPlateau"]


def _number(owner, name, v, low=0.0, high=None, high_open=False):
    """``v`` as a Python float in [low, high] (or [low, high)); ValueError otherwise."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{owner}: expected {name} as a finite number, received {v!r}")
    v = float(v)
    if v < low or (high is not None and (v >= high if high_open else v > high)):
        bound = "" if high is None else (f" and < {high}" if high_open else f" and <= {high}")
        raise ValueError(f"{owner}: expected {name} >= {low}{bound}, received {v}")
    return v


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
        self.weight_decay = _number(name, "weight_decay", weight_decay)
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
        self._lr = _number(type(self).__name__, "lr", value)

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
            where = "cupy" if backend._is_cupy_array(p.data) else "numpy"
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
        self.momentum = _number("SGD", "momentum", momentum)
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
        self.beta1 = _number("Adam", "beta1", betas[0], 0.0, 1.0, high_open=True)
        self.beta2 = _number("Adam", "beta2", betas[1], 0.0, 1.0, high_open=True)
        self.eps = _number("Adam", "eps", eps)
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
        self.alpha = _number("RMSProp", "alpha", alpha, 0.0, 1.0)
        self.eps = _number("RMSProp", "eps", eps)
        self.momentum = _number("RMSProp", "momentum", momentum)
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


# ------------------------------------------------------------------------------ schedules

def _check_optimizer(owner, optimizer):
    if not hasattr(optimizer, "lr"):
        raise ValueError(f"{owner}: expected an optimizer with an lr attribute, received "
                         f"{type(optimizer).__name__}")


def _epoch_count(owner, name, v, minimum):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
        raise ValueError(f"{owner}: expected {name} as an int >= {minimum}, received {v!r}")
    return int(v)


class _EpochSchedule:
    """A schedule whose rate depends on the epoch count only: ``lr = lr_at(last_epoch)``.

    ``last_epoch`` counts the ``step()`` calls (0 when made); ``base_lr`` is the
    optimizer's lr when the schedule was made.
    """

    def __init__(self, optimizer):
        _check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        self.optimizer.lr = self.lr_at(0)

    @property
    def lr(self):
        """The current learning rate (the one the optimizer is using)."""
        return self.lr_at(self.last_epoch)

    def step(self):
        """Count one epoch and set the optimizer's lr for the next; returns it."""
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)
        return self.optimizer.lr

    def state_dict(self):
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state):
        name = type(self).__name__
        try:
            base_lr, last_epoch = float(state["base_lr"]), state["last_epoch"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{name}.load_state_dict: expected a dict with base_lr and "
                             f"last_epoch, received {state!r:.200}") from None
        self.base_lr = base_lr
        self.last_epoch = _epoch_count(name, "last_epoch", _scalar(name, "last_epoch", last_epoch, 0), 0)
        self.optimizer.lr = self.lr_at(self.last_epoch)


class StepLR(_EpochSchedule):
    """``lr = base_lr * gamma ** (epoch // step_size)``: divide by 1/gamma every step_size epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _epoch_count("StepLR", "step_size", step_size, 1)
        self.gamma = _number("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(_EpochSchedule):
    """``lr = base_lr * gamma ** (number of milestones <= epoch)``.

    He et al. (2016) train CIFAR-10 ResNets with lr 0.1 divided by 10 at 32k and 48k
    iterations, about epochs 82 and 123 at batch size 128: ``milestones=[82, 123]``.
    """

    def __init__(self, optimizer, milestones, gamma=0.1):
        try:
            ms = [_epoch_count("MultiStepLR", "each milestone", m, 1) for m in milestones]
        except TypeError:
            raise ValueError(f"MultiStepLR: expected milestones as a list of ints, received "
                             f"{milestones!r}") from None
        if ms != sorted(set(ms)):
            raise ValueError(f"MultiStepLR: expected increasing milestones, received {list(milestones)}")
        self.milestones = ms
        self.gamma = _number("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(_EpochSchedule):
    """Half a cosine from base_lr down to eta_min over T_max epochs (Loshchilov & Hutter, 2017).

    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2`` for
    epoch <= T_max, then eta_min (PyTorch's formula would rise again after T_max).
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _epoch_count("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = _number("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def lr_at(self, epoch):
        e = min(epoch, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class LinearWarmup(_EpochSchedule):
    """A linear ramp over the first ``warmup_epochs`` epochs, then another schedule.

    ``lr = base_lr * (start_factor + (1 - start_factor) * epoch / warmup_epochs)`` for
    epoch < warmup_epochs, then ``after.lr_at(epoch - warmup_epochs)`` (or base_lr if
    ``after`` is None).  Goyal et al. (2017) ramp up this way so that a large learning
    rate does not blow up the first updates.  Make ``after`` on the same optimizer first,
    then step only the warm-up: it drives ``after``.
    """

    def __init__(self, optimizer, warmup_epochs, after=None, start_factor=0.1):
        self.warmup_epochs = _epoch_count("LinearWarmup", "warmup_epochs", warmup_epochs, 1)
        self.start_factor = _number("LinearWarmup", "start_factor", start_factor, 0.0, 1.0)
        if after is not None and not isinstance(after, _EpochSchedule):
            raise ValueError(f"LinearWarmup: expected after as StepLR, MultiStepLR, "
                             f"CosineAnnealingLR or None, received {type(after).__name__} "
                             "(a metric-driven schedule cannot be composed by epoch)")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: expected after to drive the same optimizer")
        self.after = after
        if after is not None:
            optimizer.lr = after.base_lr
        super().__init__(optimizer)

    def lr_at(self, epoch):
        if epoch < self.warmup_epochs:
            ramp = self.start_factor + (1 - self.start_factor) * epoch / self.warmup_epochs
            return self.base_lr * ramp
        if self.after is None:
            return self.base_lr
        return self.after.lr_at(epoch - self.warmup_epochs)

    def _sync_after(self):
        # The wrapped schedule is never stepped itself: keep its base and count in line
        # with ours (its base may have been taken from a mid-run lr when rebuilt on resume).
        if self.after is not None:
            self.after.base_lr = self.base_lr
            self.after.last_epoch = max(0, self.last_epoch - self.warmup_epochs)

    def step(self):
        lr = super().step()
        self._sync_after()
        return lr

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._sync_after()
        self.optimizer.lr = self.lr_at(self.last_epoch)


class ReduceLROnPlateau:
    """Multiply lr by ``factor`` when a metric has stopped improving for ``patience`` epochs.

    AlexNet's rule (Krizhevsky et al. 2012): "divide the learning rate by 10 when the
    validation error rate stopped improving".  ``step(metric)`` once per epoch with the
    validation accuracy (``mode="max"``, the default here -- PyTorch's default is "min",
    for a loss) or a loss (``mode="min"``).  PyTorch's rule: a metric is an improvement
    if it beats the best by more than ``threshold`` (relative: best * (1 + threshold) for
    max; absolute: best + threshold); after more than ``patience`` epochs without one,
    ``lr = max(lr * factor, min_lr)``, then ``cooldown`` epochs are not counted.
    """

    def __init__(self, optimizer, mode="max", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0):
        _check_optimizer("ReduceLROnPlateau", optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: expected mode 'min' or 'max', received {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: expected threshold_mode 'rel' or 'abs', "
                             f"received {threshold_mode!r}")
        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = _number("ReduceLROnPlateau", "factor", factor, 0.0, 1.0, high_open=True)
        self.patience = _epoch_count("ReduceLROnPlateau", "patience", patience, 0)
        self.threshold = _number("ReduceLROnPlateau", "threshold", threshold)
        self.cooldown = _epoch_count("ReduceLROnPlateau", "cooldown", cooldown, 0)
        self.min_lr = _number("ReduceLROnPlateau", "min_lr", min_lr)
        self.best = None              # None until the first metric
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    @property
    def lr(self):
        """The current learning rate (the one the optimizer is using)."""
        return self.optimizer.lr

    def _improves(self, metric):
        if self.best is None:
            return True
        if self.mode == "max":
            bar = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
            return metric > bar
        bar = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
        return metric < bar

    def step(self, metric):
        """Record this epoch's metric (a NaN counts as no improvement); returns the lr for the next."""
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise ValueError(f"ReduceLROnPlateau.step: expected the metric as a number, received "
                             f"{metric!r}")
        metric = float(metric)
        self.last_epoch += 1
        if not math.isnan(metric) and self._improves(metric):
            self.best = metric
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.optimizer.lr

    def state_dict(self):
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter, "last_epoch": self.last_epoch,
                "lr": self.optimizer.lr}

    def load_state_dict(self, state):
        name = "ReduceLROnPlateau"
        try:
            best = state["best"]
            best = None if best is None else _scalar(name, "best", best, 0.0)
            counts = {k: _epoch_count(name, k, _scalar(name, k, state[k], 0), 0)
                      for k in ("num_bad_epochs", "cooldown_counter", "last_epoch")}
            lr = _scalar(name, "lr", state["lr"], 0.0)
        except (KeyError, TypeError):
            raise ValueError(f"{name}.load_state_dict: expected a dict with best, num_bad_epochs, "
                             f"cooldown_counter, last_epoch, lr; received {state!r:.200}") from None
        self.best = best
        self.num_bad_epochs = counts["num_bad_epochs"]
        self.cooldown_counter = counts["cooldown_counter"]
        self.last_epoch = counts["last_epoch"]
        self.optimizer.lr = lr
