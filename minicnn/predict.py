"""``minicnn predict``: a model's top classes for image files, preprocessed as torchvision does.

    minicnn predict --model resnet18 --weights resnet18-f37072fd.pth dog.jpg cat.png
    minicnn predict --weights runs/r20 plane.png          # a minicnn run: its model and statistics

    probs = classify_images(model, ["dog.jpg"], size=224)    # the same from Python: (N, K)

What happens to an image (``preprocess``), as torchvision's ImageNet evaluation transforms
``Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)``:

1. decode it with Pillow, as RGB (grey for a 1-channel model such as lenet5);
2. resize it, bilinearly, so that its *shorter* side is ``resize`` (256 for a 224x224
   model: the crop keeps the central 87.5%), the longer side in proportion, rounded down;
3. cut the central ``size`` x ``size`` square (top / left offset ``round((side - size) / 2)``);
4. scale to [0, 1] and subtract ``mean`` and divide by ``std``, per channel.

``size`` is the input the model was designed for (``models.input_shape``: 224 for the
ImageNet zoo, 32 for the CIFAR-10 models, whose images are whole 32x32 thumbnails, so
they are resized to 32 and not cropped further).  The statistics: ImageNet's for ImageNet
models, CIFAR-10's training set's for CIFAR models given as a weights file, and for a
minicnn run those its training measured (kept in its checkpoint).  Class names: ImageNet's
1000 (``imagenet_classes``, shipped as minicnn/data/imagenet_classes.txt, torchvision's
names for the ILSVRC-2012 classes in index order), CIFAR-10's 10, else the class numbers.

Pillow is an optional extra (``pip install 'minicnn[images]'``); nothing else needs it.
"""
import importlib.resources
import os

import numpy as np

# (ImageNet's mean and std are minicnn.models.googlenet_torchvision's IMAGENET_MEAN / _STD;
# imported where used, so that building the command line does not load the zoo.)
# Per-channel mean and std of CIFAR-10's 50,000 training images, in [0, 1] (the values
# torchvision-style CIFAR recipes normalise with), and MNIST's 60,000.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CROP_FRACTION = 0.875   # 224 / 256: the ImageNet evaluation crop


def imagenet_classes():
    """The 1000 ImageNet (ILSVRC-2012) class names in index order: 0 'tench' ... 999 'toilet tissue'."""
    text = importlib.resources.files("minicnn.data").joinpath("imagenet_classes.txt").read_text()
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise ValueError(f"imagenet_classes: expected 1000 names in imagenet_classes.txt, found {len(names)}")
    return names


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("predict: reading image files needs Pillow: pip install 'minicnn[images]' "
                         "(or pip install Pillow)") from None
    return Image


def load_image(path, channels=3):
    """The image file ``path`` decoded by Pillow, as RGB (``channels=3``) or grey (1)."""
    Image = _pillow()
    try:
        with Image.open(path) as image:
            return image.convert("RGB" if channels == 3 else "L")
    except (OSError, Image.DecompressionBombError) as e:   # missing, unreadable, not an image
        raise ValueError(f"predict: cannot read image {os.fspath(path)!r}: {e}") from None


def resize_shorter_side(image, side):
    """``image`` (PIL) resized bilinearly so that its shorter side is ``side`` (torchvision's
    ``Resize(side)``: the longer side becomes ``int(side * long / short)``)."""
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    other = int(side * long / short)
    size = (side, other) if w <= h else (other, side)
    return image.resize(size, _pillow().BILINEAR)


def center_crop(image, size):
    """The central ``size`` x ``size`` square of ``image`` (PIL), torchvision's ``CenterCrop``
    for an image at least that large."""
    w, h = image.size
    if w < size or h < size:
        raise ValueError(f"center_crop: expected an image of at least {size}x{size}, received {w}x{h}")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def preprocess(image, size, mean, std, resize=None):
    """A PIL image -> float32 (C, size, size), normalised (steps 2-4 of the module docstring).

    ``resize``: the shorter side before the crop (None: ``size / 0.875`` rounded, 256 for
    224, or ``size`` itself for images up to 32 pixels).
    """
    if resize is None:
        resize = size if size <= 32 else int(round(size / CROP_FRACTION))
    pixels = np.asarray(center_crop(resize_shorter_side(image, resize), size), dtype=np.float32)
    pixels = pixels.reshape(size, size, -1).transpose(2, 0, 1) / np.float32(255)
    mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(std, np.float32).reshape(-1, 1, 1)
    return (pixels - mean) / std


