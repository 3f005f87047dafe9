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

Parameter groups (PyTorch's convention), for fine-tuning a pretrained backbone slower
than a new head: pass a list of dicts instead of the parameters, each with its
``"params"`` and any hyper-parameters of its own; the others come from the keywords::

    head = [p for name, p in model.named_parameters() if name.startswith("fc.")]
    backbone = [p for name, p in model.named_parameters() if not name.startswith("fc.")]
    opt = SGD([{"params": head},                        # lr 0.01, from the keyword
               {"params": backbone, "lr": 0.001}],      # a tenth of it
              lr=0.01, momentum=0.9)
    opt = SGD(fine_tuning_groups(model, head="fc", backbone_lr=0.001), lr=0.01, momentum=0.9)

(``minicnn/param_groups.py`` reads and checks the groups and builds these two.)
``opt.param_groups`` is the list of group dicts, every hyper-parameter filled in; the
update reads each group's values, and a schedule scales each group's lr from its own
base.  The hyper-parameters are also attributes (``opt.lr``, ``opt.weight_decay``,
``opt.momentum``, ...): reading one gives the *first* group's value, assigning one sets
it in *every* group (what a single-group optimizer needs; with groups, write
``opt.param_groups[g]["lr"]`` to change one).

``state_dict()`` returns a flat dict: the hyper-parameters and the step count as Python
scalars, and the per-parameter buffers as NumPy arrays named ``"<buffer>.<i>"`` (i = the
parameter's position, counting through the groups in order).  With one group the
hyper-parameters are keys of their own (``"lr"``, ``"momentum"``, ...); with several they
are ``"param_groups.<g>.<name>"``, next to ``"param_groups.<g>.params"``, the group's
number of parameters.  It can be saved with ``np.savez`` as is -- no pickle -- and
``load_state_dict`` accepts it back, with scalars as 0-d arrays.

The schedules (``StepLR``, ``MultiStepLR``, ``CosineAnnealingLR``, ``LinearWarmup``,
``ReduceLROnPlateau``, ``make_schedule``) live in ``minicnn/schedules.py``: a schedule
only sets each group's ``lr`` once per epoch.
"""
import math

import numpy as np

from minicnn import backend
from minicnn.backend import get_array_module
from minicnn.param_groups import GroupSetting, fine_tuning_groups, split_groups
# The schedules, importable from here as before; _nonnegative checks hyper-parameters here too.
from minicnn.schedules import (CosineAnnealingLR, LinearWarmup, MultiStepLR,  # noqa: F401
                               ReduceLROnPlateau, StepLR, _nonnegative, make_schedule)

__all__ = ["Optimizer", "SGD", "Adam", "RMSProp", "OPTIMIZERS", "make_optimizer",
           "fine_tuning_groups", "StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearWarmup",
           "ReduceLROnPlateau", "make_schedule"]


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


def _decayed(data, grad, weight_decay):
    # L2 weight decay as PyTorch applies it: added to the gradient (a new array --
    # the caller's .grad is never written).
    return grad + weight_decay * data if weight_decay else grad


class Optimizer:
    """Base class: holds the param groups, per-parameter buffers and the step count.

    Subclasses name their buffers in ``buffers`` (made as zeros like each parameter),
    their hyper-parameters in ``hyper`` (saved in the state; each is a ``GroupSetting``
    attribute too), check a group's values in ``_settings`` and write ``_update``.
    ``params`` is the flat list of every parameter, ``state[i]`` the buffers of ``params[i]``.
    """

    buffers = ()
    hyper = ("lr", "weight_decay")
    lr = GroupSetting()
    weight_decay = GroupSetting()

    def __init__(self, params, defaults):
        name = type(self).__name__
        defaults = self._settings(name, **defaults)    # the keywords' own errors come first
        self.param_groups = []
        for g, (ps, own) in enumerate(split_groups(name, params)):
            where = f"{name}: param group {g}"
            settings = self._settings(where, **{**defaults, **self._overrides(where, own)})
            self.param_groups.append({"params": ps, **settings})
        self.params = [p for group in self.param_groups for p in group["params"]]
        self.step_count = 0
        self.state = [{b: get_array_module(p.data).zeros_like(p.data) for b in self._active_buffers(group)}
                      for group in self.param_groups for p in group["params"]]

    @staticmethod
    def _settings(owner, lr, weight_decay):
        """The checked hyper-parameters of one group, as Python scalars.  A Python float
        whatever is given: a NumPy float64 scalar would promote float32 parameters (NEP 50)."""
        return {"lr": _nonnegative(owner, "lr", lr),
                "weight_decay": _nonnegative(owner, "weight_decay", weight_decay)}

    def _active_buffers(self, group):
        return self.buffers

    def _slots(self):
        """(position, group index, parameter, its buffers) for every parameter, group by group."""
        i = 0
        for g, group in enumerate(self.param_groups):
            for p in group["params"]:
                yield i, g, p, self.state[i]
                i += 1

    def zero_grad(self):
        """Set every parameter's ``.grad`` to zero, in place."""
        for p in self.params:
            if p.grad is not None:
                p.grad[...] = 0

    def step(self):
        """Update every parameter that has a gradient, in place, with its group's
        hyper-parameters; then count the step.  A frozen parameter (``requires_grad``
        False, see ``Module.freeze``) is skipped whole: no update, no weight decay, and its
        momentum or moment buffers stay as they are, so that it can be unfrozen later."""
        self.step_count += 1
        for i, g, p, st in self._slots():
            if p.grad is None or not getattr(p, "requires_grad", True):
                continue
            if p.grad.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}.step: expected the gradient of parameter "
                                 f"{i} with shape {tuple(p.data.shape)}, received "
                                 f"{tuple(p.grad.shape)}")
            xp = get_array_module(data=p.data, grad=p.grad, op="step")
            self._update(p.data, p.grad, st, self.param_groups[g], xp)

    # The param-group machinery: checking a group's own settings, setting one everywhere.
    def _overrides(self, where, own):
        """A group's own hyper-parameters, checked for unknown names."""
        unknown = sorted(set(own) - set(self.hyper), key=str)
        if unknown:
            raise ValueError(f"{where}: unknown hyper-parameter(s) {unknown}; "
                             f"{type(self).__name__} takes {', '.join(self.hyper)}")
        return own

    def _set_in_every_group(self, name, value):
        owner = f"{type(self).__name__}.{name}"
        new = [self._settings(owner, **{**{h: group[h] for h in self.hyper}, name: value})
               for group in self.param_groups]
        self._check_buffers(owner, new)
        for group, settings in zip(self.param_groups, new):
            group.update(settings)

    def _check_buffers(self, owner, settings):
        """Refuse settings that need a buffer the optimizer did not make (momentum switched on
        later): the buffers are made once, when the optimizer is."""
        for i, g, p, st in self._slots():
            missing = [b for b in self._active_buffers(settings[g]) if b not in st]
            if missing:
                raise ValueError(f"{owner}: these settings need the buffer(s) {missing} for "
                                 f"parameter {i}, which this optimizer was made without; make a "
                                 f"new {type(self).__name__} with them")

    def _hyper_keys(self, g, n_groups):
        """{hyper-parameter: its state key} for group g: the plain name when there is one group
        (the format of single-group checkpoints), ``param_groups.<g>.<name>`` otherwise."""
        return {h: h if n_groups == 1 else f"param_groups.{g}.{h}" for h in self.hyper}

    def state_dict(self):
        """Hyper-parameters and ``step`` as Python scalars, buffers as NumPy arrays ``"<name>.<i>"``
        (with several groups, ``"param_groups.<g>.<name>"`` and ``"param_groups.<g>.params"``)."""
        state = {"step": self.step_count}
        n = len(self.param_groups)
        for g, group in enumerate(self.param_groups):
            if n > 1:
                state[f"param_groups.{g}.params"] = len(group["params"])
            state.update({key: group[h] for h, key in self._hyper_keys(g, n).items()})
        for i, st in enumerate(self.state):
            for b, a in st.items():
                state[f"{b}.{i}"] = np.array(backend.asnumpy(a), copy=True)
        return state

    def load_state_dict(self, state):
        """Restore ``state_dict()`` output (arrays may be NumPy or CuPy; scalars may be 0-d arrays).

        Raises ``ValueError`` naming a missing or unexpected key, an array of the wrong shape,
        or param groups that differ from this optimizer's; a failed load changes nothing.
        """
        name = type(self).__name__
        self._check_state_keys(state)
        n = len(self.param_groups)
        settings = []
        for g, group in enumerate(self.param_groups):
            keys = self._hyper_keys(g, n)
            settings.append(self._settings(f"{name}.load_state_dict", **{
                h: _scalar(name, key, state[key], group[h]) for h, key in keys.items()}))
        self._check_buffers(f"{name}.load_state_dict", settings)
        step = _scalar(name, "step", state["step"], 0)
        # Everything checked: now assign (a failed load leaves the optimizer untouched).
        for i, _, p, st in self._slots():
            where = backend.device_of(p.data)
            for b, a in st.items():
                a[...] = backend.to_backend(state[f"{b}.{i}"], where).astype(a.dtype, copy=False)
        self.step_count = step
        for group, s in zip(self.param_groups, settings):
            group.update(s)

    def _check_state_keys(self, state):
        """The state has this optimizer's keys, group sizes and buffer shapes."""
        name = f"{type(self).__name__}.load_state_dict"
        saved = sum(1 for k in state if k.startswith("param_groups.") and k.endswith(".params")) or 1
        if saved != len(self.param_groups):
            raise ValueError(f"{name}: the state has {saved} param group(s), this optimizer "
                             f"{len(self.param_groups)}; make the optimizer with the same groups")
        current = self.state_dict()
        missing = [k for k in current if k not in state]
        unexpected = [k for k in state if k not in current]
        if missing or unexpected:
            raise ValueError(f"{name}: state does not match this optimizer "
                             f"(missing {missing or 'none'}, unexpected {unexpected or 'none'}); "
                             "was it saved from the same optimizer class and parameters?")
        for g, group in enumerate(self.param_groups if saved > 1 else ()):
            key = f"param_groups.{g}.params"
            if _scalar(type(self).__name__, key, state[key], 0) != len(group["params"]):
                raise ValueError(f"{name}: expected param group {g} to hold {len(group['params'])} "
                                 f"parameters, the state's holds {state[key]}")
        for i, _, _, st in self._slots():
            for b, a in st.items():
                key = f"{b}.{i}"
                got = tuple(getattr(state[key], "shape", ()))
                if got != tuple(a.shape):
                    raise ValueError(f"{name}: expected {key!r} of shape {tuple(a.shape)}, received {got}")

    def __repr__(self):
        def settings(group):
            return ", ".join(f"{h}={group[h]}" for h in self.hyper)
        groups = [f"{len(group['params'])} parameters, {settings(group)}" for group in self.param_groups]
        if len(groups) == 1:
            return f"{type(self).__name__}({groups[0]})"
        return f"{type(self).__name__}(" + "; ".join(f"group {g}: {s}" for g, s in enumerate(groups)) + ")"


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
    effect at once.  Each param group may set its own lr, momentum, weight_decay, nesterov.
    """

    hyper = ("lr", "momentum", "weight_decay", "nesterov")
    momentum = GroupSetting()
    nesterov = GroupSetting()

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov))

    @staticmethod
    def _settings(owner, lr, momentum, weight_decay, nesterov):
        momentum = _nonnegative(owner, "momentum", momentum)
        if nesterov and momentum == 0:
            raise ValueError(f"{owner}: expected momentum > 0 with nesterov=True, received momentum=0")
        return {**Optimizer._settings(owner, lr, weight_decay), "momentum": momentum,
                "nesterov": bool(nesterov)}

    def _active_buffers(self, group):
        return ("momentum_buffer",) if group["momentum"] else ()

    def _update(self, data, grad, st, group, xp):
        g = _decayed(data, grad, group["weight_decay"])
        mu = group["momentum"]
        if mu:
            v = st["momentum_buffer"]
            v *= mu
            v += g
            g = g + mu * v if group["nesterov"] else v
        data -= group["lr"] * g


def _betas(owner, betas):
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"{owner}: expected betas as a pair (beta1, beta2), received {betas!r}")
    return {"beta1": betas[0], "beta2": betas[1]}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction; weight decay is L2, added to g.

    Per parameter p, gradient g, step t = 1, 2, ..., moments m, v (zero at the start):

        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    The two divisions by ``1 - beta^t`` undo the pull of the zero initial moments
    towards 0 in the first steps.  A param group may set lr, ``betas`` (kept in the group
    as beta1 and beta2, the names of the state), eps and weight_decay.
    """

    buffers = ("exp_avg", "exp_avg_sq")
    hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")
    beta1 = GroupSetting()
    beta2 = GroupSetting()
    eps = GroupSetting()

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, **_betas("Adam", betas), eps=eps, weight_decay=weight_decay))

    @staticmethod
    def _settings(owner, lr, beta1, beta2, eps, weight_decay):
        return {**Optimizer._settings(owner, lr, weight_decay),
                "beta1": _nonnegative(owner, "beta1", beta1, 1.0),
                "beta2": _nonnegative(owner, "beta2", beta2, 1.0),
                "eps": _nonnegative(owner, "eps", eps)}

    def _overrides(self, where, own):
        own = dict(own)
        if "betas" in own:                   # PyTorch's spelling, as the constructor takes it
            own.update(_betas(where, own.pop("betas")))
        return super()._overrides(where, own)

    @property
    def betas(self):
        """The first group's (beta1, beta2)."""
        return (self.beta1, self.beta2)

    def _update(self, data, grad, st, group, xp):
        g = _decayed(data, grad, group["weight_decay"])
        beta1, beta2 = group["beta1"], group["beta2"]
        m, v = st["exp_avg"], st["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        t = self.step_count
        bias1 = 1.0 - beta1 ** t
        bias2 = 1.0 - beta2 ** t
        denom = xp.sqrt(v) / math.sqrt(bias2) + group["eps"]
        data -= (group["lr"] / bias1) * (m / denom)


class RMSProp(Optimizer):
    """RMSProp (Hinton, Coursera lecture 6e), PyTorch's form, optionally with momentum.

    Per parameter p, gradient g, mean square s and velocity b (zero at the start):

        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g^2
        b = momentum * b + g / (sqrt(s) + eps);   p = p - lr * b      (momentum > 0)
        p = p - lr * g / (sqrt(s) + eps)                              (momentum = 0)

    Each param group may set its own lr, alpha, eps, momentum, weight_decay.
    """

    hyper = ("lr", "alpha", "eps", "momentum", "weight_decay")
    alpha = GroupSetting()
    eps = GroupSetting()
    momentum = GroupSetting()

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                                      weight_decay=weight_decay))

    @staticmethod
    def _settings(owner, lr, alpha, eps, momentum, weight_decay):
        return {**Optimizer._settings(owner, lr, weight_decay),
                "alpha": _nonnegative(owner, "alpha", alpha, 1.0, high_open=False),
                "eps": _nonnegative(owner, "eps", eps),
                "momentum": _nonnegative(owner, "momentum", momentum)}

    def _active_buffers(self, group):
        return ("square_avg", "momentum_buffer") if group["momentum"] else ("square_avg",)

    def _update(self, data, grad, st, group, xp):
        g = _decayed(data, grad, group["weight_decay"])
        alpha = group["alpha"]
        s = st["square_avg"]
        s *= alpha
        s += (1.0 - alpha) * (g * g)
        avg = xp.sqrt(s) + group["eps"]
        if group["momentum"]:
            b = st["momentum_buffer"]
            b *= group["momentum"]
            b += g / avg
            data -= group["lr"] * b
        else:
            data -= group["lr"] * (g / avg)


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
