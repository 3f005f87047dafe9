"""Sanity checks before and around training (Karpathy, "A recipe for training neural networks").

* ``input_warnings``: constant or unnormalised inputs, which a network cannot learn well from;
* ``initial_loss``: the loss of the untrained model, to compare with ``ln(K)`` -- what a
  K-class classifier that knows nothing scores;
* ``overfit_mode``: the overfit test switches regularisation off (weight decay, dropout,
  stochastic depth, FractalNet's drop-path) so that the model can memorise a few images,
  and puts every setting back when the test ends.

A model that cannot reach 100% on 50 training images has a bug: test that first.
"""
import contextlib
import math
import warnings

import numpy as np

from minicnn import backend
from minicnn.data.loader import BatchLoader, channel_stats
from minicnn.functional.loss import softmax_cross_entropy
from minicnn.models.fractalnet import FractalNet
from minicnn.nn import BasicBlock, Bottleneck, Dropout, FractalBlock, StochasticDepth
from minicnn.nn.probe import untouched

# What the overfit test switches off: (what, module class, attribute, the value that disables it).
REGULARISERS = (
    ("dropout", Dropout, "p", 0.0),
    # The residual blocks draw their own stochastic depth (nn/residual.py); StochasticDepth
    # wraps any other branch.
    ("stochastic depth", StochasticDepth, "survival_prob", 1.0),
    ("stochastic depth", BasicBlock, "survival_prob", 1.0),
    ("stochastic depth", Bottleneck, "survival_prob", 1.0),
    ("drop-path", FractalBlock, "drop_prob", 0.0),
    ("drop-path", FractalNet, "global_prob", 0.0),
)


# ---------------------------------------------------------------------- inputs
def safe_std(mean, std):
    """``std`` with constant channels (std ~ 0) set to 1, so that dividing by it is harmless."""
    return np.where(std <= 1e-8 * np.maximum(1.0, np.abs(mean)), 1.0, std)


def normalization_stats(x):
    """Per-channel (mean, std) of the training images x (N, C, H, W) to normalise with
    (``safe_std``: a constant channel is divided by 1)."""
    mean, std = channel_stats(x)
    return mean, safe_std(mean, std)


def input_warnings(x, mean=None, std=None, normalized_by_us=True):
    """Messages about inputs a network cannot learn well from ([] when all is well).

    ``mean``/``std`` are the per-channel statistics of ``x`` (computed if None).
    Constant channels carry no information (and a zero std cannot be divided by).  When
    the data are used as given (``normalized_by_us=False``), values far from zero mean
    and unit variance -- raw 0..255 pixels, say -- make the first layers saturate or
    the gradients explode, so they are reported too.
    """
    if mean is None:
        mean, std = channel_stats(x)
    msgs = []
    flat = np.asarray(std) <= 1e-8 * max(1.0, float(np.max(np.abs(mean))))
    if flat.all():
        msgs.append("the inputs are constant (every pixel of every image has the same value "
                    "per channel): there is nothing to learn from")
    elif flat.any():
        msgs.append(f"channel(s) {np.flatnonzero(flat).tolist()} of the inputs are constant")
    if not normalized_by_us and not flat.all():
        if np.max(np.abs(mean)) > 3 or np.max(std) > 10 or np.min(std[~flat]) < 1e-2:
            msgs.append(f"the inputs look unnormalised (per-channel mean {np.round(mean, 3).tolist()}, "
                        f"std {np.round(std, 3).tolist()}); subtract the mean and divide by the "
                        "std of the training set (fit does this unless normalize=False)")
    return msgs


def eval_loader(x, y, batch_size, mean=None, std=None):
    """Batches of (x, y) in order, normalised with (mean, std) (None: x used as given)."""
    if mean is None:
        return BatchLoader(x, y, batch_size, shuffle=False, normalize=False)
    return BatchLoader(x, y, batch_size, shuffle=False, mean=mean, std=std)


