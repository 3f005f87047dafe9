"""Training: ``Trainer``, a loop with named steps, and ``fit``, which runs one safely.

    model = minicnn.models.create("small_cnn", num_classes=10, rng=0)
    opt = minicnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    history = fit(model, opt, (x_train, y_train), val=(x_test, y_test), epochs=10,
                  batch_size=128, augment=True, run_dir="runs/demo")

One training step (``Trainer.step``) is the CS231n loop::

    scores = model(xb)                                  # forward, caches kept in the layers
    loss, dscores = softmax_cross_entropy(scores, yb)
    optimizer.zero_grad()
    model.backward(dscores)                             # fills every param.grad
    optimizer.step()

``train_epoch`` runs it over the shuffled batches, ``validate`` scores the validation set,
``end_epoch`` records, saves and logs; ``Trainer.fit(epochs)`` repeats the three.  ``fit``
builds the Trainer and adds what makes a run safe to start and to leave alone: inputs
normalised with the training set's per-channel statistics (kept as ``model.normalization``),
the sanity checks of ``minicnn.sanity`` (initial loss vs ln(K), input warnings, the overfit
test), checkpoints after every epoch, every ``checkpoint_seconds`` and on Ctrl-C with
bit-identical resume (the run directory's rules are in ``minicnn.runs``), and a stop before
a NaN step is applied (``TrainingDiverged``).  Evaluation is in ``minicnn.evaluation``.
"""
import contextlib
import math
import sys
import time

import numpy as np

from minicnn import backend, checkpoint, distributed
from minicnn.checks import check_int, check_pair
from minicnn.data.loader import BatchLoader, channel_stats
# Evaluation, the run's files and the sanity checks have their own modules; every name that
# was importable from minicnn.train still is.
from minicnn.evaluation import (confusion_matrix, ensemble_predict,  # noqa: F401
                                evaluate, evaluate_ensemble, extract_features, feature_images,
                                load_model, metrics_from_log_probs, predict, topk_accuracy)
from minicnn.functional.loss import softmax_cross_entropy
from minicnn.nn.classifier import final_linear
from minicnn.nn.input_grad import skip_data_gradient
from minicnn.nn.layers import Flatten
from minicnn.nn.module import Sequential
from minicnn.optim import make_optimizer, make_schedule
from minicnn.runs import (CHECKPOINT_NAME, HISTORY_FIELDS, CtrlC, History,  # noqa: F401
                          TrainingDiverged, checkpoint_path, epoch_line, load_history, open_run,
                          progress_bar, save_config, save_history, show_progress)
from minicnn.sanity import (initial_loss, input_warnings, normalization_stats,  # noqa: F401
                            overfit_mode, overfit_verdict, report_initial_loss, safe_std,
                            warn_about_inputs)


def get_lr(optimizer):
    """The optimizer's current learning rate (``optimizer.lr``: its first param group's)."""
    lr = getattr(optimizer, "lr", None)
    if lr is None and hasattr(optimizer, "param_groups"):
        lr = optimizer.param_groups[0]["lr"]
    return None if lr is None else float(lr)


def step_schedule(schedule, record):
    """Advance a per-epoch schedule; ReduceLROnPlateau gets the metric it watches."""
    if schedule is None:
        return
    if hasattr(schedule, "mode") and type(schedule).__name__ == "ReduceLROnPlateau":
        val = record["val_loss"] is not None
        if schedule.mode == "max":
            schedule.step(record["val_accuracy"] if val else record["train_accuracy"])
        else:
            schedule.step(record["val_loss"] if val else record["train_loss"])
    else:
        schedule.step()


def _all_finite(a):
    return bool(backend.get_array_module(a).isfinite(a).all())


_NO_SUMS = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0, "cpu_seconds": 0.0}


