"""Learning-rate schedules: StepLR, MultiStepLR, CosineAnnealingLR, LinearWarmup, ReduceLROnPlateau.

    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    schedule = MultiStepLR(opt, milestones=[100, 150])     # He et al. 2016, CIFAR-10
    for epoch in range(epochs):
        ...train one epoch...
        schedule.step()
    schedule = make_schedule("cosine", opt, epochs=30, warmup=2)   # by name, as `minicnn train`

A schedule owns the optimizer's ``lr``: it sets it when it is made and at every ``step()``
(once per epoch).  ``StepLR``, ``MultiStepLR``, ``CosineAnnealingLR`` and ``LinearWarmup``
compute the rate from the epoch count alone (``lr_for(base_lr, epoch)``);
``ReduceLROnPlateau`` watches a metric.  Their ``state_dict()`` is a JSON-able dict.
The schedules are also importable from ``minicnn.optim``.

With param groups (``minicnn.optim``), every group follows the schedule from its own
base, as in PyTorch: a group made with lr 0.001 next to one with 0.01 stays ten times
slower all along (``base_lrs`` holds each group's lr from when the schedule was made;
``ReduceLROnPlateau`` multiplies each group's lr).  ``schedule.lr`` is the first group's.
"""
import bisect
import math
import numbers

from minicnn.checks import check_int, check_number

__all__ = ["StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearWarmup", "ReduceLROnPlateau",
           "SCHEDULES", "make_schedule"]

SCHEDULES = ("cosine", "step", "multistep", "plateau", "none")


def _check_optimizer(owner, optimizer):
    if not hasattr(optimizer, "lr"):
        raise ValueError(f"{owner}: expected an optimizer with an lr attribute, received "
                         f"{type(optimizer).__name__}")


def _lrs(optimizer):
    """Every param group's lr (an optimizer without ``param_groups`` has one: its ``lr``)."""
    groups = getattr(optimizer, "param_groups", None)
    return [group["lr"] for group in groups] if groups else [optimizer.lr]


def _set_lrs(optimizer, lrs):
    """Give each param group its lr (as a Python float: a NumPy scalar would promote float32)."""
    groups = getattr(optimizer, "param_groups", None)
    if groups:
        for group, lr in zip(groups, lrs):
            group["lr"] = float(lr)
    else:
        optimizer.lr = lrs[0]


def _one_per_group(owner, key, values, optimizer):
    """Saved per-group lrs, checked: a list of rates >= 0, one for each of the optimizer's groups."""
    n = len(_lrs(optimizer))
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise ValueError(f"{owner}: expected {key} as a list of {n} lr(s), one per param group "
                         f"of the optimizer, received {values!r:.200}")
    return [_nonnegative(owner, key, v) for v in values]


def _nonnegative(owner, name, v, high=math.inf, high_open=True):
    """``v`` as a float, finite and >= 0 (and <= ``high``, or < it): a rate, a gamma, a
    threshold -- and the optimizers' hyper-parameters (optim.py uses this check too)."""
    return check_number(owner, name, v, low=0, high=high, high_open=high_open)


class _EpochSchedule:
    """A schedule whose rate depends on the epoch count only: each group's lr is
    ``lr_for(its base lr, last_epoch)``, the formula each subclass writes.

    ``last_epoch`` counts the ``step()`` calls (0 when made); ``base_lrs`` are the
    optimizer's group lrs when the schedule was made (``base_lr``: the first one).
    """

    def __init__(self, optimizer):
        _check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        self.base_lrs = [float(lr) for lr in _lrs(optimizer)]
        self.last_epoch = 0
        _set_lrs(optimizer, self.lrs_at(0))

    @property
    def base_lr(self):
        return self.base_lrs[0]

    def lrs_at(self, epoch):
        """Every group's lr at ``epoch``."""
        return [self.lr_for(base_lr, epoch) for base_lr in self.base_lrs]

    def lr_at(self, epoch):
        """The first group's lr at ``epoch``."""
        return self.lr_for(self.base_lrs[0], epoch)

    @property
    def lr(self):
        """The current learning rate (the one the optimizer's first group is using)."""
        return self.lr_at(self.last_epoch)

    def step(self):
        """Count one epoch and set each group's lr for the next; returns the first group's."""
        self.last_epoch += 1
        _set_lrs(self.optimizer, self.lrs_at(self.last_epoch))
        return self.lr

    def state_dict(self):
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch}

    def load_state_dict(self, state):
        name = f"{type(self).__name__}.load_state_dict"
        try:
            last_epoch = state["last_epoch"]
            # "base_lr": a state saved before param groups, for a single group.
            base_lrs = state["base_lrs"] if "base_lrs" in state else [state["base_lr"]]
        except (KeyError, TypeError):
            raise ValueError(f"{name}: expected a dict with base_lrs and last_epoch, received "
                             f"{state!r:.200}") from None
        base_lrs = _one_per_group(name, "base_lrs", base_lrs, self.optimizer)
        self.last_epoch = check_int(name, "last_epoch", last_epoch, 0)
        self.base_lrs = base_lrs
        _set_lrs(self.optimizer, self.lrs_at(self.last_epoch))


