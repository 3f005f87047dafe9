"""Per-layer summary of a model: output shape, activations, parameters, multiply-adds,
receptive field -- the table of the CS231n VGG walk-through, computed from a real forward.

    >>> import minicnn
    >>> s = minicnn.summary(minicnn.models.create("vgg16"), (3, 224, 224))
    >>> print(s)                       # one row per layer, then the totals
    >>> s.total_params, s.total_mult_adds, s.total_activations
    >>> s.receptive_field("features.4")  # ReceptiveField(size=(10, 10), jump=(2, 2), ...)

How it works: one forward pass of a random input (batch ``batch_size``, default 1) runs
under ``minicnn.nn.module.forward_hook``, which reports every module call, composites
included, in post-order.  Each *leaf* call (a module without children: Conv2d, ReLU, ...)
becomes a table row.  The pass runs in evaluation mode -- so that BatchNorm neither
updates its running statistics nor divides by a zero batch variance at batch 1, and
Dropout draws no random numbers -- and every module's ``training`` flag is restored
afterwards.  The forward is exact, not a symbolic shape propagation: what the table
shows is what the model computes.

What the columns count (for the whole batch; the default batch of 1 gives per-image
numbers, as in the lecture and the papers):

* activations: the number of values in the layer's output.  ``total_activations`` sums
  every leaf output, i.e. what minicnn stores in a forward (each layer, ReLU included,
  makes a new array).  The CS231n VGG count keeps ReLU in place and so only counts the
  CONV / POOL / FC outputs (and the lecture's "24M" total is a slip: those rows sum to
  about 15.2M values per image).
* parameters: each module's own parameters, each Parameter object counted once (a
  shared layer shows its parameters on its first call only), so ``total_params`` equals
  ``sum(p.size for p in model.parameters())``: weights and biases, BatchNorm's scale and
  shift included.  Modules with parameters that the forward never calls are listed at
  the end, marked "(not called)".  Buffers (BatchNorm running statistics) are not
  parameters.
* multiply-adds: Conv2d ``OH*OW * F * (C/groups) * KH*KW`` per image, Linear
  ``in * out`` per row (read from the layer's ``weight`` and its output's shape, so any
  layer with ``out_channels`` and a 4-D weight counts as a conv, any with
  ``out_features`` and a 2-D weight as a linear); bias additions are not counted.
  Every other layer (BatchNorm, ReLU, pooling, LRN, additions inside blocks) counts 0,
  so ``total_mult_adds`` is the conv + fc count that the papers quote (VGG-16 15.5 G,
  ResNet-50 3.86 G as the paper's v1 -- its "3.8 G" -- and 4.09 G as torchvision's v1.5).

Blocks: ``depth=N`` (``minicnn summary NAME --depth N``) shows every module N levels
below the model as one row -- an Inception module with its concatenated output, a
residual block with its sum, a dense block -- holding the totals of the layers inside
it; ``Summary.rows_at(depth)`` returns those rows.

Receptive fields: see trace.py (``Summary.receptive_field(name)``, or
``receptive_field(model, shape, name)``).  The printed table is table.py's ``Summary``.
"""
import sys
import types

import numpy as np

from minicnn import backend
from minicnn.checks import check_int
from minicnn.nn.module import Module, forward_hook
from minicnn.nn.probe import untouched
from minicnn.summary.table import ReceptiveField, Row, Summary, _human  # noqa: F401  (viz's table)
from minicnn.summary.trace import _arrays, _describe, _own_parameters, _Tracer


def parse_input(text, channels=None, layout=None):
    """'3x224x224' (C x H x W) or '224x224x3' (H x W x C, the slides' order) -> (C, H, W).

    ``channels``: how many channels the model reads, which tells the two orders apart
    (the side that equals it is C); ``layout``: 'chw' or 'hwc' to say it outright (needed
    when both sides equal it, as in 3x3x3).  Without either, C x H x W.  Raises ValueError
    naming the reading(s) when the text does not fit.
    """
    shape = _check_input_shape(text)
    if layout not in (None, "chw", "hwc"):
        raise ValueError(f"summary: expected layout 'chw' or 'hwc', received {layout!r}")
    if len(shape) != 3 or (channels is None and layout is None):
        return shape if layout != "hwc" else (shape[2], shape[0], shape[1])
    first, last = shape[0] == channels, shape[2] == channels
    if layout is None:
        if first and last:
            raise ValueError(f"summary: input {text!r} is ambiguous: with {channels} channels it reads "
                             f"as C x H x W ({shape[1]}x{shape[2]} images) and as H x W x C "
                             f"({shape[0]}x{shape[1]} images); say which with --layout chw or hwc")
        if not (first or last):
            raise ValueError(f"summary: expected the model's {channels} input channels first (C x H x W, "
                             f"e.g. {channels}x224x224) or last (H x W x C, e.g. 224x224x{channels}), "
                             f"received {text!r}")
        layout = "chw" if first else "hwc"
    return shape if layout == "chw" else (shape[2], shape[0], shape[1])


