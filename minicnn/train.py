"""Training and evaluation: ``fit``, ``evaluate``, ensembles, and the sanity checks.

    model = minicnn.models.create("small_cnn", num_classes=10, rng=0)
    opt = minicnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    history = fit(model, opt, (x_train, y_train), val=(x_test, y_test), epochs=10,
                  batch_size=128, augment=True, run_dir="runs/demo")
    evaluate(model, x_test, y_test)    # {"loss": 1.31, "accuracy": 0.53, "top5": 0.94}

One training step is the CS231n loop, spelled out::

    scores = model(xb)                                  # forward, caches kept in the layers
    loss, dscores = F.softmax_cross_entropy(scores, yb)
    optimizer.zero_grad()
    model.backward(dscores)                             # fills every param.grad
    optimizer.step()

Around it, ``fit`` adds what makes a run safe to start and to leave alone:

* Inputs: uint8 images (or float arrays) are normalised per channel with the mean and
  standard deviation of the *training* set; the same statistics are kept on the model
  (``model.normalization``) and in the checkpoint, so ``evaluate`` uses them too.
* Sanity checks (Karpathy's "recipe for training neural networks"): the loss of the
  untrained model is reported next to ``ln(num_classes)``, what a classifier that
  knows nothing should score; constant or unnormalised inputs raise a warning;
  ``overfit=50`` trains on 50 images until it gets all of them right -- a model that
  cannot do that has a bug.
* Checkpoints (``RUN_DIR/last.npz``, see ``minicnn.checkpoint``) after every epoch, every
  ``checkpoint_seconds`` within a long epoch, and on Ctrl-C.  ``resume=True`` continues
  from it, in the middle of an epoch too, to bit-identical weights.
* A NaN or infinite loss stops the run before the bad step is applied, with the
  previous checkpoint left in place (``TrainingDiverged``).
* History: one dict per epoch, written to ``RUN_DIR/history.json`` and ``history.csv``.
"""
import contextlib
import csv
import io
import json
import math
import os
import signal
import sys
import time
import warnings

import numpy as np

from minicnn import backend, checkpoint
from minicnn.data.loader import BatchLoader, channel_stats
from minicnn.functional.loss import softmax_cross_entropy
from minicnn.nn.input_grad import skip_data_gradient

CHECKPOINT_NAME = "last.npz"
HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_top5",
                  "seconds", "cpu_seconds", "images_per_second", "lr")


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept.

    Attributes: ``epoch`` (1-based), ``batch`` (1-based within the epoch), ``loss``,
    ``checkpoint`` (path of the last good checkpoint, or None).
    """

    def __init__(self, message, epoch, batch, loss, checkpoint_path):
        super().__init__(message)
        self.epoch, self.batch, self.loss, self.checkpoint = epoch, batch, loss, checkpoint_path


class History(list):
    """The list of per-epoch dicts that ``fit`` returns, with what else the run found out.

    ``initial_loss`` (loss of the untrained model, or None when resumed),
    ``expected_initial_loss`` (ln of the number of classes), ``stopped`` (why the run
    ended: "epochs", "overfit reached 100%", ...), ``run_dir``.
    """
    initial_loss = None
    expected_initial_loss = None
    stopped = None
    run_dir = None


# ------------------------------------------------------------------ small helpers
def _device(model):
    """'numpy' or 'cupy': where the model's parameters live."""
    for p in model.parameters():
        return "cupy" if backend._is_cupy_array(p.data) else "numpy"
    return "numpy"


def _check_xy(where, x, y):
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"{where}: expected images x of shape (N, C, H, W), received "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if getattr(y, "ndim", None) != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: expected labels y of shape ({x.shape[0]},), received "
                         f"{getattr(y, 'shape', type(y).__name__)}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{where}: expected integer labels, received dtype {y.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: expected at least one image, received none")