# ---------------------------------------------------------------- initial loss
def initial_loss(model, x, y):
    """Loss of ``model`` on the batch (x, y) in training mode, leaving no trace.

    BatchNorm's running statistics and every Generator the model holds are restored
    afterwards (``nn.probe.untouched``), so calling this does not change the run that
    follows.  Returns ``(loss, ln(K))``: an untrained K-class classifier that spreads its
    bets evenly scores ln(K) (2.303 for 10 classes); much more means over-confident
    initial scores (a last layer initialised too large).
    """
    param = next(model.parameters()).data
    device = backend.device_of(param)
    with untouched(model, training=True):
        scores = model(backend.to_backend(x, device).astype(param.dtype, copy=False))
        loss, _ = softmax_cross_entropy(scores, backend.to_backend(y, device))
    return loss, math.log(scores.shape[1])


def report_initial_loss(model, x, y, stats=None, log=print):
    """``initial_loss`` of ``model`` on the first 256 training images (normalised with
    ``stats`` = (mean, std), or used as given), logged next to ln(K) with a hint when it is
    far from it.  Returns (loss, ln(K))."""
    k = min(len(x), 256)
    xb, yb = next(iter(eval_loader(x[:k], y[:k], k, *(stats or (None, None)))))
    loss, expected = initial_loss(model, xb, yb)
    classes = round(math.exp(expected))
    note = ""
    if abs(loss - expected) > 0.5 * expected:
        note = " -- far from it: check the initialisation of the last layer and the inputs"
    log(f"initial loss {loss:.4f} (an untrained {classes}-class classifier should be near "
        f"ln({classes}) = {expected:.4f}){note}")
    return loss, expected


def warn_about_inputs(x, mean, std, normalized_by_us, log=print):
    """Each of ``input_warnings`` as a UserWarning (from ``fit``) and a logged line."""
    for msg in input_warnings(x, mean, std, normalized_by_us):
        warnings.warn(f"fit: {msg}", UserWarning, stacklevel=3)
        log(f"warning: {msg}")


# ----------------------------------------------------------------- overfit test
def _weight_decay_holders(optimizer):
    """(object, setter key) pairs that hold a weight decay: each param group that has one, or
    the optimizer itself if it has no groups.  Never both: ``optimizer.weight_decay = x`` sets
    every group of a minicnn optimizer, so putting the attribute back would overwrite the
    groups' own values."""
    groups = getattr(optimizer, "param_groups", None)
    if groups:
        return [(group, "weight_decay") for group in groups
                if isinstance(group, dict) and group.get("weight_decay")]
    return [(optimizer, None)] if getattr(optimizer, "weight_decay", 0) else []


@contextlib.contextmanager
def overfit_mode(model, optimizer):
    """Context manager: no weight decay, dropout, stochastic depth or drop-path while it runs
    (they fight memorisation); yields the names of what was switched off.

    Every value is put back on exit, after an exception too.
    """
    undo, changed = [], []          # undo: (how to set it, owner, name, the value to put back)
    for holder, key in _weight_decay_holders(optimizer):
        if key is None:
            undo.append((setattr, holder, "weight_decay", holder.weight_decay))
            holder.weight_decay = 0.0
        else:
            undo.append((dict.__setitem__, holder, key, holder[key]))
            holder[key] = 0.0
        changed.append("weight decay")
    for what, cls, attr, off in REGULARISERS:
        for m in model.modules():
            if isinstance(m, cls) and getattr(m, attr) != off:
                undo.append((setattr, m, attr, getattr(m, attr)))
                setattr(m, attr, off)
                changed.append(what)
    try:
        yield list(dict.fromkeys(changed))
    finally:
        for put, holder, key, value in reversed(undo):
            put(holder, key, value)


def overfit_verdict(history, epochs, n, log=print):
    """Why an overfit test on ``n`` images ended, logged: 100% reached, or not in ``epochs``."""
    if history and history[-1]["train_accuracy"] >= 1.0:
        log(f"overfit reached 100% train accuracy after {len(history)} epochs")
        return f"overfit reached 100% train accuracy after {len(history)} epochs"
    log(f"warning: overfit did NOT reach 100% train accuracy in {epochs} epochs: a model that "
        f"cannot memorise {n} images has a bug (or needs a higher learning rate / more epochs)")
    return f"overfit did NOT reach 100% train accuracy in {epochs} epochs"
