"""Why depth degrades without residuals: train plain20/plain56 and resnet20/resnet56 side by side.

He et al. (2016), Fig. 1 and Fig. 6: the deeper *plain* network has the higher
*training* error -- an optimisation failure, not overfitting -- while the residual
twins (same layers, same parameter count, identity shortcuts added) get better with
depth.  This script trains the four networks with the same data order, optimiser and
seed, records the loss of every step, prints a table and plots the training curves.

    python docs/scripts/resnet_depth.py                       # the run quoted in docs/resnet.md
    python docs/scripts/resnet_depth.py --epochs 1 --train-size 32 --batch-size 16   # a smoke test

Runs on the CIFAR-10 sample shipped with minicnn (minicnn.data.load_sample), or on
--data-dir (the real CIFAR-10 python pickles, or the 5000-image sample in ../shared).
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="plain20,plain56,resnet20,resnet56")
    p.add_argument("--data-dir", default=None, help="CIFAR-10 python pickles (default: the shipped sample)")
    p.add_argument("--train-size", type=int, default=None, help="use the first N training images")
    p.add_argument("--val-size", type=int, default=None, help="use the first N test images for validation")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=int, default=0,
                   help="ramp the learning rate up from lr/10 over this many epochs (He et al. warm "
                        "up ResNet-110 the same way)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "img", "resnet_depth.png"))
    p.add_argument("--json", default=None, help="also write the per-step losses and the table here")
    return p.parse_args(argv)


def smooth(values, k):
    """Running mean over the last k steps (a plot of raw minibatch losses is mostly noise)."""
    v = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    return np.array([(c[i + 1] - c[max(0, i + 1 - k)]) / (i + 1 - max(0, i + 1 - k)) for i in range(len(v))])


def main(argv=None):
    args = parse_args(argv)
    import minicnn.models as models
    from minicnn import data
    from minicnn.optim import SGD, LinearWarmup
    from minicnn.train import fit

    if args.data_dir:
        x_train, y_train, x_test, y_test = data.load_cifar10(args.data_dir)
    else:
        x_train, y_train, x_test, y_test = data.load_sample()
    n = args.train_size or len(x_train)
    nv = args.val_size or len(x_test)
    train, val = (x_train[:n], y_train[:n]), (x_test[:nv], y_test[:nv])
    print(f"data: {n} training images, {nv} validation images; {args.epochs} epochs of batch "
          f"{args.batch_size}, SGD lr {args.lr} momentum 0.9 weight decay 1e-4, "
          f"{args.warmup_epochs} warm-up epochs, seed {args.seed}")

    runs = {}
    for name in args.models.split(","):
        model = models.create(name, rng=args.seed)
        params = sum(int(p.data.size) for p in model.parameters())
        opt = SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
        schedule = LinearWarmup(opt, args.warmup_epochs) if args.warmup_epochs else None
        losses = []
        start = time.time()
        history = fit(model, opt, train, val=val, epochs=args.epochs, batch_size=args.batch_size,
                      schedule=schedule, seed=args.seed, progress=False, log=None,
                      on_batch=lambda info: losses.append(float(info["loss"])))
        seconds = time.time() - start
        last = history[-1]
        runs[name] = dict(params=params, losses=losses, seconds=seconds,
                          train_loss=[h["train_loss"] for h in history],
                          train_accuracy=[h["train_accuracy"] for h in history],
                          val_accuracy=last["val_accuracy"])
        print(f"{name:9s} {params:>9,} params  first-epoch train loss {history[0]['train_loss']:.3f}  "
              f"last-epoch train loss {last['train_loss']:.3f}  train acc {last['train_accuracy']:.3f}  "
              f"val acc {last['val_accuracy']:.3f}  ({len(losses)} steps, {seconds:.0f} s)", flush=True)

    plot(runs, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=1)
    return 0


def plot(runs, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    k = max(1, min(10, len(next(iter(runs.values()))["losses"]) // 10))
    for name, r in runs.items():
        style = "--" if name.startswith("plain") else "-"
        depth = "".join(ch for ch in name if ch.isdigit())
        color = "tab:blue" if depth == "20" else "tab:red"
        ax.plot(np.arange(1, len(r["losses"]) + 1), smooth(r["losses"], k), style, color=color, label=name)
    ax.set_xlabel("training step (minibatch)")
    ax.set_ylabel(f"training loss (running mean of {k} steps)")
    ax.set_title("plain (dashed) vs residual (solid), 20 (blue) vs 56 (red) layers")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, args.out)
    plt.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