def _pair(where, data):
    try:
        x, y = data
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected an (x, y) pair of arrays, received "
                         f"{type(data).__name__}") from None
    _check_xy(where, x, y)
    return x, y


def _atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file and os.replace (never half-written)."""
    checkpoint.atomic_write(path, lambda f: f.write(text), binary=False)


def save_history(history, run_dir):
    """Write ``history`` (list of per-epoch dicts) as RUN_DIR/history.json and history.csv."""
    rows = [dict(r) for r in history]
    _atomic_write_text(os.path.join(run_dir, "history.json"), json.dumps(rows, indent=1) + "\n")
    fields = list(HISTORY_FIELDS) + sorted({k for r in rows for k in r} - set(HISTORY_FIELDS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    _atomic_write_text(os.path.join(run_dir, "history.csv"), buf.getvalue())


def load_history(run_dir):
    """The list of per-epoch dicts saved in RUN_DIR/history.json."""
    with open(os.path.join(run_dir, "history.json"), encoding="utf-8") as f:
        return json.load(f)


def get_lr(optimizer):
    """The optimizer's current learning rate (``optimizer.lr``)."""
    lr = getattr(optimizer, "lr", None)
    if lr is None and hasattr(optimizer, "param_groups"):
        lr = optimizer.param_groups[0]["lr"]
    return None if lr is None else float(lr)


def _kept(path):
    return f"the last good checkpoint {path} is kept" if path else "no checkpoint had been written yet"


def _first_nonfinite_grad(model):
    """Name of the first parameter whose gradient holds NaN/inf, or None."""
    for name, p in model.named_parameters():
        if not bool(backend.get_array_module(p.grad).isfinite(p.grad).all()):
            return name
    return None


def _params_finite(model):
    return all(bool(backend.get_array_module(p.data).isfinite(p.data).all()) for p in model.parameters())


# ---------------------------------------------------------------- normalisation
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


def _safe_std(mean, std):
    """``std`` with constant channels (std ~ 0) set to 1, so that dividing by it is harmless."""
    return np.where(std <= 1e-8 * np.maximum(1.0, np.abs(mean)), 1.0, std)


def _training_stats(x):
    """Per-channel mean and std of the training images; constant channels get std 1."""
    mean, std = channel_stats(x)
    return mean, _safe_std(mean, std)


def _stats_for(model, x, mean, std, where):
    """The (mean, std) to normalise ``x`` with for ``model``, or (None, None) to use x as given."""
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ValueError(f"{where}: expected both mean and std, or neither")
        return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    stats = getattr(model, "normalization", None)
    if stats is not None:
        return np.asarray(stats[0], dtype=np.float64), np.asarray(stats[1], dtype=np.float64)
    if x.dtype == np.uint8:
        warnings.warn(f"{where}: the model has no normalisation statistics (it was not trained by "
                      "fit, and no mean/std were given); normalising with those of x itself",
                      UserWarning, stacklevel=3)
        return _training_stats(x)
    return None, None


def _eval_loader(model, x, y, batch_size, mean, std, where):
    mean, std = _stats_for(model, x, mean, std, where)
    if mean is None:
        return BatchLoader(x, y, batch_size, shuffle=False, normalize=False)
    return BatchLoader(x, y, batch_size, shuffle=False, mean=mean, std=std)


# ------------------------------------------------------------------- evaluation
def _log_softmax(scores):
    """Row-wise log-softmax in float64 (N, K) -> (N, K), stable for large scores."""
    s = scores.astype(np.float64)
    s -= s.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def _run_scores(model, loader):
    """Scores (N, K) float64 on the host for every batch of ``loader``, in eval mode."""
    was_training = model.training
    device = _device(model)
    model.eval()
    out = []
    try:
        for xb, _ in loader:
            xb = backend.to_backend(xb, device)
            # Parameters may be float64 (gradient checks); feed them what they hold.
            for p in model.parameters():
                if xb.dtype != p.data.dtype:
                    xb = xb.astype(p.data.dtype)
                break
            out.append(backend.asnumpy(model(xb)).astype(np.float64))
    finally:
        model.train(was_training)
    return np.concatenate(out)


