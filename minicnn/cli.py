"""The ``minicnn`` command.

    minicnn train --model small_cnn --epochs 8 --out runs/demo        # the shipped sample
    minicnn train --model resnet20 --data cifar10 --data-dir data --epochs 30 --batch-size 128 \\
                  --lr 0.1 --augment --out runs/r20
    minicnn train --resume --out runs/r20              # continue an interrupted run, bit for bit
    minicnn train --model small_cnn --overfit 50 --out runs/overfit    # sanity check
    minicnn evaluate runs/r20 [runs/other ...]         # one JSON object; several runs = ensemble
    minicnn plot runs/demo                             # curves, filters, feature maps, confusion
    minicnn data download cifar10 [--dest data]
    minicnn models                                     # the zoo with parameter counts
    minicnn summary resnet50 --input 3x224x224
    minicnn gradcheck                                  # numeric vs analytic gradients of every op

`minicnn train` measures the test images after every epoch: the val_* columns of
history.json are test-set numbers (there is no separate validation split).

Exit codes: 0 success, 1 training diverged / overfit test failed / gradcheck failed,
2 bad arguments or unreadable files, 130 interrupted (a checkpoint was saved).
"""
import argparse
import contextlib
import json
import math
import os
import sys

import numpy as np

# Defaults of `minicnn train`, applied after parsing so that `--resume` can tell which
# options were given on its command line (those override the saved ones).
TRAIN_DEFAULTS = {
    "model": None, "data": None, "data_dir": None, "epochs": 10, "batch_size": 128, "lr": 0.05,
    "optimizer": "sgd", "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
    "schedule": "cosine", "warmup": 0, "augment": False, "seed": 0, "overfit": None,
    "backend": "numpy", "limit": None, "num_classes": None,
}
DEFAULT_CIFAR_DIR = "data"


class CLIError(Exception):
    """A problem with the command line or its files: printed as `minicnn: error: ...`, exit 2."""


