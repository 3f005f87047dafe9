"""Transfer learning, measured: a backbone pretrained on CIFAR-10 classes 0-4 learns classes 5-9.

The CS231n recipe ("Transfer learning with CNNs"): train a network on a big data set, then
for a new task with *little* data keep the network fixed and train only a new classifier
on top ("use the CNN as a feature extractor"); with *more* data fine-tune more of the
network, at a lower learning rate than the new layer.  This script tests it on the
CIFAR-10 sample: the two halves of CIFAR-10 play the big and the new data set.

1. pretrain ``--backbone`` (small_cnn) on the training images of classes 0-4;
2. for each of ``--shots`` (10, 50 and all training images per class of classes 5-9, the
   images drawn by the seed) learn the five new classes three ways:
   - scratch:  the same network, freshly drawn, trained on the new images only;
   - linear:   the pretrained network frozen, its penultimate-layer features extracted
               (``extract_features``) and a softmax classifier trained on them (``fit_linear``);
   - finetune: the pretrained network with a fresh 5-class head, every layer trained, the
               backbone at ``--backbone-lr-scale`` x the head's rate (``fine_tuning_groups``);
3. print each seed's test accuracy on classes 5-9 and the table of means.

    python docs/scripts/transfer.py --data-dir ../shared/datasets/cifar-10-batches-py-sample
    python docs/scripts/transfer.py --pretrain-epochs 1 --shots 2 --epochs 1 --seeds 1 \\
        --limit 200                                         # a smoke test (the docs test)

Without --data-dir: the CIFAR-10 sample shipped with minicnn (fewer images per class).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

OLD, NEW = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
METHODS = ("scratch", "linear", "finetune")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None, help="CIFAR-10 python pickles (default: the shipped sample)")
    p.add_argument("--limit", type=int, default=None, help="use the first N training and N test images")
    p.add_argument("--backbone", default="small_cnn")
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--shots", default="10,50,all", help="training images per new class ('all': every one)")
    p.add_argument("--epochs", default="60,30,15", help="epochs of scratch / finetune per --shots entry")
    p.add_argument("--probe-epochs", type=int, default=30, help="epochs of the linear classifier")
    p.add_argument("--seeds", type=int, default=3, help="seeds per shots setting ('all': 1 seed)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--backbone-lr-scale", type=float, default=0.1)
    p.add_argument("--json", default=None, help="also write every accuracy and the table here")
    return p.parse_args(argv)


def load(args):
    from minicnn import data
    if args.data_dir:
        x_train, y_train, x_test, y_test = data.load_cifar10(args.data_dir)
    else:
        x_train, y_train, x_test, y_test = data.load_sample()
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    return x_train, y_train, x_test, y_test


def classes(x, y, wanted):
    """The images of classes ``wanted``, relabelled 0..len(wanted)-1."""
    keep = np.isin(y, wanted)
    return x[keep], np.searchsorted(wanted, y[keep]).astype(np.int64)


def few_shot(x, y, shots, seed):
    """``shots`` images per class, drawn by ``seed`` (None: all of them)."""
    if shots is None:
        return x, y
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:shots] for c in np.unique(y)])
    return x[np.sort(pick)], y[np.sort(pick)]


def train_model(model, groups, train, epochs, args, seed):
    from minicnn import optim
    from minicnn.train import fit
    opt = optim.SGD(groups, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    fit(model, opt, train, epochs=epochs, batch_size=min(args.batch_size, len(train[0])),
        augment=True, schedule=optim.make_schedule("cosine", opt, epochs), seed=seed,
        progress=False, log=None)
    return model


def pretrain(args, old_train, old_test):
    from minicnn import models
    from minicnn.train import evaluate
    model = models.create(args.backbone, num_classes=len(OLD), rng=0)
    start = time.time()
    train_model(model, model.parameters(), old_train, args.pretrain_epochs, args, seed=0)
    acc = evaluate(model, *old_test)["accuracy"]
    print(f"pretrained {args.backbone} on classes 0-4: {len(old_train[0])} images, "
          f"{args.pretrain_epochs} epochs, test accuracy {acc:.3f} ({time.time() - start:.0f} s)",
          flush=True)
    return model


def scratch(backbone, train, test, epochs, args, seed):
    from minicnn import models
    from minicnn.train import evaluate
    model = models.create(args.backbone, num_classes=len(NEW), rng=seed)
    return evaluate(train_model(model, model.parameters(), train, epochs, args, seed), *test)["accuracy"]


def linear(backbone, train, test, epochs, args, seed):
    from minicnn.train import evaluate, extract_features, feature_images, fit_linear
    features = [extract_features(backbone, x) for x, _ in (train, test)]
    head, _ = fit_linear((features[0], train[1]), epochs=args.probe_epochs, lr=0.1,
                         batch_size=min(args.batch_size, len(train[0])), seed=seed, progress=False)
    return evaluate(head, feature_images(features[1]), test[1])["accuracy"]


def finetune(backbone, train, test, epochs, args, seed):
    from minicnn import models
    from minicnn.param_groups import fine_tuning_groups
    from minicnn.train import evaluate
    model = models.create(args.backbone, num_classes=len(OLD), rng=seed)
    model.load_state_dict(backbone.state_dict())
    model.reset_classifier(len(NEW), rng=seed)
    groups = fine_tuning_groups(model, head=model.classifier_names,
                                backbone_lr=args.lr * args.backbone_lr_scale)
    return evaluate(train_model(model, groups, train, epochs, args, seed), *test)["accuracy"]


def cpu_name():
    """The processor's model name (Linux), for the record of a timed run."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0]} ({len(names)} logical cores)" if names else "unknown CPU"