def predict(model, x, batch_size=256, mean=None, std=None):
    """Class probabilities (N, K) float64 of ``model`` on images ``x`` (N, C, H, W), in eval mode.

    ``x``: uint8 images or floats; they are normalised with ``mean``/``std`` if given,
    else with the model's training statistics (``model.normalization``, set by ``fit``).
    """
    y = np.zeros(x.shape[0], dtype=np.int64)
    _check_xy("predict", x, y)
    loader = _eval_loader(model, x, y, batch_size, mean, std, "predict")
    return np.exp(_log_softmax(_run_scores(model, loader)))


def metrics_from_log_probs(log_probs, y):
    """{"loss", "accuracy", "top5"} from log-probabilities (N, K) and labels y (N,).

    ``loss`` is the mean cross-entropy; accuracies are fractions in [0, 1].  Top-5
    counts an image as right when its label is among the 5 highest scores (with fewer
    than 5 classes, among all of them, so top5 = 1).
    """
    y = backend.asnumpy(y).astype(np.int64)
    n, k = log_probs.shape
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"evaluate: expected labels in [0, {k - 1}], received labels in "
                         f"[{y.min()}, {y.max()}]")
    rows = np.arange(n)
    loss = float(-log_probs[rows, y].mean())
    accuracy = float((log_probs.argmax(axis=1) == y).mean())
    return {"loss": loss, "accuracy": accuracy, "top5": topk_accuracy(log_probs, y, 5)}


def topk_accuracy(scores, y, k=5):
    """Fraction of rows of ``scores`` (N, K) whose label ``y`` is among the ``k`` largest.

    Ties at the k-th place count in the image's favour only as far as ``argpartition``
    picks them; with real-valued scores ties are vanishingly rare.
    """
    scores = np.asarray(scores)
    y = np.asarray(y)
    kk = min(int(k), scores.shape[1])
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    return float((top == y[:, None]).any(axis=1).mean())


