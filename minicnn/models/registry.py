"""The model registry: ``create(name, **kw)`` and ``names()``, what each model is, and
building a model for a dataset.

Each family file decorates its constructors with ``@register("name", ...)``, stating
what the model is beside its code: the family, the dataset and input size it was
designed for, and (for models that are slow to build) its parameter count; the package
``__init__`` imports every family file so that all names are known.

    models.create("resnet20", num_classes=10, rng=0)
    models.create_for("lenet5", num_classes=10, in_channels=3, rng=0)   # fitted to the data
    models.num_parameters("vgg16")                                      # no weights drawn
    models.info("wide_resnet")      # ModelInfo(family='Wide ResNet', title='WRN-28-10', ...)
    models.input_shape("alexnet")   # (3, 227, 227): what minicnn summary feeds it
    models.options("resnet50")      # {'num_classes': 1000, 'stride_in_1x1': False, ...}
"""
import contextlib
import inspect
import os
from dataclasses import dataclass

import numpy as np

from minicnn.checks import check_int
from minicnn.models.pretrained import load_weights

_REGISTRY = {}
_INFO = {}


@dataclass(frozen=True)
class ModelInfo:
    """What ``register`` was told about a model (None where it was not told).

    - family: e.g. "ResNet (ImageNet)"; title: what the name does not say ("WRN-28-10")
    - dataset: what it was designed for ("ImageNet", "CIFAR-10", "MNIST")
    - input_size: (C, H, W) of one designed input, e.g. (3, 227, 227)
    - params: its parameter count with the default options (checked by the tests against
      ``num_parameters``): ``minicnn models`` lists the zoo without building the big ones
    - forwards_to: the class that the constructor's ``**kw`` are handed to (their options
      are the model's too; see ``options``)
    """
    family: str = None
    dataset: str = None
    input_size: tuple = None
    params: int = None
    title: str = None
    forwards_to: type = None


def register(name, *, family=None, dataset=None, input_size=None, params=None, title=None,
             forwards_to=None):
    """Decorator: make ``fn(num_classes=..., **kw) -> Module`` available as models.create(name),
    with what the model is (see ModelInfo; every zoo model states family, dataset, input_size)."""
    if input_size is not None:
        input_size = tuple(check_int("register", "input_size", v, 1) for v in input_size)
        if len(input_size) != 3:
            raise ValueError(f"register: expected input_size (C, H, W), received {input_size}")
    info = ModelInfo(family, dataset, input_size, params, title, forwards_to)

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        _INFO[name] = info
        return fn
    return deco


def names():
    """Sorted list of every registered model name."""
    return sorted(_REGISTRY)


def info(name):
    """The ModelInfo that model ``name`` was registered with."""
    _constructor("models.info", name)
    return _INFO.get(name, ModelInfo())   # registered some other way: nothing known


def _constructor(op, name):
    if name not in _REGISTRY:
        raise ValueError(f"{op}: expected one of {', '.join(names())}, received {name!r}")
    return _REGISTRY[name]


def create(name, num_classes=None, weights=None, **kw):
    """Build model ``name``; ``num_classes`` defaults to the model's own (1000 for ImageNet, 10 for CIFAR).

    ``weights``: a path to a ``.pth``, ``.safetensors`` or ``.npz`` file to load into the
    model (minicnn/models/pretrained.py).  Without ``num_classes`` the model takes the
    file's number of classes; with another number every weight but the classifier's is
    loaded and the classifier is drawn afresh (a warning names the keys left out).  A file
    that does not fit raises one ValueError listing every missing, unexpected and
    mis-shaped key.  The model's own weights are then not drawn at all: they would be
    overwritten.
    """
    fn = _constructor("models.create", name)
    if num_classes is not None:
        kw["num_classes"] = num_classes
    if weights is None:
        return fn(**kw)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"models.create: expected weights as a path to a .pth, .safetensors or "
                         f".npz file, received {type(weights).__name__}")
    with _shapes_only():
        model = fn(**kw)
    return load_weights(model, weights, num_classes=num_classes, rng=kw.get("rng"), name=name)


