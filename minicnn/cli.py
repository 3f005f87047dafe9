"""The ``minicnn`` command.

    minicnn train --model small_cnn --epochs 8 --out runs/demo        # the shipped sample
    minicnn train --model resnet20 --data cifar10 --data-dir data --epochs 30 --batch-size 128 \\
                  --lr 0.1 --augment --out runs/r20
    minicnn train --resume --out runs/r20              # continue an interrupted run, bit for bit
    minicnn train --model small_cnn --overfit 50 --out runs/overfit    # sanity check
    minicnn train --model resnet18 --pretrained resnet18.pth --freeze backbone --out runs/ft
    mpiexec -n 4 minicnn train --model resnet20 --sync-bn --out runs/r20   # data-parallel over MPI
    mpiexec -n 4 minicnn mpi-check                     # ranks, hosts, versions, allreduce speed
    minicnn evaluate runs/r20 [runs/other ...]         # one JSON object; several runs = ensemble
    minicnn plot runs/demo                             # curves, filters, feature maps, confusion
    minicnn data download cifar10 [--dest data]
    minicnn models                                     # the zoo: family, dataset, input, parameters
    minicnn summary alexnet                            # at its designed input (227x227x3)
    minicnn summary googlenet --depth 1                # Inception modules as single rows
    minicnn summary resnet50 --model-arg stride_in_1x1=true --input 224x224x3   # the paper's v1
    minicnn weights info resnet18.pth                  # keys, shapes, dtypes; which zoo model fits
    minicnn weights convert resnet18.pth r18.safetensors
    minicnn predict --model resnet18 --weights resnet18.pth dog.jpg   # top-5 ImageNet classes
    minicnn gradcheck                                  # numeric vs analytic gradients of every op
    minicnn bench --quick                              # Cython kernels vs the plain NumPy path
    minicnn exercise new all --out my_layers.py        # write the layers yourself; then
    minicnn exercise check my_layers.py                # ... graded against minicnn's own
    minicnn exercise notebook conv_pool --out .        # the same exercises as a Jupyter notebook

Each command parses its options and calls the library (minicnn.data.load, models.kwargs_for,
optim.make_optimizer / make_schedule, train.fit, viz.plot_run, gradcheck.check_ops, ...):
whatever it does, a Python user can do with the same calls.

`minicnn train` measures the test images after every epoch: the val_* columns of
history.json are test-set numbers (there is no separate validation split).

`--model-arg KEY=VALUE` (train, summary, predict; repeatable) passes an option to the model's
constructor: VALUE is read as JSON or a Python literal (3, 0.8, true, "B", [16, 32]),
anything else as a string; a KEY the model does not take is refused with its options
listed (``models.options``).

Exit codes: 0 success, 1 training diverged / overfit test failed / gradcheck failed /
exercise check not passed, 2 bad arguments or unreadable files, 130 interrupted (a
checkpoint was saved).
"""
import argparse
import json
import math
import os
import sys

from minicnn import mpi_check


# Defaults of `minicnn train`, applied after parsing so that `--resume` can tell which
# options were given on its command line (those override the saved ones).
TRAIN_DEFAULTS = {
    "model": None, "data": None, "data_dir": None, "epochs": 10, "batch_size": 128, "lr": 0.05,
    "optimizer": "sgd", "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4,
    "schedule": "cosine", "warmup": 0, "augment": False, "seed": 0, "overfit": None,
    "backend": "numpy", "limit": None, "num_classes": None, "model_args": None, "sync_bn": False,
    "pretrained": None, "freeze": None, "lr_backbone": None,     # minicnn/transfer.py
}
DEFAULT_CIFAR_DIR = "data"


class CLIError(ValueError):
    """A problem with the command line or its files: printed as `minicnn: error: ...`, exit 2
    (as is every ValueError: minicnn raises those for bad input, with a message for the user)."""


