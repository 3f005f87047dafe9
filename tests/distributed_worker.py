"""One small float64 training run, started by tests/test_distributed.py under `mpiexec -n N`
(or alone, for the single-process reference).  Rank 0 writes the final weights to --out.

    --mode fit     minicnn.train.fit(..., comm=world_comm()) -- the code under test
    --mode ghost   one process that runs each global batch as 2 slices with their own BN
                   statistics and adds the gradients: what per-rank BN on 2 ranks computes
"""
import argparse
import os
import signal

import numpy as np

from minicnn import distributed, models, nn, optim
from minicnn.data import load_sample
from minicnn.data.loader import BatchLoader
from minicnn.functional.loss import softmax_cross_entropy
from minicnn.train import fit


def build(name):
    if name == "nobn":   # conv -> relu -> pool -> linear: nothing couples the images of a batch
        rng = np.random.default_rng(0)
        return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(4, 4),
                             nn.Flatten(), nn.Linear(6 * 8 * 8, 10, rng=rng))
    return models.create("small_cnn", num_classes=10, width=0.25, rng=0)


def data(n):
    """The first n sample images, normalised float64 (so both runs read the same numbers)."""
    x, y, xt, yt = load_sample()
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True)
    return (x[:n] - mean) / std, y[:n], (xt[:40] - mean) / std, yt[:40]


def ghost(model, opt, x, y, args):
    """Per-rank BN by hand: every global batch split as 2 ranks split it (the same shard())."""
    loader = BatchLoader(x, y, args.batch_size, shuffle=True, augment=True, rng=args.seed,
                         normalize=False)
    model.train()
    for _ in range(args.epochs):
        for xb, yb in loader:
            opt.zero_grad()
            for rank in (0, 1):
                part = distributed.shard(len(yb), rank, 2)
                if part.stop > part.start:
                    scores = model(xb[part].astype(np.float64))
                    _, dscores = softmax_cross_entropy(scores, yb[part])
                    model.backward(dscores * ((part.stop - part.start) / len(yb)))
            opt.step()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="nobn")
    p.add_argument("--mode", default="fit", choices=("fit", "ghost"))
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--images", type=int, default=70)
    p.add_argument("--batch-size", type=int, default=23)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--out")
    p.add_argument("--run-dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-at", type=int, nargs=2, metavar=("EPOCH", "BATCH"),
                   help="Ctrl-C (KeyboardInterrupt) after this batch, as on_batch would")
    p.add_argument("--kill-rank", type=int, help="this rank kills itself (SIGKILL) after epoch 2")
    p.add_argument("--raise-rank", type=int, help="this rank raises in its 2nd batch")
    p.add_argument("--pid-file", help="written with this rank's pid after its 3rd batch")
    args = p.parse_args()

    comm = distributed.world_comm()
    rank = distributed.rank_of(comm)
    model = build(args.model).to(np.float64)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    x, y, xt, yt = data(args.images)

    def on_batch(info):
        if args.stop_at and [info["epoch"], info["batch"]] == args.stop_at:
            raise KeyboardInterrupt
        if args.raise_rank == rank and info["batch"] == 2:
            raise RuntimeError("a test failure on one rank")
        if args.pid_file and info["epoch"] == 1 and info["batch"] == 3:
            with open(f"{args.pid_file}.{rank}", "w") as f:
                f.write(str(os.getpid()))

    def on_epoch(record):
        if args.kill_rank == rank and record["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    arrays = {}
    if args.mode == "ghost":
        ghost(model, opt, x, y, args)
    else:
        with distributed.abort_on_error(comm):
            try:
                history = fit(model, opt, (x, y), val=(xt, yt), epochs=args.epochs,
                              batch_size=args.batch_size, augment=True, seed=args.seed,
                              normalize=False, run_dir=args.run_dir, resume=args.resume,
                              overwrite=not args.resume, progress=False, log=None,
                              on_batch=on_batch, on_epoch=on_epoch, checkpoint_seconds=None,
                              comm=comm, sync_bn=args.sync_bn)
            except KeyboardInterrupt:
                return
        # The sharded, reduced numbers of every epoch: training loss/accuracy and validation.
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_top5"):
            arrays[f"history.{key}"] = np.array([r[key] for r in history])
    if rank == 0 and args.out:
        np.savez(args.out, **model.state_dict(), **arrays)


if __name__ == "__main__":
    main()