def top_k(probs, names, k=5):
    """[(class name, probability)] of the ``k`` most probable classes of one row ``probs`` (K,)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(names[i] if names is not None else str(i), float(probs[i])) for i in order]


# ---------------------------------------------------------------- which model, how to feed it
def _is_run(path):
    """True for a minicnn run directory or training checkpoint (it names its model)."""
    from minicnn import checkpoint
    if os.path.isdir(path):
        return True
    if not os.fspath(path).endswith(".npz"):
        return False
    try:
        return bool(checkpoint.load(path).config.get("model"))
    except (checkpoint.CheckpointError, OSError):
        return False


def load_for_prediction(weights, name=None, options=None):
    """(model in eval mode, how to feed it: {"channels", "size", "mean", "std", "classes"}).

    ``weights``: a run directory / its last.npz (the run's model, image size and
    statistics), or a weights file for zoo model ``name`` built with ``options``
    (``models.create(name, weights=, **options)``: ResNet-50's weights fit both its V1 and
    its V1.5, for one, and only ``stride_in_1x1=True`` computes what V1 weights were trained as).
    """
    from minicnn import data, models
    from minicnn.evaluation import load_model
    from minicnn.models.googlenet_torchvision import IMAGENET_MEAN, IMAGENET_STD
    options = dict(options or {})
    if _is_run(weights):
        if options:
            raise ValueError(f"predict: {weights} is a run, which knows its model's options: "
                             f"model options ({', '.join(sorted(options))}) are for a weights file")
        model, ckpt = load_model(weights)
        if name is not None and name != ckpt.config["model"]:
            raise ValueError(f"predict: {weights} is a run of {ckpt.config['model']}, not of {name}")
        kind = ckpt.config.get("data")
        channels = 1 if kind == "mnist" else 3
        k = ckpt.config["model_kwargs"].get("num_classes", 10)
        mean, std = (np.asarray(s, dtype=np.float64) / 255 for s in model.normalization)
        return model.eval(), {"channels": channels, "size": 28 if kind == "mnist" else 32,
                              "mean": mean, "std": std, "classes": data.class_names(kind, k)}
    if name is None:
        raise ValueError(f"predict: {weights} is a weights file: give --model NAME (the zoo model "
                         "it is for; `minicnn weights info FILE` lists those it fits)")
    models.check_options(name, options)
    model = models.create(name, weights=weights, **options).eval()
    channels, size, _ = models.input_shape(name, **options)
    k = _num_classes(model)
    dataset = models.info(name).dataset
    if dataset == "ImageNet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        classes = imagenet_classes() if k == 1000 else None
    else:
        mean, std = (MNIST_MEAN, MNIST_STD) if channels == 1 else (CIFAR10_MEAN, CIFAR10_STD)
        classes = data.class_names("cifar10" if dataset == "CIFAR-10" else "mnist", k)
    return model, {"channels": channels, "size": size, "mean": mean, "std": std, "classes": classes}


def _num_classes(model):
    from minicnn.nn.classifier import classifier_layers
    layer = classifier_layers(model, "predict")[0][3]
    return layer.weight.shape[0]


def classify_images(model, paths, size, mean, std, channels=3, batch_size=16):
    """Class probabilities (N, K) float64 of ``model`` (eval mode) for the image files ``paths``."""
    from minicnn.evaluation import predict
    x = np.stack([preprocess(load_image(p, channels), size, mean, std) for p in paths])
    return predict(model, x, batch_size=batch_size, mean=np.zeros(channels), std=np.ones(channels))


# ---------------------------------------------------------------------------- command
def cmd_predict(args):
    from minicnn.checks import check_int
    from minicnn.models import catalog
    check_int("predict", "--topk", args.topk, 1)
    options = catalog.parse_options(args.model_args or [], where="--model-arg")
    model, feed = load_for_prediction(args.weights, args.model, options)
    probs = classify_images(model, args.images, feed["size"], feed["mean"], feed["std"],
                            feed["channels"])
    for path, row in zip(args.images, probs):
        print(path)
        for name, p in top_k(row, feed["classes"], args.topk):
            print(f"  {p:7.2%}  {name}")
    return 0


def add_subparser(sub):
    """``minicnn predict`` on the CLI's subparsers (cli.build_parser calls this)."""
    p = sub.add_parser("predict", help="top-k classes of image files for a zoo model's weights "
                       "or a minicnn run (needs Pillow)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--weights", required=True, metavar="FILE",
                   help="a weights file (.pth, .safetensors, .npz) or a minicnn run directory")
    p.add_argument("--model", help="the zoo model the weights are for (a run knows its own)")
    p.add_argument("--model-arg", dest="model_args", action="append", metavar="KEY=VALUE",
                   help="an option of --model, as train and summary take it, e.g. "
                   "stride_in_1x1=true for ResNet-50 V1 weights (repeatable)")
    p.add_argument("--topk", type=int, default=5, metavar="K")
    p.set_defaults(func=cmd_predict)
    return p