def options(name):
    """{option: default} of every keyword argument ``create(name, ...)`` accepts.

    Read from the signatures (``inspect.signature``), never by trying a call: the
    constructor's named parameters, then -- for a constructor with ``**kw`` that was
    registered with ``forwards_to=SomeClass`` -- the keyword parameters with defaults of
    ``SomeClass.__init__`` that the constructor does not name itself (``resnet18(**kw)``
    hands them to ``ResNet``: ``survival_prob``, ``zero_init_residual``, ...).  Parameters
    without a default in the forwarded class (``ResNet``'s ``block`` and ``layers``) are
    the constructor's to fill in, not options.
    """
    fn = _constructor("models.options", name)
    found, passes_on = {}, False
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            found[p.name] = None if p.default is p.empty else p.default
        passes_on |= p.kind == p.VAR_KEYWORD
    target = info(name).forwards_to
    if passes_on and target is not None:
        for p in list(inspect.signature(target.__init__).parameters.values())[1:]:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty:
                found.setdefault(p.name, p.default)
    return found


def takes(name, argument):
    """True if ``create(name, ...)`` accepts keyword ``argument`` (it is in ``options(name)``).

    A constructor with ``**kw`` registered without ``forwards_to`` is taken *not* to take
    what is not named: what it passes on cannot be seen from outside.
    """
    return argument in options(name)


def check_options(name, kw):
    """Raise ValueError if ``kw`` holds a keyword that ``create(name, ...)`` does not accept;
    the message lists the accepted options with their defaults."""
    accepted = options(name)
    unknown = [k for k in kw if k not in accepted]
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in accepted.items() if k != "rng")
        raise ValueError(f"models: {name} takes no option {', '.join(map(repr, unknown))}; "
                         f"its options (with their defaults) are: {listed}")


def input_shape(name, **kw):
    """(C, H, W) of one input that model ``name`` built with options ``kw`` was designed for.

    The registered ``input_size``, changed by the zoo's three options that change the
    input: ``in_channels=C``, ``input_size=S`` (S x S images) and ``cifar=True`` (32 x 32).
    """
    shape = info(name).input_size
    if shape is None:
        raise ValueError(f"models.input_shape: model {name!r} was registered without an "
                         "input_size; give the input shape explicitly")
    c, h, w = shape
    if kw.get("cifar"):
        h = w = 32
    if kw.get("input_size") is not None:
        h = w = check_int("models.input_shape", "input_size", kw["input_size"], 1)
    if kw.get("in_channels") is not None:
        c = check_int("models.input_shape", "in_channels", kw["in_channels"], 1)
    return (c, h, w)


def parameter_count(name):
    """The parameter count of ``create(name)`` with its default options: the registered
    ``params`` if given (free), else ``num_parameters(name)`` (builds the model)."""
    known = info(name).params
    return known if known is not None else num_parameters(name)


def kwargs_for(name, num_classes, in_channels=3):
    """The keyword arguments of ``create(name, ...)`` that fit model ``name`` to a dataset.

    ``{"num_classes": K, "in_channels": C}`` for a family whose constructor takes
    ``in_channels`` (LeNet-5 defaults to 1, as in the paper: CIFAR-10 needs 3), and
    ``{"num_classes": K}`` for one that does not -- those read RGB images only, so
    ``in_channels`` other than 3 raises ValueError.  ``train.load_model`` rebuilds a run's
    model from exactly this dict, which is why it is returned rather than used.
    """
    num_classes = check_int("models.kwargs_for", "num_classes", num_classes, 1)
    in_channels = check_int("models.kwargs_for", "in_channels", in_channels, 1)
    if takes(name, "in_channels"):
        return {"num_classes": num_classes, "in_channels": in_channels}
    if in_channels != 3:
        raise ValueError(f"models.kwargs_for: model {name!r} reads 3-channel (RGB) images and "
                         f"takes no in_channels; it cannot read {in_channels}-channel images "
                         "(small_cnn, lenet5 and nin take in_channels)")
    return {"num_classes": num_classes}


def create_for(name, num_classes, in_channels=3, **kw):
    """``create(name, **kwargs_for(name, num_classes, in_channels), **kw)``: a model for a
    dataset of ``num_classes`` classes and ``in_channels``-channel images."""
    return create(name, **kwargs_for(name, num_classes, in_channels), **kw)


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


def num_parameters(name, **kw):
    """The number of parameters of ``create(name, **kw)``, counted without drawing its weights."""
    kw.setdefault("rng", 0)
    with _shapes_only():
        return create(name, **kw).num_parameters()


def state_shapes(name, **kw):
    """{state-dict key: shape} of ``create(name, **kw)``, parameters and buffers, without
    drawing its weights (what a checkpoint must hold to load into the model)."""
    kw.setdefault("rng", 0)
    with _shapes_only():
        model = create(name, **kw)
    shapes = {k: tuple(p.data.shape) for k, p in model.named_parameters()}
    shapes.update((k, tuple(b.shape)) for k, b in model.named_buffers())
    return shapes