def evaluate(model, x, y, batch_size=256, mean=None, std=None):
    """Loss and accuracy of ``model`` on ``(x, y)``, in eval mode (BatchNorm running stats,
    no dropout).

    x: images (N, C, H, W), uint8 or float, normalised as in ``predict``; y: int labels (N,).
    Returns ``{"loss": mean cross-entropy, "accuracy": top-1 fraction, "top5": top-5 fraction}``.
    """
    _check_xy("evaluate", x, y)
    loader = _eval_loader(model, x, y, batch_size, mean, std, "evaluate")
    return metrics_from_log_probs(_log_softmax(_run_scores(model, loader)), y)


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts (K, K) int64: row = true class, column = predicted class.

    The diagonal holds the correct predictions; ``cm.sum(1)`` is the number of images
    of each class.  ``num_classes`` defaults to 1 + the largest label seen.
    """
    y_true = np.asarray(backend.asnumpy(y_true)).astype(np.int64).ravel()
    y_pred = np.asarray(backend.asnumpy(y_pred)).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: expected y_true and y_pred of one shape, received "
                         f"{y_true.shape} and {y_pred.shape}")
    k = num_classes if num_classes is not None else int(max(y_true.max(initial=-1),
                                                            y_pred.max(initial=-1)) + 1)
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= k):
        raise ValueError(f"confusion_matrix: expected labels in [0, {k - 1}]")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


# -------------------------------------------------------------------- ensembles
def ensemble_predict(models, x, batch_size=256):
    """Average of the softmax probabilities of several models (N, K) float64.

    Krizhevsky et al. (2012) averaged five (then seven) CNNs to cut the top-5 error
    from 18.2% to 16.4%/15.3%: members make different mistakes, so their mean is
    right more often.  ``models``: Modules, checkpoint files or run directories; each
    member normalises the images with its own training statistics.
    """
    members = [load_model(m)[0] if isinstance(m, (str, os.PathLike)) else m for m in models]
    if not members:
        raise ValueError("ensemble_predict: expected at least one model, received none")
    total = None
    for m in members:
        p = predict(m, x, batch_size)
        if total is not None and p.shape != total.shape:
            raise ValueError(f"ensemble_predict: members disagree on the number of classes "
                             f"({total.shape[1]} and {p.shape[1]})")
        total = p if total is None else total + p
    return total / len(members)


def evaluate_ensemble(models, x, y, batch_size=256):
    """``evaluate`` for an ensemble: {"loss", "accuracy", "top5", "members"}."""
    _check_xy("evaluate_ensemble", x, y)
    probs = ensemble_predict(models, x, batch_size)
    out = metrics_from_log_probs(np.log(np.maximum(probs, 1e-300)), y)
    out["members"] = len(models)
    return out


# ------------------------------------------------------------------ checkpoints
def checkpoint_path(run_dir):
    """Where ``fit`` keeps the checkpoint of a run: RUN_DIR/last.npz."""
    return os.path.join(os.fspath(run_dir), CHECKPOINT_NAME)


def load_model(path, rng=0):
    """Rebuild the model of a run from its checkpoint (a run directory or a .npz file).

    The model is created with ``minicnn.models.create(config["model"], **config["model_kwargs"])``
    and gets the saved weights and normalisation statistics.  Returns ``(model, checkpoint)``.
    """
    from minicnn import models
    path = os.fspath(path)
    if os.path.isdir(path):
        path = checkpoint_path(path)
    ckpt = checkpoint.load(path)
    name = ckpt.config.get("model")
    if not name:
        raise checkpoint.CheckpointError(
            f"checkpoint {path!r} does not name its model (config['model']); rebuild the model "
            "yourself and call checkpoint.load(path).restore(model)")
    model = models.create(name, rng=rng, **ckpt.config.get("model_kwargs", {}))
    ckpt.restore(model)
    if ckpt.config.get("mean") is not None:
        model.normalization = (np.asarray(ckpt.config["mean"]), np.asarray(ckpt.config["std"]))
    return model, ckpt


# ---------------------------------------------------------------- sanity checks
def initial_loss(model, x, y):
    """Loss of ``model`` on the batch (x, y) in training mode, leaving no trace.

    BatchNorm's running statistics and every Generator the model holds are restored
    afterwards, so calling this does not change the run that follows.  Returns
    ``(loss, ln(K))``: an untrained K-class classifier that spreads its bets evenly
    scores ln(K) (2.303 for 10 classes); much more means over-confident initial
    scores (a last layer initialised too large).
    """
    saved = model.state_dict()  # copies of the parameters and buffers
    rngs = checkpoint.module_rng_states(model)
    was_training = model.training
    try:
        model.train()
        scores = model(backend.to_backend(x, _device(model)))
        loss, _ = softmax_cross_entropy(scores, backend.to_backend(y, _device(model)))
    finally:
        model.load_state_dict(saved)
        checkpoint.set_module_rng_states(model, rngs)
        model.train(was_training)
    return loss, math.log(scores.shape[1])


def _no_regularisation(model, optimizer):
    """For the overfit test: weight decay 0 and dropout off (they fight memorisation)."""
    changed = []
    if getattr(optimizer, "weight_decay", 0):
        optimizer.weight_decay = 0.0
        changed.append("weight decay")
    for group in getattr(optimizer, "param_groups", []) or []:
        if isinstance(group, dict) and group.get("weight_decay"):
            group["weight_decay"] = 0.0
            if "weight decay" not in changed:
                changed.append("weight decay")
    for m in model.modules():
        if type(m).__name__ == "Dropout" and getattr(m, "p", 0):
            m.p = 0.0
            if "dropout" not in changed:
                changed.append("dropout")
    return changed


# -------------------------------------------------------------------------- fit
def _fmt(v):
    return "?" if v is None else f"{v:g}"


class _Interrupt:
    """Turn Ctrl-C into a flag checked between batches, so the state saved is consistent.

    A second Ctrl-C interrupts at once (the default behaviour).  Only possible in the
    main thread; elsewhere KeyboardInterrupt is handled where it lands.
    """

    def __init__(self, log):
        self.requested = False
        self._old = None
        self._log = log

    def __enter__(self):
        try:
            old = signal.getsignal(signal.SIGINT)
            if old is not None:  # None: a handler not set from Python, which we could not restore
                signal.signal(signal.SIGINT, self._handler)
                self._old = old
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._log("Ctrl-C: saving a checkpoint after this batch (press again to stop at once)")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _step_schedule(schedule, record):
    """Advance a per-epoch schedule; plateau schedules get the metric they watch."""
    if schedule is None:
        return
    if hasattr(schedule, "mode") and type(schedule).__name__ == "ReduceLROnPlateau":
        mode = getattr(schedule, "mode", "min")
        if mode == "max":
            metric = record["val_accuracy"] if record["val_accuracy"] is not None else record["train_accuracy"]
        else:
            metric = record["val_loss"] if record["val_loss"] is not None else record["train_loss"]
        schedule.step(metric)
    else:
        schedule.step()


def fit(model, optimizer, train, val=None, epochs=1, batch_size=128, augment=False, *,
        schedule=None, seed=0, run_dir=None, resume=False, overwrite=False, config=None,
        normalize=True, overfit=None, progress=None, on_batch=None, on_epoch=None,
        checkpoint_seconds=600.0, eval_batch_size=256, log=print):
    """Train ``model`` with ``optimizer`` for ``epochs`` epochs; returns the History (list of dicts).

    train, val: ``(x, y)`` pairs; x (N, C, H, W) uint8 images or floats, y int labels (N,).
        Both are normalised with the per-channel mean/std of the *training* images
        (``normalize=False`` uses x as given, after a warning if it looks unnormalised).
    batch_size: images per step; augment: random 4-pixel-padded crops and flips.
    schedule: a per-epoch LR schedule (``step()`` after each epoch; ReduceLROnPlateau gets
        the validation accuracy or loss it watches).
    seed: seeds the order and augmentation of the batches.
    run_dir: directory for last.npz, history.json/.csv and config.json (None: nothing saved).
    resume: continue from RUN_DIR/last.npz (model, optimizer and schedule must be built as
        for the original run; their state is overwritten).  An existing checkpoint is
        never overwritten by a fresh run unless ``overwrite=True``.
    config: JSON-able dict stored in the checkpoint (the CLI puts the model name there).
    overfit: an int n: train on the first n images only, without augmentation, weight
        decay or dropout, until every one of them is classified right (at most ``epochs``).
    progress: show a tqdm bar (None: only when stderr is a terminal).
    on_batch(info), on_epoch(record): callbacks; raising KeyboardInterrupt from them
        behaves like Ctrl-C.
    checkpoint_seconds: also save within an epoch when this many seconds have passed since
        the last save (None: only at the end of each epoch and on Ctrl-C).
    eval_batch_size: batch size of the validation pass.
    log: function called with each message (print by default).

    Each history record holds epoch (1-based), train_loss, train_accuracy, val_loss,
    val_accuracy, val_top5 (None without val), seconds (wall clock, validation included),
    cpu_seconds (CPU time of the process), images_per_second and lr (the rate used during
    the epoch).  Raises TrainingDiverged on a NaN/inf loss and re-raises
    KeyboardInterrupt after saving a checkpoint.
    """
    x, y = _pair("fit: train", train)
    if val is not None:
        val = _pair("fit: val", val)
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"fit: expected {name} as an int >= 1, received {v!r}")
    log = log or (lambda msg: None)
    history = History()
    history.run_dir = run_dir

    if overfit is not None:
        n = int(overfit)
        if n < 1:
            raise ValueError(f"fit: expected overfit as an int >= 1, received {overfit!r}")
        x, y = x[:n], y[:n]
        augment = False
        batch_size = min(batch_size, len(x))
        changed = _no_regularisation(model, optimizer)
        log(f"overfit test: {len(x)} images, no augmentation"
            + (f", {' and '.join(changed)} switched off" if changed else "")
            + f"; training until 100% train accuracy (at most {epochs} epochs)")

    ckpt_file = checkpoint_path(run_dir) if run_dir is not None else None
    ckpt = None
    if ckpt_file is not None:
        if resume:
            if not os.path.exists(ckpt_file):
                raise checkpoint.CheckpointError(f"fit: nothing to resume, {ckpt_file} does not exist")
            ckpt = checkpoint.load(ckpt_file)
        elif os.path.exists(ckpt_file) and not overwrite:
            raise ValueError(f"fit: {ckpt_file} already exists; pass resume=True to continue that run "
                             "or overwrite=True to start again (CLI: --resume / --overwrite)")
        else:
            os.makedirs(run_dir, exist_ok=True)
            # A new run: the history of an overwritten one must not survive next to it.
            for name in ("history.json", "history.csv"):
                if os.path.exists(os.path.join(run_dir, name)):
                    os.remove(os.path.join(run_dir, name))
    elif resume:
        raise ValueError("fit: resume=True needs the run_dir that holds the checkpoint")

    # Normalisation statistics come from the training images (and are kept).
    mean, std = channel_stats(x)
    msgs = input_warnings(x, mean, std, normalized_by_us=normalize)
    for msg in msgs:
        warnings.warn(f"fit: {msg}", UserWarning, stacklevel=2)
        log(f"warning: {msg}")
    if normalize:
        if ckpt is not None and ckpt.config.get("mean") is not None:
            mean, std = np.asarray(ckpt.config["mean"]), np.asarray(ckpt.config["std"])
        else:
            std = _safe_std(mean, std)
        model.normalization = (mean, std)
        loader = BatchLoader(x, y, batch_size, shuffle=True, augment=augment, rng=seed, mean=mean, std=std)
    else:
        model.normalization = None
        loader = BatchLoader(x, y, batch_size, shuffle=True, augment=augment, rng=seed, normalize=False)

    run_config = dict(config or {})
    run_config.update({
        "epochs": int(epochs), "batch_size": int(batch_size), "augment": bool(augment), "seed": seed,
        "normalize": bool(normalize), "overfit": overfit,
        "mean": None if not normalize else [float(v) for v in mean],
        "std": None if not normalize else [float(v) for v in std],
        "train_images": int(len(x)), "val_images": None if val is None else int(len(val[0])),
    })

    start_epoch, done, sums = 0, 0, {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    if ckpt is not None:
        ckpt.restore(model, optimizer, schedule)
        loader.load_state_dict(ckpt.loader_state)
        start_epoch, done = ckpt.epoch, ckpt.batch
        history.extend(ckpt.history)
        run_config["initial_loss"] = ckpt.config.get("initial_loss")
        if ckpt.extra:
            sums = dict(ckpt.extra)
        log(f"resumed {ckpt_file}: {start_epoch} epoch(s)"
            + (f" and {done} batch(es)" if done else "") + " done")
    else:
        k = min(len(x), 256)
        probe = BatchLoader(x[:k], y[:k], k, shuffle=False, mean=mean, std=std) if normalize else \
            BatchLoader(x[:k], y[:k], k, shuffle=False, normalize=False)
        xb, yb = next(iter(probe))
        xb = xb.astype(next(model.parameters()).data.dtype, copy=False)
        history.initial_loss, history.expected_initial_loss = initial_loss(model, xb, yb)
        k_classes = round(math.exp(history.expected_initial_loss))
        note = ""
        if abs(history.initial_loss - history.expected_initial_loss) > 0.5 * history.expected_initial_loss:
            note = " -- far from it: check the initialisation of the last layer and the inputs"
        log(f"initial loss {history.initial_loss:.4f} (an untrained {k_classes}-class classifier "
            f"should be near ln({k_classes}) = {history.expected_initial_loss:.4f}){note}")
        run_config["initial_loss"] = history.initial_loss
    if run_dir is not None:
        _atomic_write_text(os.path.join(run_dir, "config.json"), json.dumps(run_config, indent=1) + "\n")

    if progress is None:
        progress = sys.stderr.isatty()
    device = _device(model)
    param_dtype = next(model.parameters()).data.dtype
    last_good = ckpt_file if ckpt is not None else None

    def save(epoch_done, batch_done, loader_state):
        nonlocal last_good
        if ckpt_file is None:
            return
        if not _params_finite(model):
            raise TrainingDiverged(
                f"training stopped: the weights hold NaN or inf after {epoch_done} epoch(s) and "
                f"{batch_done} batch(es); they were not saved and {_kept(last_good)}. Lower the "
                "learning rate.", epoch_done + (1 if batch_done else 0), batch_done, float("nan"),
                last_good)
        checkpoint.save(ckpt_file, model, optimizer=optimizer, schedule=schedule,
                        loader_state=loader_state, epoch=epoch_done, batch=batch_done,
                        config=run_config, history=list(history), extra=sums)
        last_good = ckpt_file

    epoch = start_epoch
    last_save = t0 = time.perf_counter()
    c0 = time.process_time()
    stop = _Interrupt(log)
    bar = None
    # The loader's state at the start of the epoch in progress plus the batches done is an
    # exact position (the loader redraws the epoch's permutation and augmentation from it).
    epoch_start = loader.state_dict()

    def position():
        return {"rng": epoch_start["rng"], "epoch": epoch_start["epoch"], "position": done}
    # The first conv's gradient with respect to the images is never used: skip it while
    # training (see minicnn.nn.input_grad); found on the first batch, restored on leaving.
    skip_dx, skipping = contextlib.ExitStack(), False
    try:
        with stop, skip_dx:
            while epoch < epochs:
                model.train()
                lr = get_lr(optimizer)
                epoch_start = loader.state_dict()
                t0 = time.perf_counter() - sums["seconds"]
                c0 = time.process_time() - sums.get("cpu_seconds", 0.0)
                if progress:
                    from tqdm.auto import tqdm
                    bar = tqdm(total=len(loader), initial=done, desc=f"epoch {epoch + 1}/{epochs}",
                               unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True)
                for xb, yb in loader:
                    if xb.dtype != param_dtype:
                        xb = xb.astype(param_dtype)
                    xb, ybd = backend.to_backend(xb, device), backend.to_backend(yb, device)
                    if not skipping:
                        skip_dx.enter_context(skip_data_gradient(model, xb))
                        skipping = True
                    scores = model(xb)
                    loss, dscores = softmax_cross_entropy(scores, ybd)
                    if not math.isfinite(loss):
                        raise TrainingDiverged(
                            f"training stopped: the loss became {loss} at epoch {epoch + 1}, batch "
                            f"{done + 1} (lr {_fmt(lr)}); the step was not applied and "
                            f"{_kept(last_good)}. Lower the learning rate, or check the inputs for "
                            "NaN/inf.", epoch + 1, done + 1, loss, last_good)
                    optimizer.zero_grad()
                    model.backward(dscores)
                    bad = _first_nonfinite_grad(model)
                    if bad is not None:
                        # A finite loss with a NaN gradient: a layer turned a NaN into a number in
                        # the forward pass (a ReLU written as a comparison maps NaN to 0).
                        raise TrainingDiverged(
                            f"training stopped: the gradient of {bad} became nan/inf at epoch "
                            f"{epoch + 1}, batch {done + 1} (lr {_fmt(lr)}, loss {loss:.4g}); the step "
                            f"was not applied and {_kept(last_good)}. Lower the learning rate, or "
                            "check the inputs and weights for NaN/inf.", epoch + 1, done + 1, loss, last_good)
                    optimizer.step()
                    pred = backend.asnumpy(scores.argmax(axis=1))
                    sums["loss"] += loss * len(yb)
                    sums["correct"] += int((pred == yb).sum())
                    sums["seen"] += len(yb)
                    done += 1
                    elapsed = time.perf_counter() - t0
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.3f}",
                                        acc=f"{sums['correct'] / sums['seen']:.3f}",
                                        img_s=f"{sums['seen'] / max(elapsed, 1e-9):.0f}", refresh=False)
                    if on_batch is not None:
                        on_batch({"epoch": epoch + 1, "batch": done, "loss": loss, "lr": lr})
                    if stop.requested:
                        raise KeyboardInterrupt
                    if checkpoint_seconds is not None and time.perf_counter() - last_save > checkpoint_seconds \
                            and done < len(loader):
                        sums["seconds"] = elapsed
                        sums["cpu_seconds"] = time.process_time() - c0
                        save(epoch, done, position())
                        last_save = time.perf_counter()
                if bar is not None:
                    bar.close()
                    bar = None
                train_seconds = time.perf_counter() - t0
                record = {"epoch": epoch + 1,
                          "train_loss": sums["loss"] / max(sums["seen"], 1),
                          "train_accuracy": sums["correct"] / max(sums["seen"], 1),
                          "val_loss": None, "val_accuracy": None, "val_top5": None}
                if val is not None:
                    m = evaluate(model, val[0], val[1], eval_batch_size,
                                 *((mean, std) if normalize else (None, None)))
                    record.update(val_loss=m["loss"], val_accuracy=m["accuracy"], val_top5=m["top5"])
                record["seconds"] = time.perf_counter() - t0
                # CPU time of this process (all its threads): on a busy machine, wall-clock
                # seconds measure the neighbours too, CPU seconds only this run.
                record["cpu_seconds"] = time.process_time() - c0
                record["images_per_second"] = sums["seen"] / max(train_seconds, 1e-9)
                record["lr"] = lr
                history.append(record)
                _step_schedule(schedule, record)
                epoch += 1
                done, sums = 0, {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
                save(epoch, 0, loader.state_dict())
                last_save = time.perf_counter()
                if run_dir is not None:
                    save_history(history, run_dir)
                val_txt = ("" if record["val_accuracy"] is None else
                           f" | val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.4f}")
                log(f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} "
                    f"acc {record['train_accuracy']:.4f}{val_txt} | {record['seconds']:.1f} s, "
                    f"{record['images_per_second']:.0f} img/s, lr {_fmt(lr)}")
                if on_epoch is not None:
                    on_epoch(record)
                if overfit is not None and record["train_accuracy"] >= 1.0:
                    history.stopped = f"overfit reached 100% train accuracy after {epoch} epochs"
                    log(history.stopped)
                    return history
                if stop.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        if ckpt_file is not None:
            sums["seconds"] = time.perf_counter() - t0 if done else 0.0
            sums["cpu_seconds"] = time.process_time() - c0 if done else 0.0
            save(epoch, done, position())
            if run_dir is not None and history:
                save_history(history, run_dir)
            log(f"interrupted at epoch {epoch + 1}, batch {done}: saved {ckpt_file}; "
                "continue with resume=True (CLI: --resume)")
        raise
    except BaseException:
        if bar is not None:
            bar.close()
        raise
    if overfit is not None:
        history.stopped = f"overfit did NOT reach 100% train accuracy in {epochs} epochs"
        log(f"warning: {history.stopped}: a model that cannot memorise {len(x)} images has a bug "
            "(or needs a higher learning rate / more epochs)")
    else:
        history.stopped = "epochs"
    return history
