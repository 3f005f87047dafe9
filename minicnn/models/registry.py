"""The model registry: ``create(name, **kw)`` and ``names()``, and building a model for a dataset.

Each family file decorates its constructors with ``@register("name")``; the
package ``__init__`` imports every family file so that all names are known.

    models.create("resnet20", num_classes=10, rng=0)
    models.create_for("lenet5", num_classes=10, in_channels=3, rng=0)   # fitted to the data
    models.num_parameters("vgg16")                                      # no weights drawn
"""
import contextlib
import inspect
import os

import numpy as np

from minicnn.checks import check_int
from minicnn.models.pretrained import load_weights

_REGISTRY = {}


def register(name):
    """Decorator: make ``fn(num_classes=..., **kw) -> Module`` available as models.create(name)."""
    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn
    return deco


def names():
    """Sorted list of every registered model name."""
    return sorted(_REGISTRY)


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


def takes(name, argument):
    """True if the constructor of model ``name`` names ``argument`` among its parameters.

    Read from the signature (``inspect.signature``), never by trying a call: a
    constructor that only has ``**kw`` is taken *not* to take it, since what it passes
    on cannot be seen from outside (``resnet18(**kw)`` hands them to ``ResNet``).
    """
    params = inspect.signature(_constructor("models.takes", name)).parameters
    p = params.get(argument)
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


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
