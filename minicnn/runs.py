"""A training run on disk: where its files live, when it may start or resume, and how it stops.

A run directory holds::

    RUN_DIR/last.npz        the checkpoint (minicnn.checkpoint): weights, optimizer, position
    RUN_DIR/config.json     what the run was asked to do (model, batch size, statistics, ...)
    RUN_DIR/history.json    one dict per finished epoch (and history.csv, the same as a table)

Rules: a fresh run never overwrites an existing checkpoint unless asked to
(``overwrite=True``), and then the old run's history goes with it; ``resume=True`` needs
the checkpoint to exist.  Every file is written atomically (a crash leaves the old file or
the new one, never half of one).  Ctrl-C becomes a request (``CtrlC``) that the training
loop honours between batches, so what it saves is consistent.  While it runs, a run shows
a progress bar (tqdm) and logs one line per epoch (``epoch_line``).
"""
import csv
import io
import json
import os
import signal
import sys

from minicnn import checkpoint

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


def checkpoint_path(run_dir):
    """Where ``fit`` keeps the checkpoint of a run: RUN_DIR/last.npz."""
    return os.path.join(os.fspath(run_dir), CHECKPOINT_NAME)


def open_run(run_dir, resume=False, overwrite=False, where="fit"):
    """Apply the start/resume rules to ``run_dir``; returns the Checkpoint to resume, or None.

    ``run_dir`` None: nothing is saved (and there is nothing to resume).  A fresh run creates
    the directory and removes an overwritten run's history.
    """
    if run_dir is None:
        if resume:
            raise ValueError(f"{where}: resume=True needs the run_dir that holds the checkpoint")
        return None
    path = checkpoint_path(run_dir)
    if resume:
        if not os.path.exists(path):
            raise checkpoint.CheckpointError(f"{where}: nothing to resume, {path} does not exist")
        return checkpoint.load(path)
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{where}: {path} already exists; pass resume=True to continue that run "
                         "or overwrite=True to start again (CLI: --resume / --overwrite)")
    os.makedirs(run_dir, exist_ok=True)
    for name in ("history.json", "history.csv"):
        if os.path.exists(os.path.join(run_dir, name)):
            os.remove(os.path.join(run_dir, name))
    return None


def _write_text(path, text):
    checkpoint.atomic_write(path, lambda f: f.write(text), binary=False)


def save_config(config, run_dir):
    """Write the run's configuration (a JSON-able dict) as RUN_DIR/config.json."""
    _write_text(os.path.join(run_dir, "config.json"), json.dumps(config, indent=1) + "\n")


def save_history(history, run_dir):
    """Write ``history`` (list of per-epoch dicts) as RUN_DIR/history.json and history.csv."""
    rows = [dict(r) for r in history]
    _write_text(os.path.join(run_dir, "history.json"), json.dumps(rows, indent=1) + "\n")
    fields = list(HISTORY_FIELDS) + sorted({k for r in rows for k in r} - set(HISTORY_FIELDS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    _write_text(os.path.join(run_dir, "history.csv"), buf.getvalue())


def load_history(run_dir):
    """The list of per-epoch dicts saved in RUN_DIR/history.json."""
    with open(os.path.join(run_dir, "history.json"), encoding="utf-8") as f:
        return json.load(f)


def epoch_line(record, epochs=None):
    """The line logged after each epoch: losses, accuracies, time, speed, learning rate."""
    val = ("" if record["val_accuracy"] is None else
           f" | val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.4f}")
    lr = "?" if record["lr"] is None else f"{record['lr']:g}"
    return (f"epoch {record['epoch']}{f'/{epochs}' if epochs else ''}: train loss "
            f"{record['train_loss']:.4f} acc {record['train_accuracy']:.4f}{val} | "
            f"{record['seconds']:.1f} s, {record['images_per_second']:.0f} img/s, lr {lr}")


def progress_bar(total, done, desc):
    """A tqdm bar over an epoch's ``total`` batches, ``done`` already (on stderr, not kept)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=done, desc=desc, unit="batch", leave=False, file=sys.stderr,
                dynamic_ncols=True)


def show_progress(bar, sums, seconds):
    """Advance ``bar`` by one batch; show the running loss, accuracy and images per second."""
    seen = sums["seen"]
    bar.update(1)
    bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}", acc=f"{sums['correct'] / seen:.3f}",
                    img_s=f"{seen / max(seconds, 1e-9):.0f}", refresh=False)


class CtrlC:
    """Context manager: Ctrl-C sets ``requested`` instead of raising, so the training loop can
    finish the batch in progress and save a consistent state.

    ``agreed=True`` (a run over MPI ranks): Ctrl-C sets ``pending`` instead, and only the
    distributed step sets ``requested`` -- when the ranks have agreed, in one exchange, that
    one of them was interrupted -- so every rank stops after the same batch.  (A rank that
    acted on its own Ctrl-C, arriving just after it had sent its flag, would leave the others
    waiting in the next exchange forever.)

    A second Ctrl-C interrupts at once (the default behaviour).  Only possible in the main
    thread; elsewhere ``requested`` stays False and KeyboardInterrupt lands where it lands.
    """

    def __init__(self, log=None, agreed=False):
        self.requested = False
        self.pending = False
        self.agreed = agreed
        self._presses = 0
        self._old = None
        self._log = log or (lambda msg: None)

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
        self._presses += 1
        if self._presses > 1:
            raise KeyboardInterrupt
        if self.agreed:
            self.pending = True
        else:
            self.requested = True
        self._log("Ctrl-C: saving a checkpoint after this batch (press again to stop at once)")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False