def _err(msg):
    print(f"minicnn: error: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- data
def _dataset(kind, data_dir):
    """The dataset name and directory --data / --data-dir mean: without --data, CIFAR-10 in
    --data-dir if one is given, else the shipped sample; CIFAR-10 without --data-dir is in
    ./data (where `minicnn data download` puts it)."""
    kind = kind or ("cifar10" if data_dir else "sample")
    return kind, (data_dir or DEFAULT_CIFAR_DIR) if kind == "cifar10" else data_dir


def _load_data(kind, data_dir, limit):
    """(x_train, y_train, x_test, y_test, description) for --data / --data-dir / --limit."""
    from minicnn import data
    kind, data_dir = _dataset(kind, data_dir)
    try:
        arrays = data.load(kind, data_dir, limit)
    except ValueError as e:
        hint = {"cifar10": f"download it with: minicnn data download cifar10 --dest {data_dir}",
                "mnist": "--data-dir DIR: the directory of the four MNIST idx files",
                "sample": "--data sample takes no --data-dir"}
        raise CLIError(f"{e}\n  ({hint[kind]})") from None
    return (*arrays, data.describe(kind, data_dir))


# -------------------------------------------------------------------------- train
def _flag(key):
    """The command-line flag of a TRAIN_DEFAULTS key: 'batch_size' -> '--batch-size'."""
    return "--model-arg" if key == "model_args" else "--" + key.replace("_", "-")


def _train_settings(args):
    """Fill ``args`` with TRAIN_DEFAULTS, the saved run's options (--resume) and the given
    ones; returns the options given on this command line."""
    from minicnn import checkpoint, train
    given = {k: v for k, v in vars(args).items() if k in TRAIN_DEFAULTS and v is not None}
    if "model_args" in given:
        given["model_args"] = _parse_model_args(given["model_args"])
    for path in ("data_dir", "pretrained"):
        if path in given:
            given[path] = os.path.abspath(given[path])  # saved absolute, compared so
    settings = dict(TRAIN_DEFAULTS)
    if args.resume:
        ckpt_file = train.checkpoint_path(args.out)
        if not os.path.exists(ckpt_file):
            raise CLIError(f"--resume: {ckpt_file} does not exist (nothing to resume)")
        saved = checkpoint.load(ckpt_file).config.get("cli", {})
        settings.update(saved)
        # Only the length of the run may change on resume: anything else would not continue it.
        changed = [k for k, v in given.items() if k != "epochs" and k in saved and saved[k] != v]
        if changed:
            raise CLIError(f"--resume continues the saved run; these options differ from it: "
                           f"{', '.join(_flag(k) for k in changed)} "
                           "(only --epochs may change)")
    elif not given.get("model"):
        raise CLIError("train: --model NAME is required (see `minicnn models`)")
    settings.update(given)
    for k, v in settings.items():
        setattr(args, k, v)
    if args.overfit is not None and "epochs" not in given and not args.resume:
        args.epochs = 300  # an upper bound: the run stops at 100% train accuracy
    return given


def cmd_train(args):
    """`minicnn train`; under mpiexec/srun, data-parallel over the ranks (minicnn.distributed),
    where a failure on any rank aborts them all instead of leaving the others waiting."""
    from minicnn import distributed
    try:
        comm = distributed.world_comm()
    except RuntimeError as e:   # started by mpiexec without mpi4py installed
        raise CLIError(str(e)) from None
    if comm is None:
        return _train(args, None)
    with distributed.abort_on_error(comm):
        code = _train(args, comm)
        if code:
            raise SystemExit(code)
    return 0


def _train(args, comm):
    from minicnn import backend, models, optim, train, transfer
    say = print if comm is None or comm.Get_rank() == 0 else (lambda *a, **k: None)
    out = args.out
    given = _train_settings(args)
    if args.backend != "numpy":
        try:
            backend.set_backend(args.backend)
        except RuntimeError as e:   # no CuPy, or no GPU
            raise CLIError(str(e)) from None
    x_train, y_train, x_test, y_test, desc = _load_data(args.data, args.data_dir, args.limit)
    num_classes = args.num_classes or int(max(y_train.max(), y_test.max()) + 1)
    options = _model_options(args.model, args.model_args or {}, {
        "num_classes": "--num-classes", "in_channels": "the data (its images' channels)", "rng": "--seed"})
    model_kwargs = {**models.kwargs_for(args.model, num_classes, x_train.shape[1]), **options}
    model = transfer.build_model(_build, args.model, {"rng": args.seed, **model_kwargs},
                                 args.pretrained, args.freeze, args.resume, log=say)
    if args.backend != "numpy":
        model.to(args.backend)
    # --momentum's default (0.9) is SGD's and RMSProp's; Adam refuses only a given one.
    momentum = None if args.optimizer == "adam" and "momentum" not in given else args.momentum
    optimizer = optim.make_optimizer(args.optimizer, transfer.optimizer_params(model, args.lr_backbone),
                                     args.lr, momentum=momentum,
                                     weight_decay=args.weight_decay, nesterov=args.nesterov)
    schedule = optim.make_schedule(args.schedule, optimizer, args.epochs, args.warmup)
    cli_settings = {k: getattr(args, k) for k in TRAIN_DEFAULTS}
    config = {"model": args.model, "model_kwargs": model_kwargs,
              "data": _dataset(args.data, args.data_dir)[0], "cli": cli_settings}
    say(_run_line(args, model, options, f"{desc}: {len(x_train):,} training / {len(x_test):,} test "
                  "images", comm), flush=True)
    if args.sync_bn and comm is None:
        print("note: --sync-bn changes nothing in a single process (it sees the whole batch); "
              "start the run with mpiexec -n N", flush=True)
    val = None if args.overfit is not None else (x_test, y_test)
    try:
        history = train.fit(model, optimizer, (x_train, y_train), val=val, epochs=args.epochs,
                            batch_size=args.batch_size, augment=args.augment, schedule=schedule,
                            seed=args.seed, run_dir=out, resume=args.resume, overwrite=args.overwrite,
                            config=config, overfit=args.overfit,
                            progress=False if args.no_progress else None,
                            checkpoint_seconds=args.checkpoint_seconds,
                            log=lambda m: print(m, flush=True), comm=comm, sync_bn=args.sync_bn)
    except train.TrainingDiverged as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        _say_how_to_resume(train.checkpoint_path(out), out)
        return 130
    if args.overfit is not None:
        ok = history and history[-1]["train_accuracy"] >= 1.0
        say(f"overfit test {'passed' if ok else 'FAILED'}: train accuracy "
              f"{history[-1]['train_accuracy']:.4f} on {min(args.overfit, len(x_train))} images "
              f"after {len(history)} epochs")
        return 0 if ok else 1
    if comm is not None and comm.Get_rank() != 0:
        return 0
    m = train.evaluate(model, x_test, y_test)
    print(f"test accuracy {m['accuracy']:.4f} (top-5 {m['top5']:.4f}, loss {m['loss']:.4f}) on "
          f"{len(x_test):,} test images; run saved in {out}")
    return 0


def _run_line(args, model, options, data, comm):
    """The line `minicnn train` starts with: model, data, schedule, freezing, MPI ranks."""
    from minicnn import transfer
    epochs = f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}"
    tuning = transfer.describe(model, args.freeze, args.lr_backbone)
    tuning = f"; {tuning}" if tuning else ""
    with_options = "".join(f", {k}={v!r}" for k, v in options.items())
    ranks = "" if comm is None else f", {comm.Get_size()} MPI ranks{' (sync BN)' if args.sync_bn else ''}"
    return (f"minicnn train: {args.model} ({model.num_parameters():,} parameters{with_options}) on "
            f"{data}, {epochs}, batch {args.batch_size}, {args.optimizer} lr {args.lr:g}, schedule "
            f"{args.schedule}{', augment' if args.augment else ''}, backend {args.backend}{tuning}{ranks}")