def main(argv=None):
    args = parse_args(argv)
    print(f"cpu: {cpu_name()}", flush=True)
    x_train, y_train, x_test, y_test = load(args)
    shots = [None if s == "all" else int(s) for s in args.shots.split(",")]
    epochs = [int(e) for e in args.epochs.split(",")]
    if len(epochs) != len(shots):
        raise SystemExit(f"--epochs: expected one value per --shots entry ({len(shots)})")
    start, cpu_start = time.time(), time.process_time()
    backbone = pretrain(args, classes(x_train, y_train, OLD), classes(x_test, y_test, OLD))
    new_train, new_test = classes(x_train, y_train, NEW), classes(x_test, y_test, NEW)
    print(f"new task: classes 5-9, {len(new_train[0])} training / {len(new_test[0])} test images; "
          f"scratch/finetune lr {args.lr}, finetune backbone lr {args.lr * args.backbone_lr_scale:g}",
          flush=True)
    results = {}
    for n, n_epochs in zip(shots, epochs):
        label = "all" if n is None else str(n)
        for seed in range(1 if n is None else args.seeds):
            train = few_shot(*new_train, n, seed)
            for method, run in zip(METHODS, (scratch, linear, finetune)):
                acc = run(backbone, train, new_test, n_epochs, args, seed)
                results.setdefault(label, {}).setdefault(method, []).append(acc)
                print(f"  {label:>3} per class ({len(train[0])} images), seed {seed}, {method:8s}: "
                      f"{acc:.3f}", flush=True)
    print_table(results, time.time() - start, time.process_time() - cpu_start)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "accuracy": results}, f, indent=1)
    return 0


def print_table(results, seconds, cpu_seconds):
    print(f"\ntest accuracy on classes 5-9 (mean over seeds; {seconds:.0f} s wall clock, "
          f"{cpu_seconds:.0f} s CPU in all)")
    print("| images per class | " + " | ".join(METHODS) + " |")
    print("|---:|" + "---:|" * len(METHODS))
    for label, by_method in results.items():
        cells = []
        for method in METHODS:
            accs = by_method[method]
            spread = f" ({min(accs):.3f}-{max(accs):.3f})" if len(accs) > 1 else ""
            cells.append(f"{np.mean(accs):.3f}{spread}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