def _check_input_shape(input_shape):
    """(C, H, W) or 'CxHxW' -> a tuple of ints >= 1; ValueError naming the whole shape otherwise."""
    if isinstance(input_shape, str):
        try:
            input_shape = tuple(int(p) for p in input_shape.lower().replace(",", "x").split("x"))
        except ValueError:
            raise ValueError(f"summary: expected input_shape like (3, 224, 224) or '3x224x224', "
                             f"received {input_shape!r}") from None
    try:
        if not isinstance(input_shape, (tuple, list)) or not input_shape:
            raise ValueError
        return tuple(check_int("summary", "input_shape", v, 1) for v in input_shape)
    except ValueError:
        raise ValueError(f"summary: expected input_shape as a tuple of positive ints without the "
                         f"batch axis, e.g. (3, 224, 224), received {input_shape!r}") from None


def summary(model, input_shape, batch_size=1, dtype=None, depth=None):
    """Per-layer table of ``model`` for inputs of shape ``(batch_size,) + input_shape``.

    Inputs:
    - model: a minicnn.nn.Module
    - input_shape: one input without the batch axis, e.g. (3, 224, 224) (or '3x224x224')
    - batch_size: int >= 1; counts are for the whole batch (1 = per image)
    - dtype: the input's float dtype; None = the dtype of the model's parameters (float32
      for a model without any)
    - depth: None (every layer a row) or an int >= 0: modules that many levels deep become
      one row each, blocks included (see Summary.rows_at); only the printed table changes
    Returns a Summary (str() is the table; attributes rows, total_params, total_mult_adds,
    total_activations; methods rows_at(depth), receptive_field(name)).

    Runs one forward pass in evaluation mode on a random normal input (a fixed seed) and
    leaves the model as it was (``nn.probe.untouched``: training flags, forward caches,
    buffers).  Raises ValueError for bad arguments and when the input does not fit the
    model (naming the last layer that ran).
    """
    if not isinstance(model, Module):
        raise ValueError(f"summary: expected a minicnn.nn.Module, received {type(model).__name__}")
    input_shape = _check_input_shape(input_shape)
    batch_size = check_int("summary", "batch_size", batch_size, 1)
    if depth is not None:
        depth = check_int("summary", "depth", depth, 0)
    first = next(iter(model.parameters()), None)
    if dtype is None:
        dtype = first.data.dtype if first is not None else np.float32
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"summary: expected dtype float32 or float64, received {dtype}")
    xp = backend.get_array_module(first.data) if first is not None else backend.array_module()
    shape = (int(batch_size),) + input_shape
    # A random input rather than zeros, so that no layer sees a degenerate all-equal map.
    x = xp.asarray(np.random.default_rng(0).standard_normal(shape).astype(dtype))

    tracer = _Tracer(model, x)
    # Evaluation mode (BatchNorm at batch 1, no dropout draws), and the model left as it
    # was: a forward the caller ran before still backpropagates (its caches come back),
    # and the pass's own caches (VGG-16's im2col columns are ~300 MB) are freed on return.
    try:
        with untouched(model, training=False), forward_hook(tracer):
            out = model(x)
    except ValueError as e:
        where = f"after layer {tracer.last_name!r}" if tracer.last_name else "at the first layer"
        raise ValueError(f"summary: the forward pass of {type(model).__name__} on input "
                         f"{'x'.join(map(str, shape))} failed {where}: {e}") from e

    rows = tracer.rows
    # Parameters of modules the forward never called still count (the totals must be the
    # model's); they get a row at the end.
    for name, m in model.named_modules():
        own = [p for p in _own_parameters(m) if id(p) not in tracer.seen_params]
        if own and id(m) not in tracer.called:
            tracer.seen_params.update(id(p) for p in own)
            rows.append(Row(name, _describe(m), None, 0, sum(p.size for p in own), 0, None))
    outs = _arrays(out)
    out_shape = tuple(int(v) for v in outs[0].shape) if outs else ()
    return Summary(type(model).__name__, rows, tracer.layer_geometry, shape, out_shape,
                   int(batch_size), dtype, tracer.blocks, depth)


def receptive_field(model, input_shape, layer_name=None):
    """ReceptiveField(size, jump, start) of layer ``layer_name`` of ``model`` (None: the output).

    Same as ``summary(model, input_shape).receptive_field(layer_name)``.
    """
    return summary(model, input_shape).receptive_field(layer_name)


class _CallableModule(types.ModuleType):
    """This module, callable: ``minicnn.summary(model, shape)`` runs ``summary``."""

    def __call__(self, *args, **kwargs):
        return summary(*args, **kwargs)


# Why: `import minicnn.summary` (or `from minicnn.summary import ...`) binds this
# *module* as the attribute `summary` of the package, which hides any function of that
# name the package offers, so `minicnn.summary(model, shape)` would fail with "module
# object is not callable".  Making the module itself callable keeps both spellings
# working, whichever was imported first.
sys.modules[__name__].__class__ = _CallableModule