def _say_how_to_resume(ckpt, out):
    if os.path.exists(ckpt):
        print(f"interrupted: the run is saved in {ckpt}; continue it with\n"
              f"  minicnn train --resume --out {out}", file=sys.stderr)
    else:
        print("interrupted before the first checkpoint was written", file=sys.stderr)


# ----------------------------------------------------------------------- evaluate
def _run_data(ckpt, data_dir, limit):
    """The data a run was trained on (its saved --data/--data-dir/--limit), as _load_data."""
    cli = ckpt.config.get("cli", {})
    kind = cli.get("data") or ckpt.config.get("data")
    if limit is None:
        limit = cli.get("limit")  # the run's own test images unless asked otherwise
    if data_dir is None:
        data_dir = cli.get("data_dir")
    elif kind == "sample":
        kind = None  # --data-dir given for a run trained on the sample: read CIFAR-10 there
    return _load_data(kind, data_dir, limit)


def cmd_evaluate(args):
    from minicnn import train
    loaded = [train.load_model(r) for r in args.runs]
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
    from minicnn import data, train, viz
    model, ckpt = train.load_model(args.run)
    try:
        history = train.load_history(args.run)
    except (OSError, ValueError):
        history = ckpt.history
    _, _, x_test, y_test, _ = _run_data(ckpt, args.data_dir, args.limit)
    k = ckpt.config.get("model_kwargs", {}).get("num_classes")
    classes = data.class_names(ckpt.config.get("data"), k) if k else None
    for path in viz.plot_run(model, x_test, y_test, args.out or args.run, history=history,
                             class_names=classes, image=args.image, layers=args.layers):
        print(path)
    return 0


# --------------------------------------------------------------------------- data
def cmd_data(args):
    from minicnn import data
    try:
        path = data.download_cifar10(args.dest, progress=not args.no_progress)
    except (ValueError, OSError) as e:
        _err(f"download failed: {e}")
        return 1
    print(f"CIFAR-10 is in {path}; train with: minicnn train --model resnet20 --data-dir {args.dest} ...")
    return 0