class StepLR(_EpochSchedule):
    """``lr = base_lr * gamma ** (epoch // step_size)``: divide by 1/gamma every step_size epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = check_int("StepLR", "step_size", step_size, 1)
        self.gamma = _nonnegative("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def lr_for(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(_EpochSchedule):
    """``lr = base_lr * gamma ** (number of milestones <= epoch)``.

    He et al. (2016) train CIFAR-10 ResNets with lr 0.1 divided by 10 at 32k and 48k
    iterations, about epochs 82 and 123 at batch size 128: ``milestones=[82, 123]``.
    """

    def __init__(self, optimizer, milestones, gamma=0.1):
        try:
            ms = [check_int("MultiStepLR", "each milestone", m, 1) for m in milestones]
        except TypeError:
            raise ValueError(f"MultiStepLR: expected milestones as a list of ints, received "
                             f"{milestones!r}") from None
        if ms != sorted(set(ms)):
            raise ValueError(f"MultiStepLR: expected increasing milestones, received {list(milestones)}")
        self.milestones = ms
        self.gamma = _nonnegative("MultiStepLR", "gamma", gamma)
        super().__init__(optimizer)

    def lr_for(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(_EpochSchedule):
    """Half a cosine from base_lr down to eta_min over T_max epochs (Loshchilov & Hutter, 2017).

    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2`` for
    epoch <= T_max, then eta_min (PyTorch's formula would rise again after T_max); every
    param group goes down to the same eta_min, as in PyTorch.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = check_int("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = _nonnegative("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def lr_for(self, base_lr, epoch):
        e = min(epoch, self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class LinearWarmup(_EpochSchedule):
    """A linear ramp over the first ``warmup_epochs`` epochs, then another schedule.

    ``lr = base_lr * (start_factor + (1 - start_factor) * epoch / warmup_epochs)`` for
    epoch < warmup_epochs, then ``after.lr_for(base_lr, epoch - warmup_epochs)`` (or base_lr if
    ``after`` is None).  Goyal et al. (2017) ramp up this way so that a large learning
    rate does not blow up the first updates.  Make ``after`` on the same optimizer first,
    then step only the warm-up: it drives ``after``.
    """

    def __init__(self, optimizer, warmup_epochs, after=None, start_factor=0.1):
        self.warmup_epochs = check_int("LinearWarmup", "warmup_epochs", warmup_epochs, 1)
        self.start_factor = _nonnegative("LinearWarmup", "start_factor", start_factor, 1.0, high_open=False)
        if after is not None and not isinstance(after, _EpochSchedule):
            raise ValueError(f"LinearWarmup: expected after as StepLR, MultiStepLR, "
                             f"CosineAnnealingLR or None, received {type(after).__name__} "
                             "(a metric-driven schedule cannot be composed by epoch)")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: expected after to drive the same optimizer")
        self.after = after
        if after is not None:
            _set_lrs(optimizer, after.base_lrs)
        super().__init__(optimizer)

    def lr_for(self, base_lr, epoch):
        if epoch < self.warmup_epochs:
            ramp = self.start_factor + (1 - self.start_factor) * epoch / self.warmup_epochs
            return base_lr * ramp
        if self.after is None:
            return base_lr
        return self.after.lr_for(base_lr, epoch - self.warmup_epochs)

    def _sync_after(self):
        # The wrapped schedule is never stepped itself: keep its bases and count in line
        # with ours (its bases may have been taken from mid-run lrs when rebuilt on resume).
        if self.after is not None:
            self.after.base_lrs = list(self.base_lrs)
            self.after.last_epoch = max(0, self.last_epoch - self.warmup_epochs)

    def step(self):
        lr = super().step()
        self._sync_after()
        return lr

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._sync_after()


class ReduceLROnPlateau:
    """Multiply lr by ``factor`` when a metric has stopped improving for ``patience`` epochs.

    AlexNet's rule (Krizhevsky et al. 2012): "divide the learning rate by 10 when the
    validation error rate stopped improving".  ``step(metric)`` once per epoch with the
    validation accuracy (``mode="max"``, the default here -- PyTorch's default is "min",
    for a loss) or a loss (``mode="min"``).  PyTorch's rule: a metric is an improvement
    if it beats the best by more than ``threshold`` (relative: best * (1 + threshold) for
    max; absolute: best + threshold); after more than ``patience`` epochs without one,
    ``lr = max(lr * factor, min_lr)`` in every param group (one ``min_lr`` for all), then
    ``cooldown`` epochs are not counted.
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
        self.factor = _nonnegative("ReduceLROnPlateau", "factor", factor, 1.0, high_open=True)
        self.patience = check_int("ReduceLROnPlateau", "patience", patience, 0)
        self.threshold = _nonnegative("ReduceLROnPlateau", "threshold", threshold)
        self.cooldown = check_int("ReduceLROnPlateau", "cooldown", cooldown, 0)
        self.min_lr = _nonnegative("ReduceLROnPlateau", "min_lr", min_lr)
        self.best = None              # None until the first metric
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    @property
    def lr(self):
        """The current learning rate (the one the optimizer's first group is using)."""
        return _lrs(self.optimizer)[0]

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
        # Not check_number: a NaN metric (a diverged epoch) is valid input here.
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
            _set_lrs(self.optimizer, [max(lr * self.factor, self.min_lr) for lr in _lrs(self.optimizer)])
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.lr

    def state_dict(self):
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter, "last_epoch": self.last_epoch,
                "lrs": list(_lrs(self.optimizer))}

    def load_state_dict(self, state):
        name = "ReduceLROnPlateau.load_state_dict"
        try:
            best = state["best"]
            counts = {k: state[k] for k in ("num_bad_epochs", "cooldown_counter", "last_epoch")}
            lrs = state["lrs"] if "lrs" in state else [state["lr"]]   # "lr": saved before groups
        except (KeyError, TypeError):
            raise ValueError(f"{name}: expected a dict with best, num_bad_epochs, cooldown_counter, "
                             f"last_epoch, lrs; received {state!r:.200}") from None
        best = None if best is None else check_number(name, "best", best)
        counts = {k: check_int(name, k, v, 0) for k, v in counts.items()}
        _set_lrs(self.optimizer, _one_per_group(name, "lrs", lrs, self.optimizer))
        self.best = best
        self.num_bad_epochs = counts["num_bad_epochs"]
        self.cooldown_counter = counts["cooldown_counter"]
        self.last_epoch = counts["last_epoch"]


def make_schedule(name, optimizer, epochs, warmup=0):
    """The per-epoch schedule ``name`` for a run of ``epochs`` epochs, the first ``warmup`` of
    them a linear ramp (``LinearWarmup`` from 0.1 x lr); the schedule itself spans the rest.

    - "cosine": ``CosineAnnealingLR`` down to 0 over the epochs after the warm-up
    - "step": ``StepLR`` dividing by 10 every third of them
    - "multistep": ``MultiStepLR`` dividing by 10 at 50% and 75% of them (He et al.'s recipe)
    - "plateau": ``ReduceLROnPlateau`` on the validation accuracy, factor 0.1, patience 2
      (no warm-up: it is driven by a metric, not by the epoch count)
    - "none": a constant lr (None, or the warm-up alone)
    Returns the schedule (call its ``step()`` once per epoch), or None.
    """
    op = "make_schedule"
    if name not in SCHEDULES:
        raise ValueError(f"{op}: expected one of {', '.join(SCHEDULES)}, received {name!r}")
    epochs = check_int(op, "epochs", epochs, 1)
    warmup = check_int(op, "warmup", warmup, 0)
    span = max(1, epochs - warmup)
    if name == "plateau":
        if warmup:
            raise ValueError(f"{op}: a warm-up cannot be combined with the plateau schedule, "
                             f"received warmup={warmup}")
        return ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=2)
    if name == "cosine":
        schedule = CosineAnnealingLR(optimizer, T_max=span)
    elif name == "step":
        schedule = StepLR(optimizer, step_size=max(1, span // 3))
    elif name == "multistep":
        schedule = MultiStepLR(optimizer, milestones=sorted({max(1, int(span * 0.5)),
                                                             max(2, int(span * 0.75))}))
    else:
        schedule = None
    return LinearWarmup(optimizer, warmup, after=schedule) if warmup else schedule