class Trainer:
    """Train ``model`` with ``optimizer`` on ``train`` = (x, y), one named step at a time.

        trainer = Trainer(model, opt, (x, y), val=(xv, yv), batch_size=64, augment=True)
        history = trainer.fit(10)                 # or by hand, epoch by epoch:
        record = trainer.train_epoch(); record.update(trainer.validate()); trainer.end_epoch(record)

    normalize: True (mean/std of the training images), False (x used as given) or a
        (mean, std) pair; kept as ``model.normalization``.
    run_dir: where ``save`` writes last.npz and the history (None: nothing is saved);
        ``config`` is stored in the checkpoint.  checkpoint_seconds: also save within an epoch.
    The other keywords are ``fit``'s.  Attributes: ``epoch`` (epochs done), ``batch`` (batches
    done in the epoch in progress), ``sums`` (its running loss/correct/seen/seconds),
    ``history``, ``loader``, ``last_saved`` (the last good checkpoint, or None).

    comm: an mpi4py communicator to train data-parallel over its ranks (``batch_size`` is
        the global batch; see ``minicnn.distributed``), or None; sync_bn: synchronized
        BatchNorm across the ranks.  ``dist`` is the ``DataParallel`` (None without comm).
        Every rank builds its Trainer; give ``run_dir``, ``progress`` and ``log`` to rank 0
        only (``fit`` does), or every rank writes the same files.
    """

    def __init__(self, model, optimizer, train, val=None, *, batch_size=128, augment=False,
                 schedule=None, seed=0, normalize=True, run_dir=None, config=None,
                 checkpoint_seconds=None, eval_batch_size=256, progress=False, on_batch=None,
                 on_epoch=None, log=None, comm=None, sync_bn=False):
        x, y = check_pair("Trainer: train", train)
        self.val = None if val is None else check_pair("Trainer: val", val)
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        if normalize is True:
            normalize = normalization_stats(x)
        self.stats = tuple(np.asarray(s, dtype=np.float64) for s in normalize) if normalize else None
        model.normalization = self.stats
        scaling = dict(zip(("mean", "std"), self.stats)) if self.stats else {"normalize": False}
        self.dist = None if comm is None else distributed.DataParallel(comm, model, sync_bn)
        make_loader = BatchLoader if self.dist is None else self.dist.loader
        self.loader = make_loader(x, y, check_int("Trainer", "batch_size", batch_size, 1),
                                  shuffle=True, augment=augment, rng=seed, **scaling)
        self.run_dir, self.config = run_dir, dict(config or {})
        self.checkpoint_seconds = checkpoint_seconds
        self.eval_batch_size, self.progress = eval_batch_size, progress
        self.on_batch, self.on_epoch, self.log = on_batch, on_epoch, log or (lambda msg: None)
        self.epoch, self.batch, self.sums, self.epochs = 0, 0, dict(_NO_SUMS), None
        self.history, self.last_saved = History(), None
        self._epoch_start = self._clock = None       # set while an epoch is in progress
        self._last_save, self._stop = time.perf_counter(), CtrlC(self.log, agreed=self.dist is not None)

    # -------------------------------------------------------------- one step
    def step(self, xb, yb):
        """One gradient step on a batch: xb (B, C, H, W) and labels yb (B,), on the model's
        device and in its dtype.  Returns (loss, number of images classified right).
        Over MPI ranks, ``DataParallel.step`` runs instead: the same, plus one Allreduce."""
        if self.dist is not None:
            return self.dist.step(self, xb, yb)
        scores = self.model(xb)
        loss, dscores = softmax_cross_entropy(scores, yb)
        self._check_loss(loss)                 # NaN/inf: stop before the step is applied
        self.optimizer.zero_grad()
        self.model.backward(dscores)
        self._check_gradients(loss)            # likewise
        self.optimizer.step()
        return loss, int((scores.argmax(axis=1) == yb).sum())

    def _check_loss(self, loss):
        if not math.isfinite(loss):
            self._diverged(f"the loss became {loss}", "", loss, "the inputs")

    def _check_gradients(self, loss):
        # A finite loss with a NaN gradient: a layer turned a NaN into a number in the
        # forward pass (a ReLU written as a comparison maps NaN to 0).
        for name, p in self.model.named_parameters():
            if not _all_finite(p.grad):
                self._diverged(f"the gradient of {name} became nan/inf", f", loss {loss:.4g}", loss,
                               "the inputs and weights")

    def _diverged(self, what, detail, loss, suspects):
        lr = get_lr(self.optimizer)
        raise TrainingDiverged(
            f"training stopped: {what} at epoch {self.epoch + 1}, batch {self.batch + 1} (lr "
            f"{'?' if lr is None else f'{lr:g}'}{detail}); the step was not applied and {self._kept()}. "
            f"Lower the learning rate, or check {suspects} for NaN/inf.",
            self.epoch + 1, self.batch + 1, loss, self.last_saved)

    def _kept(self):
        return (f"the last good checkpoint {self.last_saved} is kept" if self.last_saved
                else "no checkpoint had been written yet")

    # ------------------------------------------------------------- an epoch
    def train_epoch(self):
        """One pass over the shuffled training batches (what is left of it after a resume).
        Returns the epoch's record so far: epoch, train_loss, train_accuracy, lr, ..."""
        self.model.train()
        lr = get_lr(self.optimizer)
        self._epoch_start = self.loader.state_dict()
        self._clock = (time.perf_counter() - self.sums["seconds"],
                       time.process_time() - self.sums["cpu_seconds"])
        desc = f"epoch {self.epoch + 1}" + (f"/{self.epochs}" if self.epochs else "")
        bar = progress_bar(len(self.loader), self.batch, desc) if self.progress else None
        try:
            # The gradient with respect to the images is never used: the first conv skips it.
            with skip_data_gradient(self.model, self._probe()):
                for xb, yb in self.loader:
                    loss, correct = self.step(*self._to_model(xb, yb))
                    self._count(loss, correct, len(yb) if self.dist is None else self.loader.global_batch)
                    self._after_batch(loss, lr, bar)
        finally:
            if bar is not None:
                bar.close()
        if self.dist is not None:
            self.dist.average_running_stats(self.model)
        seen = max(self.sums["seen"], 1)
        return {"epoch": self.epoch + 1, "train_loss": self.sums["loss"] / seen,
                "train_accuracy": self.sums["correct"] / seen, "lr": lr,
                "images_per_second": self.sums["seen"] / max(self._elapsed()[0], 1e-9)}

    def _to_model(self, xb, yb):
        """A batch as the model takes it: on the parameters' device, in their dtype."""
        param = next(self.model.parameters()).data
        device = backend.device_of(param)
        xb = backend.to_backend(xb.astype(param.dtype, copy=False), device)
        return xb, backend.to_backend(yb, device)

    def _probe(self):
        """One blank image for ``skip_data_gradient`` to find the layer that reads the data."""
        param = next(self.model.parameters()).data
        return backend.get_array_module(param).zeros((1,) + self.loader.x.shape[1:], param.dtype)

    def _count(self, loss, correct, n):
        self.sums["loss"] += loss * n
        self.sums["correct"] += correct
        self.sums["seen"] += n
        self.batch += 1

    def _after_batch(self, loss, lr, bar):
        if bar is not None:
            show_progress(bar, self.sums, self._elapsed()[0])
        if self.on_batch is not None:
            self.on_batch({"epoch": self.epoch + 1, "batch": self.batch, "loss": loss, "lr": lr})
        if self._stop.requested:
            raise KeyboardInterrupt
        if (self.checkpoint_seconds is not None and self.batch < len(self.loader)
                and time.perf_counter() - self._last_save > self.checkpoint_seconds):
            self.save()

    def _elapsed(self):
        """(wall-clock, CPU) seconds of the epoch in progress, resumed parts included."""
        if self._clock is None:
            return self.sums["seconds"], self.sums["cpu_seconds"]
        return time.perf_counter() - self._clock[0], time.process_time() - self._clock[1]

    def validate(self):
        """{"val_loss", "val_accuracy", "val_top5"} of the model on ``val`` (None without it)."""
        if self.val is None:
            return {"val_loss": None, "val_accuracy": None, "val_top5": None}
        score = evaluate if self.dist is None else self.dist.evaluate
        m = score(self.model, *self.val, self.eval_batch_size, *(self.stats or (None, None)))
        return {"val_loss": m["loss"], "val_accuracy": m["accuracy"], "val_top5": m["top5"]}

    def end_epoch(self, record):
        """Close the epoch: time it, append ``record`` to the history, step the schedule, save
        the checkpoint and the history, log a line and call ``on_epoch``.  Returns the record."""
        # Seconds include validation; CPU seconds count this process only (wall-clock
        # seconds on a busy machine measure the neighbours too).
        wall, cpu = self._elapsed()
        record = {**{k: record.get(k) for k in HISTORY_FIELDS}, **record, "seconds": wall,
                  "cpu_seconds": cpu}
        self.history.append(record)
        step_schedule(self.schedule, record)
        self.epoch, self.batch, self.sums = self.epoch + 1, 0, dict(_NO_SUMS)
        self._epoch_start = self._clock = None
        self.save()
        if self.run_dir is not None:
            save_history(self.history, self.run_dir)
        self.log(epoch_line(record, self.epochs))
        if self.on_epoch is not None:
            self.on_epoch(record)
        return record

    def fit(self, epochs, stop_when=None):
        """Train until ``epochs`` epochs are done (a resumed run counts those before) or
        ``stop_when(record)`` is true after an epoch; returns the History.

        Ctrl-C finishes the batch in progress; then, as after a KeyboardInterrupt raised by a
        callback, a checkpoint is saved and KeyboardInterrupt re-raised.
        """
        self.epochs = check_int("Trainer.fit", "epochs", epochs, 1)
        self._stop = CtrlC(self.log, agreed=self.dist is not None)
        try:
            with self._stop:
                while self.epoch < self.epochs:
                    record = self.train_epoch()
                    record.update(self.validate())
                    record = self.end_epoch(record)
                    if stop_when is not None and stop_when(record):
                        break
                    if self._stop.requested:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            if self.run_dir is not None:
                self.save()
                if self.history:
                    save_history(self.history, self.run_dir)
                self.log(f"interrupted at epoch {self.epoch + 1}, batch {self.batch}: saved "
                         f"{self.last_saved}; continue with resume=True (CLI: --resume)")
            raise
        return self.history

    # ----------------------------------------------------- position, saving
    def state_dict(self):
        """The run's position, JSON-able: {"epoch": epochs done, "batch": batches done in the
        epoch in progress, "loader", "sums" (that epoch's running sums), "history"}.  The model
        (weights and Generators), optimizer and schedule keep their own states (``save``
        writes all of them)."""
        sums = dict(self.sums)
        if self.batch:
            sums["seconds"], sums["cpu_seconds"] = self._elapsed()
        # The loader's state when the epoch began plus the batches done is an exact position:
        # the loader redraws the epoch's permutation and augmentation from it.
        start = self._epoch_start or self.loader.state_dict()
        return {"epoch": self.epoch, "batch": self.batch, "sums": sums,
                "loader": {"rng": start["rng"], "epoch": start["epoch"], "position": self.batch},
                "history": [dict(r) for r in self.history]}

    def load_state_dict(self, state):
        """Continue from ``state_dict()``: the next ``train_epoch`` resumes at that batch."""
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self.loader.load_state_dict(state["loader"])
        self._epoch_start = dict(state["loader"]) if self.batch else None
        self._clock = None
        self.sums = {**_NO_SUMS, **(state.get("sums") or {})}
        self.history[:] = [dict(r) for r in state.get("history", [])]

    def resume(self, ckpt):
        """Continue from a checkpoint (``checkpoint.load``): weights, optimizer, schedule, position."""
        ckpt.restore(self.model, self.optimizer, self.schedule)
        if self.dist is not None:
            self.dist.own_streams(self.model)    # the checkpoint holds rank 0's Generators
        self.load_state_dict({"epoch": ckpt.epoch, "batch": ckpt.batch, "loader": ckpt.loader_state,
                              "sums": ckpt.extra, "history": ckpt.history})
        self.last_saved = ckpt.path
        self.log(f"resumed {ckpt.path}: {ckpt.epoch} epoch(s)"
                 + (f" and {ckpt.batch} batch(es)" if ckpt.batch else "") + " done")

    def save(self):
        """Write RUN_DIR/last.npz (nothing without a run_dir); weights holding NaN/inf are
        refused (TrainingDiverged), so the last good checkpoint stays."""
        self._last_save = time.perf_counter()
        if self.run_dir is None:
            return
        state = self.state_dict()
        if not all(_all_finite(p.data) for p in self.model.parameters()):
            raise TrainingDiverged(
                f"training stopped: the weights hold NaN or inf after {state['epoch']} epoch(s) and "
                f"{state['batch']} batch(es); they were not saved and {self._kept()}. Lower the "
                "learning rate.", state["epoch"] + (1 if state["batch"] else 0), state["batch"],
                float("nan"), self.last_saved)
        self.last_saved = checkpoint.save(
            checkpoint_path(self.run_dir), self.model, optimizer=self.optimizer,
            schedule=self.schedule, loader_state=state["loader"], epoch=state["epoch"],
            batch=state["batch"], config=self.config, history=state["history"], extra=state["sums"])