# --------------------------------------------------------- models/summary/gradcheck
def _parse_model_args(pairs):
    from minicnn.models import catalog
    return catalog.parse_options(pairs or [], where="--model-arg")


def _model_options(name, options, set_elsewhere):
    """Check the --model-arg options of model ``name``: each must be one of its options
    (models.options) and not one that another flag sets (``set_elsewhere``: key -> flag)."""
    from minicnn import models
    for key, flag in set_elsewhere.items():
        if key in options:
            raise CLIError(f"--model-arg {key}: {key} is set by {flag}, not by --model-arg")
    models.check_options(name, options)
    return dict(options)


def _build(name, **kw):
    """models.create, with a constructor's complaint about a keyword (an option that the
    model fixes itself, such as resnext50_32x4d's groups) turned into a command-line error."""
    from minicnn import models
    try:
        return models.create(name, **kw)
    except TypeError as e:
        if "keyword argument" not in str(e):
            raise
        raise CLIError(f"{name}: {e} (an option the model sets itself cannot be given)") from None


def cmd_models(args):
    from minicnn.models import catalog
    print(catalog.zoo_table())
    return 0


def cmd_summary(args):
    import minicnn
    from minicnn import models
    from minicnn.summary import parse_input
    options = _model_options(args.name, _parse_model_args(args.model_arg),
                             {"num_classes": "--num-classes", "rng": "summary (seed 0)"})
    if args.num_classes is not None:
        options["num_classes"] = args.num_classes
    if args.input is None:
        shape = models.input_shape(args.name, **options)
    else:
        channels = models.input_shape(args.name, **options)[0] if models.info(args.name).input_size else None
        shape = parse_input(args.input, channels, args.layout)
    model = _build(args.name, rng=0, **options)
    print(minicnn.summary(model, shape, batch_size=args.batch_size, depth=args.depth))
    return 0


def cmd_gradcheck(args):
    from minicnn import gradcheck
    results = gradcheck.check_ops(rng=args.seed, floor=args.floor)
    print(gradcheck.format_results(results, args.tol))
    return 0 if max(float(err) for _, _, err in results) < args.tol else 1


def cmd_weights(args):
    from minicnn import weights
    if args.action == "convert":
        if args.out is None:
            raise CLIError("weights convert: expected IN and OUT files, received only IN")
        weights.save(weights.load(args.file), args.out)
        print(f"wrote {args.out}")
        return 0
    print(weights.describe(args.file))
    return 0


# ------------------------------------------------------------ bench / exercise
# Both parse their own options (bench.main, exercises.main): their modules, and what
# they need (hypothesis for `exercise check`), are imported only when the command runs.
def cmd_bench(args):
    from minicnn import bench
    return bench.main(args.rest)


def cmd_exercise(args):
    from minicnn import exercises
    return exercises.main(args.rest)


# ------------------------------------------------------------------------- parser
def _at_least(minimum, convert=int):
    """An argparse type: an int (or with convert=float, a finite number) >= minimum."""
    what = "an integer" if convert is int else "a finite number"

    def parse(s):
        try:
            v = convert(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, received {s!r}") from None
        if not math.isfinite(v) or v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what} >= {minimum}, received {s!r}")
        return v
    return parse


_positive_int, _nonneg_int, _float = _at_least(1), _at_least(0), _at_least(0, float)