def _err(msg):
    print(f"minicnn: error: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- data
def load_data(kind=None, data_dir=None, limit=None):
    """(x_train, y_train, x_test, y_test, description) for --data/--data-dir/--limit.

    Without --data and --data-dir: the CIFAR-10 sample shipped in the package.  With
    --data-dir only: CIFAR-10 there.  --limit N keeps the first N training and N test images.
    """
    from minicnn import data
    if kind is None:
        kind = "cifar10" if data_dir else "sample"
    if kind == "sample":
        if data_dir:
            raise CLIError("--data sample takes no --data-dir (the sample is inside the package)")
        arrays = data.load_sample()
        desc = "the CIFAR-10 sample shipped with minicnn"
    elif kind == "cifar10":
        path = data_dir or DEFAULT_CIFAR_DIR
        try:
            arrays = data.load_cifar10(path)
        except ValueError as e:
            raise CLIError(f"{e}\n  (download it with: minicnn data download cifar10 --dest {path})") from None
        desc = f"CIFAR-10 from {path}"
    elif kind == "mnist":
        if not data_dir:
            raise CLIError("--data mnist needs --data-dir DIR holding the four MNIST idx files")
        try:
            arrays = data.load_mnist(data_dir)
        except ValueError as e:
            raise CLIError(str(e)) from None
        desc = f"MNIST from {data_dir}"
    else:
        raise CLIError(f"--data: expected cifar10, mnist or sample, received {kind!r}")
    x_train, y_train, x_test, y_test = arrays
    if limit is not None:
        if limit < 1:
            raise CLIError(f"--limit: expected an int >= 1, received {limit}")
        x_train, y_train, x_test, y_test = x_train[:limit], y_train[:limit], x_test[:limit], y_test[:limit]
    return x_train, y_train, x_test, y_test, desc


def class_names(kind, num_classes):
    from minicnn import data
    if kind in (None, "sample", "cifar10") and num_classes == 10:
        return tuple(data.CIFAR10_CLASSES)
    return tuple(str(i) for i in range(num_classes))


# ------------------------------------------------------------------------- models
def create_model(name, num_classes, in_channels, seed):
    """models.create(name, ...) with in_channels when the family takes it; returns (model, kwargs)."""
    from minicnn import models
    if name not in models.names():
        raise CLIError(f"--model: expected one of {', '.join(models.names())}, received {name!r}")
    kwargs = {"num_classes": int(num_classes), "in_channels": int(in_channels)}
    try:
        model = models.create(name, rng=seed, **kwargs)
    except TypeError:
        if in_channels != 3:
            raise CLIError(f"model {name!r} does not take in_channels; it cannot read "
                           f"{in_channels}-channel images") from None
        kwargs.pop("in_channels")
        model = models.create(name, rng=seed, **kwargs)
    return model, kwargs


def make_optimizer(args, model):
    from minicnn import optim
    params = list(model.parameters())
    if args.optimizer == "sgd":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                         nesterov=args.nesterov)
    if args.optimizer == "adam":
        return optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "rmsprop":
        return optim.RMSProp(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    raise CLIError(f"--optimizer: expected sgd, adam or rmsprop, received {args.optimizer!r}")


def make_schedule(args, optimizer):
    """The per-epoch LR schedule for --schedule (and --warmup epochs of linear ramp first)."""
    from minicnn import optim
    epochs = max(1, args.epochs - args.warmup)
    kind = args.schedule
    if kind == "cosine":
        sched = optim.CosineAnnealingLR(optimizer, T_max=epochs)
    elif kind == "step":
        sched = optim.StepLR(optimizer, step_size=max(1, epochs // 3))
    elif kind == "multistep":
        # He et al.'s CIFAR recipe divides by 10 at 50% and 75% of training.
        ms = sorted({max(1, int(epochs * 0.5)), max(2, int(epochs * 0.75))})
        sched = optim.MultiStepLR(optimizer, milestones=ms)
    elif kind == "plateau":
        if args.warmup:
            raise CLIError("--warmup cannot be combined with --schedule plateau")
        return optim.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=2)
    elif kind == "none":
        sched = None
    else:
        raise CLIError(f"--schedule: expected cosine, step, multistep, plateau or none, received {kind!r}")
    if args.warmup:
        return optim.LinearWarmup(optimizer, args.warmup, after=sched)
    return sched


# -------------------------------------------------------------------------- train
def cmd_train(args):
    from minicnn import backend, train
    out = args.out
    given = {k: v for k, v in vars(args).items() if k in TRAIN_DEFAULTS and v is not None}
    if "data_dir" in given:
        given["data_dir"] = os.path.abspath(given["data_dir"])  # saved absolute, compared so
    if args.resume:
        ckpt_file = train.checkpoint_path(out)
        if not os.path.exists(ckpt_file):
            raise CLIError(f"--resume: {ckpt_file} does not exist (nothing to resume)")
        from minicnn import checkpoint
        try:
            saved = checkpoint.load(ckpt_file).config.get("cli", {})
        except checkpoint.CheckpointError as e:
            raise CLIError(str(e)) from None
        settings = dict(TRAIN_DEFAULTS)
        settings.update(saved)
        # Only the length of the run may change on resume: anything else would not continue it.
        changed = [k for k, v in given.items() if k != "epochs" and k in saved and saved[k] != v]
        if changed:
            raise CLIError(f"--resume continues the saved run; these options differ from it: "
                           f"{', '.join('--' + k.replace('_', '-') for k in changed)} "
                           "(only --epochs may change)")
        settings.update(given)
    else:
        settings = dict(TRAIN_DEFAULTS)
        settings.update(given)
        if not settings["model"]:
            raise CLIError("train: --model NAME is required (see `minicnn models`)")
    for k, v in settings.items():
        setattr(args, k, v)
    if args.overfit is not None and "epochs" not in given and not args.resume:
        args.epochs = 300  # an upper bound: the run stops at 100% train accuracy

    if args.backend != "numpy":
        try:
            backend.set_backend(args.backend)
        except (RuntimeError, ValueError) as e:
            raise CLIError(str(e)) from None
    x_train, y_train, x_test, y_test, desc = load_data(args.data, args.data_dir, args.limit)
    num_classes = args.num_classes or int(max(y_train.max(), y_test.max()) + 1)
    model, model_kwargs = create_model(args.model, num_classes, x_train.shape[1], args.seed)
    if args.backend != "numpy":
        model.to(args.backend)
    optimizer = make_optimizer(args, model)
    schedule = make_schedule(args, optimizer)
    cli_settings = {k: getattr(args, k) for k in TRAIN_DEFAULTS}
    config = {"model": args.model, "model_kwargs": model_kwargs, "data": args.data or
              ("cifar10" if args.data_dir else "sample"), "cli": cli_settings}
    epochs = f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}"
    print(f"minicnn train: {args.model} ({model.num_parameters():,} parameters) on {desc}: "
          f"{len(x_train):,} training / {len(x_test):,} test images, {epochs}, batch "
          f"{args.batch_size}, {args.optimizer} lr {args.lr:g}, schedule {args.schedule}"
          f"{', augment' if args.augment else ''}, backend {args.backend}", flush=True)
    val = None if args.overfit is not None else (x_test, y_test)
    try:
        history = train.fit(model, optimizer, (x_train, y_train), val=val, epochs=args.epochs,
                            batch_size=args.batch_size, augment=args.augment, schedule=schedule,
                            seed=args.seed, run_dir=out, resume=args.resume, overwrite=args.overwrite,
                            config=config, overfit=args.overfit,
                            progress=False if args.no_progress else None,
                            checkpoint_seconds=args.checkpoint_seconds,
                            log=lambda m: print(m, flush=True))
    except train.TrainingDiverged as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        if os.path.exists(train.checkpoint_path(out)):
            print(f"interrupted: the run is saved in {train.checkpoint_path(out)}; continue it with\n"
                  f"  minicnn train --resume --out {out}", file=sys.stderr)
        else:
            print("interrupted before the first checkpoint was written", file=sys.stderr)
        return 130
    if args.overfit is not None:
        ok = history and history[-1]["train_accuracy"] >= 1.0
        print(f"overfit test {'passed' if ok else 'FAILED'}: train accuracy "
              f"{history[-1]['train_accuracy']:.4f} on {min(args.overfit, len(x_train))} images "
              f"after {len(history)} epochs")
        return 0 if ok else 1
    m = train.evaluate(model, x_test, y_test)
    print(f"test accuracy {m['accuracy']:.4f} (top-5 {m['top5']:.4f}, loss {m['loss']:.4f}) on "
          f"{len(x_test):,} test images; run saved in {out}")
    return 0


# ----------------------------------------------------------------------- evaluate
def _load_run(run):
    from minicnn import checkpoint, train
    try:
        return train.load_model(run)
    except checkpoint.CheckpointError as e:
        raise CLIError(str(e)) from None


def _run_data(ckpt, data_dir, limit):
    cli = ckpt.config.get("cli", {})
    kind = cli.get("data") or ckpt.config.get("data")
    if limit is None:
        limit = cli.get("limit")  # the run's own test images unless asked otherwise
    if data_dir is None:
        data_dir = cli.get("data_dir")
    elif kind == "sample":
        kind = None  # --data-dir given for a run trained on the sample: read CIFAR-10 there
    return load_data(kind, data_dir, limit)


def cmd_evaluate(args):
    from minicnn import train
    loaded = [_load_run(r) for r in args.runs]
    _, _, x_test, y_test, _ = _run_data(loaded[0][1], args.data_dir, args.limit)
    if len(loaded) == 1:
        result = train.evaluate(loaded[0][0], x_test, y_test, batch_size=args.batch_size)
    else:
        result = train.evaluate_ensemble([m for m, _ in loaded], x_test, y_test, batch_size=args.batch_size)
    result["images"] = int(len(x_test))
    print(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- plot
def cmd_plot(args):
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError("minicnn plot needs matplotlib: pip install 'minicnn[plot]' (or pip install matplotlib)")
    import minicnn
    from minicnn import nn, train, viz
    from minicnn.data.loader import BatchLoader
    run = args.run
    out = args.out or run
    model, ckpt = _load_run(run)
    written = []
    history = ckpt.history
    try:
        history = train.load_history(run)
    except (OSError, ValueError):
        pass
    if history:
        written.append(viz.plot_history(history, os.path.join(out, "curves.png")))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if convs:
        written.append(viz.plot_filters(convs[0].weight.data, os.path.join(out, "filters.png")))
    x_train, y_train, x_test, y_test, _ = _run_data(ckpt, args.data_dir, args.limit)
    i = args.image
    if not 0 <= i < len(x_test):
        raise CLIError(f"--image: expected an index in 0..{len(x_test) - 1}, received {i}")
    mean, std = model.normalization if getattr(model, "normalization", None) is not None else (None, None)
    one = BatchLoader(x_test[i:i + 1], y_test[i:i + 1], 1, shuffle=False, mean=mean, std=std) \
        if mean is not None else BatchLoader(x_test[i:i + 1], y_test[i:i + 1], 1, shuffle=False, normalize=False)
    xb, _ = next(iter(one))
    maps = viz.feature_maps(model, xb.astype(next(model.parameters()).data.dtype))
    if maps:
        written.append(viz.plot_feature_maps(maps[:args.layers], os.path.join(out, "feature_maps.png"),
                                             image=x_test[i]))
    probs = train.predict(model, x_test)
    k = probs.shape[1]
    cm = train.confusion_matrix(y_test, probs.argmax(1), num_classes=k)
    kind = ckpt.config.get("data")
    written.append(viz.plot_confusion(cm, class_names(kind, k), os.path.join(out, "confusion.png")))
    shape = tuple(int(v) for v in x_test.shape[1:])
    written.append(viz.plot_layer_table(minicnn.summary(model, shape), os.path.join(out, "layer_table.png")))
    for p in written:
        print(p)
    return 0


# --------------------------------------------------------------------------- data
def cmd_data(args):
    from minicnn import data
    if args.what != "download" or args.dataset != "cifar10":
        raise CLIError("data: expected `minicnn data download cifar10 [--dest DIR]`")
    try:
        path = data.download_cifar10(args.dest, progress=not args.no_progress)
    except (ValueError, OSError) as e:
        _err(f"download failed: {e}")
        return 1
    print(f"CIFAR-10 is in {path}; train with: minicnn train --model resnet20 --data-dir {args.dest} ...")
    return 0


# ----------------------------------------------------------------- models/summary
@contextlib.contextmanager
def _shapes_only():
    """While active, minicnn.nn.init draws no random numbers: its samplers return zeros.

    A parameter count depends on the shapes only, and drawing VGG-16's 138 million
    normal samples takes seconds per model; ``np.zeros`` of that size costs nothing
    until written.  Every random initialiser of minicnn.nn.init goes through ``normal``
    or ``uniform``, the two functions replaced here (and restored on exit).
    """
    from minicnn.nn import init

    def zeros_normal(shape, std, rng=None, dtype=np.float32):
        return init.zeros(shape, dtype)

    def zeros_uniform(shape, bound, rng=None, dtype=np.float32):
        return init.zeros(shape, dtype)

    saved = init.normal, init.uniform
    init.normal, init.uniform = zeros_normal, zeros_uniform
    try:
        yield
    finally:
        init.normal, init.uniform = saved


def cmd_models(args):
    from minicnn import models
    rows = []
    for name in models.names():
        try:
            with _shapes_only():
                model = models.create(name, rng=0)
        except Exception as e:  # one broken family must not hide the others
            rows.append((name, f"error: {type(e).__name__}: {e}"))
            continue
        rows.append((name, f"{model.num_parameters():>13,}"))
        del model
    width = max(len(n) for n, _ in rows)
    print(f"{'model':<{width}}  {'parameters':>13}")
    for name, count in rows:
        print(f"{name:<{width}}  {count}")
    return 0


def cmd_summary(args):
    import minicnn
    from minicnn import models
    if args.name not in models.names():
        raise CLIError(f"summary: expected one of {', '.join(models.names())}, received {args.name!r}")
    kw = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = models.create(args.name, rng=0, **kw)
    try:
        print(minicnn.summary(model, args.input, batch_size=args.batch_size))
    except ValueError as e:
        raise CLIError(str(e)) from None
    return 0


# ------------------------------------------------------------------------ gradcheck
def _gradcheck_cases(rng):
    """(label, module, input) for every layer built on a functional op, small and float64.

    Inputs are kept away from non-differentiable points: ReLU inputs away from 0, max-pool
    windows without near-ties (a shuffled ramp with gaps of 0.05, far above the step h).
    """
    from minicnn import nn

    def normal(*shape):
        return rng.standard_normal(shape)

    def away_from_zero(*shape):
        return np.sign(normal(*shape)) * (0.2 + np.abs(normal(*shape)))

    def distinct(*shape):
        return (rng.permutation(int(np.prod(shape))) * 0.05 - 1.0).reshape(shape)

    return [
        ("conv2d", nn.Conv2d(3, 4, 3, stride=1, padding=1, rng=rng), normal(2, 3, 5, 5)),
        ("conv2d stride 2, groups 2", nn.Conv2d(4, 4, (3, 2), stride=2, padding=1, groups=2, rng=rng),
         normal(2, 4, 6, 5)),
        ("linear", nn.Linear(6, 5, rng=rng), normal(4, 6)),
        ("relu", nn.ReLU(), away_from_zero(2, 3, 4, 4)),
        ("sigmoid", nn.Sigmoid(), normal(2, 3, 4)),
        ("max_pool2d", nn.MaxPool2d(2, stride=2), distinct(2, 2, 4, 4)),
        ("avg_pool2d", nn.AvgPool2d(3, stride=2, padding=1), normal(2, 2, 5, 5)),
        ("global_avg_pool", nn.GlobalAvgPool2d(), normal(2, 3, 4, 4)),
        ("lrn", nn.LocalResponseNorm(3, alpha=1e-2, beta=0.75, k=2.0), normal(2, 5, 3, 3)),
        ("batchnorm2d", nn.BatchNorm2d(3), normal(4, 3, 3, 3)),
        ("batchnorm1d", nn.BatchNorm1d(5), normal(6, 5)),
        ("dropout", nn.Dropout(0.3, rng=rng), normal(3, 8)),
    ]


def cmd_bench(args):
    from minicnn import bench
    return bench.run(args)


def cmd_gradcheck(args):
    from minicnn import functional as F
    from minicnn import gradcheck
    rng = np.random.default_rng(args.seed)
    results = []
    for label, module, x in _gradcheck_cases(rng):
        report = gradcheck.check_module(module, x, rng=rng, floor=args.floor)
        for wrt, err in report.items():
            results.append((label, wrt, float(err)))
    # The loss: d/dscores of the mean cross-entropy.
    scores = rng.standard_normal((4, 6))
    y = rng.integers(0, 6, size=4)
    _, dscores = F.softmax_cross_entropy(scores, y)
    numeric = gradcheck.numeric_gradient(lambda s: F.softmax_cross_entropy(s, y)[0], scores)
    results.append(("softmax_cross_entropy", "scores", float(gradcheck.compare(dscores, numeric, args.floor))))
    width = max(len(r[0]) for r in results)
    print(f"{'op':<{width}}  {'gradient':<10}  rel. error (float64, centred differences)")
    for label, wrt, err in sorted(results, key=lambda r: -r[2]):
        flag = "" if err < args.tol else "   <-- above tolerance"
        print(f"{label:<{width}}  {wrt:<10}  {err:.2e}{flag}")
    worst = max(results, key=lambda r: r[2])
    ok = worst[2] < args.tol
    print(f"worst: {worst[2]:.2e} ({worst[0]}, d/{worst[1]}); tolerance {args.tol:g}: "
          f"{'all gradients agree' if ok else 'FAILED'}")
    return 0 if ok else 1


# ------------------------------------------------------------------------- parser
def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, received {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, received {v}")
    return v


def _nonneg_int(s):
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, received {v}")
    return v


def _float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {s!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, received {s!r}")
    return v


def build_parser():
    p = argparse.ArgumentParser(prog="minicnn", description="CNNs from scratch in NumPy: train, "
                                "evaluate and inspect models of the minicnn zoo.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a model; writes RUN_DIR/last.npz, history.json/.csv",
                       description="Train a zoo model. Without --data/--data-dir: the CIFAR-10 sample "
                       "shipped with minicnn. The test images are evaluated after every epoch (the val_* "
                       "columns of history.json). Defaults: " + ", ".join(
                           f"--{k.replace('_', '-')} {v}" for k, v in TRAIN_DEFAULTS.items()
                           if v is not None and v is not False))
    t.add_argument("--model", help="a name from `minicnn models` (small_cnn, resnet20, ...)")
    t.add_argument("--data", choices=["cifar10", "mnist", "sample"])
    t.add_argument("--data-dir", help="directory of the dataset (CIFAR-10: cifar-10-batches-py or its parent)")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--lr", type=_float, help="learning rate")
    t.add_argument("--optimizer", choices=["sgd", "adam", "rmsprop"])
    t.add_argument("--momentum", type=_float)
    t.add_argument("--nesterov", action="store_true", default=None)
    t.add_argument("--weight-decay", type=_float)
    t.add_argument("--schedule", choices=["cosine", "step", "multistep", "plateau", "none"])
    t.add_argument("--warmup", type=_nonneg_int, help="epochs of linear LR warm-up")
    t.add_argument("--augment", action="store_true", default=None,
                   help="random crops (4-pixel padding) and horizontal flips")
    t.add_argument("--seed", type=_nonneg_int, help="seeds the weights and the batch order")
    t.add_argument("--overfit", type=_positive_int, metavar="N",
                   help="sanity check: train on N images until 100%% train accuracy")
    t.add_argument("--limit", type=_positive_int, metavar="N", help="use the first N train and N test images")
    t.add_argument("--num-classes", type=_positive_int)
    t.add_argument("--backend", choices=["numpy", "cupy"])
    t.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    t.add_argument("--overwrite", action="store_true", help="start again even if --out holds a run")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--checkpoint-seconds", type=_float, default=600.0,
                   help="also checkpoint within an epoch every this many seconds (default 600)")
    t.add_argument("--out", required=True, metavar="RUN_DIR")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="print test loss/accuracy/top5 of a run as one JSON object "
                       "(several runs: their ensemble)")
    e.add_argument("runs", nargs="+", metavar="RUN_DIR")
    e.add_argument("--data-dir")
    e.add_argument("--limit", type=_positive_int)
    e.add_argument("--batch-size", type=_positive_int, default=256)
    e.set_defaults(func=cmd_evaluate)

    pl = sub.add_parser("plot", help="write curves.png, filters.png, feature_maps.png, confusion.png, layer_table.png")
    pl.add_argument("run", metavar="RUN_DIR")
    pl.add_argument("--out", help="directory for the PNGs (default RUN_DIR)")
    pl.add_argument("--data-dir")
    pl.add_argument("--limit", type=_positive_int)
    pl.add_argument("--image", type=_nonneg_int, default=0, help="index of the test image for feature maps")
    pl.add_argument("--layers", type=_positive_int, default=2, help="how many ReLU layers' maps to show")
    pl.set_defaults(func=cmd_plot)

    d = sub.add_parser("data", help="minicnn data download cifar10 [--dest DIR]")
    d.add_argument("what", choices=["download"])
    d.add_argument("dataset", choices=["cifar10"])
    d.add_argument("--dest", default=DEFAULT_CIFAR_DIR)
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=cmd_data)

    m = sub.add_parser("models", help="list the zoo with parameter counts")
    m.set_defaults(func=cmd_models)

    s = sub.add_parser("summary", help="per-layer table of a zoo model")
    s.add_argument("name")
    s.add_argument("--input", default="3x224x224", help="input shape without batch, e.g. 3x32x32")
    s.add_argument("--num-classes", type=_positive_int)
    s.add_argument("--batch-size", type=_positive_int, default=1)
    s.set_defaults(func=cmd_summary)

    from minicnn import bench
    b = sub.add_parser("bench", help="time the hot ops: Cython kernels vs the plain NumPy path",
                       description="Time conv, pooling, LRN and batch norm on the shapes of real "
                       "layers (float32), Cython kernels vs the plain NumPy path, with a GEMM as the "
                       "ceiling. For comparable numbers run it on an idle machine, with "
                       "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset.")
    bench.add_arguments(b)
    b.set_defaults(func=cmd_bench)

    g = sub.add_parser("gradcheck", help="check every op's backward against numeric gradients")
    g.add_argument("--seed", type=_nonneg_int, default=0)
    g.add_argument("--tol", type=float, default=1e-5, help="largest accepted relative error")
    g.add_argument("--floor", type=float, default=1e-6,
                   help="least denominator of the relative error (see minicnn.gradcheck.compare)")
    g.set_defaults(func=cmd_gradcheck)
    from minicnn import exercises
    exercises.add_subparser(sub)
    return p


def main(argv=None):
    """Entry point of the `minicnn` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CLIError as e:
        _err(str(e))
        return 2
    except ValueError as e:
        # minicnn raises ValueError for bad input with a message meant for the user.
        _err(str(e))
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`minicnn models | head`): not an error of ours.  Point
        # stdout at devnull so that Python's flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