def fit(model, optimizer, train, val=None, epochs=1, batch_size=128, augment=False, *,
        schedule=None, seed=0, run_dir=None, resume=False, overwrite=False, config=None,
        normalize=True, overfit=None, progress=None, on_batch=None, on_epoch=None,
        checkpoint_seconds=600.0, eval_batch_size=256, log=print, comm=None, sync_bn=False):
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
    overfit: an int n: train on the first n images only, without augmentation, weight decay,
        dropout, stochastic depth or drop-path (restored afterwards), until every one of them
        is classified right (at most ``epochs``).
    progress: show a tqdm bar (None: only when stderr is a terminal).
    on_batch(info), on_epoch(record): callbacks; raising KeyboardInterrupt from them
        behaves like Ctrl-C.
    checkpoint_seconds: also save within an epoch when this many seconds have passed since
        the last save (None: only at the end of each epoch and on Ctrl-C).
    eval_batch_size: batch size of the validation pass.
    log: function called with each message (print by default).
    comm: an mpi4py communicator: train data-parallel over its ranks (``batch_size`` is the
        global batch); rank 0 alone writes ``run_dir``, logs and shows progress
        (``minicnn.distributed``).  sync_bn: synchronized BatchNorm across the ranks.

    Each history record holds epoch (1-based), train_loss, train_accuracy, val_loss,
    val_accuracy, val_top5 (None without val), seconds (wall clock, validation included),
    cpu_seconds (CPU time of the process), images_per_second and lr (the rate used during
    the epoch).  Raises TrainingDiverged on a NaN/inf loss and re-raises
    KeyboardInterrupt after saving a checkpoint.
    """
    x, y = check_pair("fit: train", train)
    val = None if val is None else check_pair("fit: val", val)
    epochs = check_int("fit", "epochs", epochs, 1)
    batch_size = check_int("fit", "batch_size", batch_size, 1)
    rank0 = distributed.rank_of(comm) == 0
    log = (log if rank0 else None) or (lambda msg: None)
    progress = progress if rank0 else False
    if overfit is not None:
        n = check_int("fit", "overfit", overfit, 1)
        x, y, augment, batch_size = x[:n], y[:n], False, min(batch_size, n)
    with overfit_mode(model, optimizer) if overfit is not None else contextlib.nullcontext() as off:
        if overfit is not None:
            switched = f", {', '.join(off)} switched off" if off else ""
            log(f"overfit test: {len(x)} images, no augmentation{switched}; training until 100% "
                f"train accuracy (at most {epochs} epochs)")
        ckpt = _open_run(run_dir, resume, overwrite, comm)
        mean, std = channel_stats(x)
        warn_about_inputs(x, mean, std, normalize, log)
        mean, std = [float(v) for v in mean], [float(v) for v in safe_std(mean, std)]
        if ckpt is not None and ckpt.config.get("mean") is not None:
            mean, std = ckpt.config["mean"], ckpt.config["std"]   # the statistics the run began with
        run_config = dict(config or {}, epochs=epochs, batch_size=batch_size, augment=bool(augment),
                          seed=seed, normalize=bool(normalize), overfit=overfit,
                          mean=mean if normalize else None, std=std if normalize else None,
                          train_images=len(x), val_images=None if val is None else len(val[0]),
                          world_size=distributed.size_of(comm), sync_bn=bool(sync_bn))
        writes = run_dir if rank0 else None     # rank 0 alone writes the run's files
        trainer = Trainer(model, optimizer, (x, y), val, batch_size=batch_size, augment=augment,
                          schedule=schedule, seed=seed, normalize=normalize and (mean, std),
                          run_dir=writes, config=run_config, checkpoint_seconds=checkpoint_seconds,
                          eval_batch_size=eval_batch_size, on_batch=on_batch, on_epoch=on_epoch,
                          log=log, progress=sys.stderr.isatty() if progress is None else progress,
                          comm=comm, sync_bn=sync_bn)
        history = trainer.history
        history.run_dir = run_dir
        if ckpt is not None:
            trainer.resume(ckpt)
            trainer.config["initial_loss"] = ckpt.config.get("initial_loss")
        else:
            history.initial_loss, history.expected_initial_loss = report_initial_loss(
                model, x, y, trainer.stats, log)
            trainer.config["initial_loss"] = history.initial_loss
        if writes is not None:
            save_config(trainer.config, writes)
        trainer.fit(epochs, stop_when=None if overfit is None else lambda r: r["train_accuracy"] >= 1)
    history.stopped = "epochs" if overfit is None else overfit_verdict(history, epochs, len(x), log)
    return history


def fit_linear(train, val=None, epochs=30, lr=0.1, batch_size=128, weight_decay=5e-4,
               num_classes=None, seed=0, log=None, **fit_options):
    """A softmax classifier (one Linear layer) trained on features; returns (classifier, history).

        feats = extract_features(backbone, x_train)            # (N, D): the frozen backbone's view
        head, history = fit_linear((feats, y_train), val=(extract_features(backbone, x_test), y_test))
        evaluate(head, feature_images(extract_features(backbone, x_new)), y_new)

    The transfer-learning recipe for little data (CS231n: a pretrained CNN as a fixed feature
    extractor, a linear classifier on top), run by ``fit`` itself: the features go in as
    images (N, D, 1, 1) (``feature_images``), one feature per channel, so fit's per-channel
    normalisation standardises each feature with the training set's mean and std (kept in
    ``classifier.normalization``), and its loop, sanity checks and checkpoints apply as they
    are.  SGD with momentum 0.9 and a cosine schedule; ``fit_options`` go to ``fit``
    (run_dir=, progress=, ...).  ``classifier`` is ``Sequential(Flatten(), Linear(D, K))``,
    K = ``num_classes`` or 1 + the largest label.
    """
    pairs = {"train": train} if val is None else {"train": train, "val": val}
    for where, pair in pairs.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"fit_linear: expected {where} as a (features, labels) pair, "
                             f"received {type(pair).__name__}")
        pairs[where] = check_pair(f"fit_linear: {where}", (feature_images(pair[0]), pair[1]))
    images, labels = pairs["train"]
    val = pairs.get("val")
    k = num_classes if num_classes is not None else int(labels.max()) + 1
    classifier = Sequential(Flatten(), final_linear(images.shape[1], check_int(
        "fit_linear", "num_classes", k, 1), rng=seed))
    optimizer = make_optimizer("sgd", classifier.parameters(), lr, momentum=0.9,
                               weight_decay=weight_decay)
    history = fit(classifier, optimizer, (images, labels), val=val, epochs=epochs,
                  batch_size=batch_size, schedule=make_schedule("cosine", optimizer, epochs),
                  seed=seed, log=log, **fit_options)
    return classifier, history


def _open_run(run_dir, resume, overwrite, comm):
    """``open_run`` on rank 0, its Checkpoint (or its error) sent to every rank: all ranks resume
    from the same bytes, or all raise."""
    if comm is None:
        return open_run(run_dir, resume, overwrite)
    ckpt = error = None
    if comm.Get_rank() == 0:
        try:
            ckpt = open_run(run_dir, resume, overwrite)
        except (ValueError, OSError) as e:
            error = e
    ckpt, error = comm.bcast((ckpt, error), root=0)
    if error is not None:
        raise error
    return ckpt