def _add_train_command(sub):
    from minicnn import transfer
    from minicnn.data import DATASETS
    from minicnn.optim import OPTIMIZERS
    from minicnn.schedules import SCHEDULES
    t = sub.add_parser("train", help="train a model; writes RUN_DIR/last.npz, history.json/.csv",
                       description="Train a zoo model. Without --data/--data-dir: the CIFAR-10 sample "
                       "shipped with minicnn. The test images are evaluated after every epoch (the val_* "
                       "columns of history.json). Defaults: " + ", ".join(
                           f"--{k.replace('_', '-')} {v}" for k, v in TRAIN_DEFAULTS.items()
                           if v is not None and v is not False))
    t.add_argument("--model", help="a name from `minicnn models` (small_cnn, resnet20, ...)")
    t.add_argument("--data", choices=DATASETS)
    t.add_argument("--data-dir", help="directory of the dataset (CIFAR-10: cifar-10-batches-py or its parent)")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--lr", type=_float, help="learning rate")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--momentum", type=_float)
    t.add_argument("--nesterov", action="store_true", default=None)
    t.add_argument("--weight-decay", type=_float)
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--warmup", type=_nonneg_int, help="epochs of linear LR warm-up")
    t.add_argument("--augment", action="store_true", default=None,
                   help="random crops (4-pixel padding) and horizontal flips")
    t.add_argument("--seed", type=_nonneg_int, help="seeds the weights and the batch order")
    t.add_argument("--overfit", type=_positive_int, metavar="N",
                   help="sanity check: train on N images until 100%% train accuracy")
    t.add_argument("--limit", type=_positive_int, metavar="N", help="use the first N train and N test images")
    t.add_argument("--num-classes", type=_positive_int)
    t.add_argument("--model-arg", dest="model_args", action="append", metavar="KEY=VALUE",
                   help="a model option, e.g. survival_prob=0.8 (repeatable; see `minicnn summary NAME`)")
    t.add_argument("--backend", choices=["numpy", "cupy"])
    t.add_argument("--sync-bn", action="store_true", default=None,
                   help="under mpiexec: BatchNorm with the statistics of the whole batch, not each rank's")
    t.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    t.add_argument("--overwrite", action="store_true", help="start again even if --out holds a run")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--checkpoint-seconds", type=_float, default=600.0,
                   help="also checkpoint within an epoch every this many seconds (default 600)")
    t.add_argument("--out", required=True, metavar="RUN_DIR")
    transfer.add_train_arguments(t)
    t.set_defaults(func=cmd_train)


def _add_summary_command(sub):
    s = sub.add_parser("summary", help="per-layer table of a zoo model: shapes, parameters, "
                       "multiply-adds, receptive fields")
    s.add_argument("name")
    s.add_argument("--input", help="one input without the batch axis, C x H x W (3x224x224) or "
                   "H x W x C (224x224x3); default: the size the model was designed for")
    s.add_argument("--layout", choices=("chw", "hwc"), help="the order of --input when its first and "
                   "last sizes both equal the model's channels (3x3x3)")
    s.add_argument("--depth", type=_nonneg_int, help="show modules N levels deep as one row each "
                   "(blocks with their concatenated / summed output; 0: the whole model)")
    s.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="a model option, e.g. stride_in_1x1=true (repeatable)")
    s.add_argument("--num-classes", type=_positive_int)
    s.add_argument("--batch-size", type=_positive_int, default=1)
    s.set_defaults(func=cmd_summary)


def build_parser():
    import minicnn
    from minicnn import predict
    p = argparse.ArgumentParser(prog="minicnn", description="CNNs from scratch in NumPy: train, "
                                "evaluate and inspect models of the minicnn zoo.")
    p.add_argument("--version", action="version", version=f"minicnn {minicnn.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    _add_train_command(sub)

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

    m = sub.add_parser("models", help="list the zoo: family, dataset, input size, classes, parameters")
    m.set_defaults(func=cmd_models)

    _add_summary_command(sub)

    # add_help=False: `minicnn bench --help` is answered by bench's own parser (see main).
    w = sub.add_parser("weights", help="minicnn weights info FILE | convert IN OUT: read .pth/.pt/.bin, "
                       ".safetensors, .npz (no code in the file runs); write .safetensors or .npz")
    w.add_argument("action", choices=("info", "convert"))
    w.add_argument("file", help="the weights file to read")
    w.add_argument("out", nargs="?", help="convert: the file to write (.safetensors or .npz)")
    w.set_defaults(func=cmd_weights)

    b = sub.add_parser("bench", add_help=False, help="time the hot ops: Cython kernels vs the plain "
                       "NumPy path (minicnn bench --help)")
    b.set_defaults(func=cmd_bench, takes_rest=True)

    g = sub.add_parser("gradcheck", help="check every op's backward against numeric gradients")
    g.add_argument("--seed", type=_nonneg_int, default=0)
    g.add_argument("--tol", type=float, default=1e-5, help="largest accepted relative error")
    g.add_argument("--floor", type=float, default=1e-6,
                   help="least denominator of the relative error (see minicnn.gradcheck.compare)")
    g.set_defaults(func=cmd_gradcheck)
    predict.add_subparser(sub)
    mpi_check.add_subparser(sub)
    x = sub.add_parser("exercise", add_help=False, help="assignment-style exercises with an automatic "
                       "checker: minicnn exercise new NAME --out FILE | check FILE | notebook NAME --out DIR")
    x.set_defaults(func=cmd_exercise, takes_rest=True)
    return p


def main(argv=None):
    """Entry point of the `minicnn` command; returns the exit code."""
    parser = build_parser()
    # bench and exercise hand what follows their name to their own parser (args.rest).
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "takes_rest", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    try:
        return args.func(args)
    except ValueError as e:   # CLIError included
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
