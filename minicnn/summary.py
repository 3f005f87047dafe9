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
  ``sum(p.size for p in model.parameters())``.  Modules with parameters that the forward
  never calls are listed at the end, marked "(not called)".  Buffers (BatchNorm running
  statistics) are not parameters.
* multiply-adds: Conv2d ``OH*OW * F * (C/groups) * KH*KW`` per image, Linear
  ``in * out`` per row (read from the layer's ``weight`` and its output's shape, so any
  layer with ``out_channels`` and a 4-D weight counts as a conv, any with
  ``out_features`` and a 2-D weight as a linear); bias additions are not counted.
  Every other layer (BatchNorm, ReLU, pooling, LRN, additions inside blocks) counts 0,
  so ``total_mult_adds`` is the conv + fc count that the papers quote (VGG-16 15.5 G,
  ResNet-50 3.8 G as the paper's v1, 4.09 G as torchvision's v1.5).

Receptive field (``Summary.receptive_field(name)`` or ``receptive_field(model, shape,
name)``), per axis, by the usual recurrence from the input (size 1, jump 1)::

    window layer (anything with kernel_size / stride / padding: Conv2d, MaxPool2d,
    AvgPool2d):   r_out = r_in + (k - 1) * j_in,    j_out = j_in * s,
                  start_out = start_in + ((k - 1) / 2 - p) * j_in
                  (a layer with a stride but no kernel_size, such as the CIFAR ResNets'
                  zero-padding shortcut x[:, :, ::s, ::s], is a 1x1 window of stride s)
    elementwise or per-position layer (ReLU, BatchNorm, LRN, Dropout, ...): unchanged
    GlobalAvgPool2d, and a Linear reading a flattened H x W map: a window of the whole
                  map (k = H, W; every output sees every position; the jump is kept)
    Flatten: unchanged (each value still sees what it saw); the Linear after it mixes

``size`` is the receptive field in input pixels, ``jump`` the distance in input pixels
between two neighbouring outputs (the accumulated stride), and ``start`` the centre of
the top-left output's field (negative when padding reaches outside the image).  These are
the theoretical fields: they may exceed the image (VGG-16's fc6 sees 404 x 404).

Branching (residual additions, Inception / Fire concatenations, dense blocks): an
array is followed through the forward by identity, so each branch gets its own field.
The output of a composite module, and an array that a composite made by itself (a sum
``a + b`` or a concatenation, which no hook sees), gets the *largest* field among the
branches that produced it (max over branches): the field of a residual block is that of
its convolution path, not of its shortcut.  A squeeze-and-excitation gate sees the
whole map, so the field after an SE block is the whole map too.  A leaf layer that
changes the spatial size without kernel_size / stride / padding attributes has an
unknown field (None), and so has everything after it; so has a window layer whose
output size does not match (H + 2P - K) // S + 1 for its attributes.
"""
import sys
import types
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from minicnn import backend


class ReceptiveField(NamedTuple):
    """Receptive field of one layer's outputs, per axis (h, w), in input pixels.

    - size: (h, w) extent of the input region one output value depends on
    - jump: (h, w) input-pixel distance between neighbouring outputs (product of strides)
    - start: (h, w) centre of the top-left output's region (pixel centres at 0, 1, ...)
    """
    size: tuple
    jump: tuple
    start: tuple


@dataclass(frozen=True)
class _Geometry:
    """A ReceptiveField plus ``grid``: the (h, w) map its values lie on.

    For a 4-D array ``grid`` is its spatial size; a Flatten output keeps the grid of
    the map it flattened, so that the Linear after it knows how wide a window it spans.
    """
    size: tuple
    jump: tuple
    start: tuple
    grid: tuple

    def window(self, kernel, stride, padding, grid):
        # The recurrence of the module docstring, once per axis.
        return _Geometry(
            size=tuple(r + (k - 1) * j for r, k, j in zip(self.size, kernel, self.jump)),
            jump=tuple(j * s for j, s in zip(self.jump, stride)),
            start=tuple(c + ((k - 1) / 2 - p) * j
                        for c, k, p, j in zip(self.start, kernel, padding, self.jump)),
            grid=tuple(grid))

    def whole_map(self):
        # Global pooling / a Linear over a flattened map: a window as large as the map.  The
        # jump stays the input's: the output is a single position, so a jump has no meaning
        # of its own, and a map gated by it (squeeze-and-excitation) keeps its spacing.
        return self.window(self.grid, (1, 1), (0, 0), (1, 1))

    def on_grid(self, grid):
        return _Geometry(self.size, self.jump, self.start, tuple(grid))

    def public(self):
        return ReceptiveField(tuple(int(v) for v in self.size), tuple(int(v) for v in self.jump),
                              tuple(float(v) for v in self.start))


def _largest(geometries):
    """Max over branches: the geometry with the largest field (then the largest jump)."""
    return max(geometries, key=lambda g: (g.size[0] * g.size[1], g.jump[0] * g.jump[1]))


@dataclass
class Row:
    """One table row: one call of a leaf module.

    - name: dotted module name (torchvision-style, e.g. ``layer1.0.conv1``)
    - layer: type and key hyper-parameters, e.g. ``Conv2d(3->64, 3x3, s1, p1)``
    - output_shape: the output's shape with the batch axis, NCHW (None if not called)
    - activations: number of output values; params: own parameters (first call only)
    - mult_adds: multiply-adds of this call (conv and linear only; bias not counted)
    - receptive_field: a ReceptiveField, or None when unknown / not called
    """
    name: str
    layer: str
    output_shape: tuple
    activations: int
    params: int
    mult_adds: int
    receptive_field: ReceptiveField


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _describe(module):
    """Type and key hyper-parameters, compactly: Conv2d(3->64, 3x3, s1, p1)."""
    kind = type(module).__name__
    parts = []
    if hasattr(module, "in_channels") and hasattr(module, "out_channels"):
        parts.append(f"{module.in_channels}->{module.out_channels}")
    elif hasattr(module, "in_features") and hasattr(module, "out_features"):
        parts.append(f"{module.in_features}->{module.out_features}")
    elif hasattr(module, "num_features"):
        parts.append(str(module.num_features))
    if getattr(module, "kernel_size", None) is not None:
        kh, kw = _pair(module.kernel_size)
        stride = module.stride if getattr(module, "stride", None) is not None else module.kernel_size
        parts.append(f"{kh}x{kw}")
        parts.append("s" + "x".join(map(str, sorted(set(_pair(stride)), reverse=True))))
        if any(_pair(getattr(module, "padding", 0))):
            parts.append("p" + "x".join(map(str, sorted(set(_pair(module.padding)), reverse=True))))
    if getattr(module, "groups", 1) not in (1, None):
        parts.append(f"g{module.groups}")
    if kind == "LocalResponseNorm" and hasattr(module, "size"):
        parts.append(f"size {module.size}")
    if hasattr(module, "p") and isinstance(module.p, float):
        parts.append(f"p={module.p:g}")
    return f"{kind}({', '.join(parts)})" if parts else kind


def _arrays(obj):
    """The arrays in a module input or output (an array, or a tuple / list of them)."""
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for item in obj for a in _arrays(item)]
    return []


def _own_parameters(module):
    # Module._param_names holds the module's own parameters (not its children's).
    return [getattr(module, name) for name in module._param_names]


def _is_leaf(module):
    return next(iter(module.children()), None) is None


class _Tracer:
    """The forward hook: collects rows and follows receptive fields through the pass."""

    def __init__(self, model, x):
        self.names = {id(m): name for name, m in model.named_modules()}
        self.descendants = {}     # id(module) -> ids of its strict descendants (lazily)
        self.geometry = {}        # id(array) -> _Geometry or None
        self.arrays = []          # every array met, kept alive so that ids stay unique
        self.events = []          # (id(module), geometry) in completion (post-)order
        self.layer_geometry = {}  # module name -> geometry (largest over its calls)
        self.called = set()
        self.seen_params = set()
        self.rows = []
        self.last_name = None
        self._remember(x, _Geometry((1, 1), (1, 1), (0.0, 0.0), tuple(x.shape[2:4]) or (1, 1)))

    def _remember(self, a, geometry):
        self.geometry[id(a)] = geometry
        self.arrays.append(a)

    def _strict_descendants(self, module):
        key = id(module)
        if key not in self.descendants:
            self.descendants[key] = {id(m) for m in module.modules()} - {key}
        return self.descendants[key]

    def _unknown_input(self, x):
        """Geometry for an array no hook produced (a sum, a concatenation, a reshape made
        inside a composite): the largest field among the arrays met so far that it could
        come from -- those on the same spatial grid (4-D), or all of them (2-D)."""
        known = [(a, self.geometry[id(a)]) for a in self.arrays if self.geometry.get(id(a)) is not None]
        if x.ndim == 4:
            same = [g for a, g in known if a.ndim == 4 and a.shape[2:] == x.shape[2:]]
            return _largest(same).on_grid(x.shape[2:]) if same else None
        if x.ndim == 2 and known:
            # A flatten done by hand: it keeps the grid of the latest map of that size.
            grid = (1, 1)
            for a, g in reversed(known):
                if a.ndim == 4:
                    if int(np.prod(a.shape[1:])) == x.shape[1]:
                        grid = tuple(a.shape[2:])
                    break
            return _largest([g for _, g in known]).on_grid(grid)
        return None

    def _input_geometry(self, x):
        geometries = []
        for a in _arrays(x):
            g = self.geometry[id(a)] if id(a) in self.geometry else self._unknown_input(a)
            if g is None:
                return None
            geometries.append(g)
        return _largest(geometries) if geometries else None

    @staticmethod
    def _leaf_geometry(module, x, out, g):
        """The recurrence of the module docstring for one leaf layer."""
        if g is None or not hasattr(x, "ndim") or not hasattr(out, "ndim"):
            return None
        if x.ndim == 4 and out.ndim == 4:
            if getattr(module, "kernel_size", None) is not None or getattr(module, "stride", None):
                # A window layer; one with a stride but no kernel_size subsamples, a 1x1
                # window (the zero-padding shortcut of the CIFAR ResNets takes x[:, :, ::s, ::s]).
                kernel = _pair(getattr(module, "kernel_size", None) or 1)
                stride = _pair(module.stride if getattr(module, "stride", None) is not None else kernel)
                padding = _pair(getattr(module, "padding", 0))
                dilation = _pair(getattr(module, "dilation", 1))
                kernel = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
                expect = tuple((n + 2 * p - k) // s + 1
                               for n, p, k, s in zip(x.shape[2:], padding, kernel, stride))
                if expect == tuple(out.shape[2:]):
                    return g.window(kernel, stride, padding, out.shape[2:])
            if out.shape[2:] == x.shape[2:]:
                return g.on_grid(out.shape[2:])
            return None  # the spatial size changed in a way the attributes do not explain
        if x.ndim == 4 and out.ndim == 2:
            n, c, h, w = x.shape
            if out.shape[1] == c * h * w:
                return g.on_grid((h, w))         # Flatten: the values keep their fields
            return g.on_grid((h, w)).whole_map()  # global pooling: every position
        if x.ndim == 2 and out.ndim == 2:
            return g.whole_map() if hasattr(module, "in_features") else g
        return None

    def __call__(self, module, x, out):
        leaf = _is_leaf(module)
        if leaf:
            g = self._leaf_geometry(module, x, out, self._input_geometry(x))
        else:
            # A composite's output: the largest field among the calls it just made (its
            # calls are the events since its own start, all of them its descendants).
            inside, desc = [], self._strict_descendants(module)
            for key, geometry in reversed(self.events):
                if key not in desc:
                    break
                inside.append(geometry)
            if not inside:
                g = self._input_geometry(x)
            elif any(v is None for v in inside):
                g = None
            else:
                g = _largest(inside)
            outs = _arrays(out)
            if g is not None and outs and outs[0].ndim == 4:
                g = g.on_grid(outs[0].shape[2:])
        for a in _arrays(out):
            self._remember(a, g)
        self.events.append((id(module), g))
        self.called.add(id(module))
        name = self.names.get(id(module), type(module).__name__)
        old = self.layer_geometry.get(name)
        self.layer_geometry[name] = g if old is None or g is None else _largest([old, g])
        own = [p for p in _own_parameters(module) if id(p) not in self.seen_params]
        if leaf or own:
            self.rows.append(self._row(module, name, out, own, g))
        if leaf:
            self.last_name = name

    def _row(self, module, name, out, own, g):
        self.seen_params.update(id(p) for p in own)
        outs = _arrays(out)
        activations = sum(int(a.size) for a in outs)
        mult_adds = 0
        w = getattr(module, "weight", None)
        w = getattr(w, "data", None)
        if w is not None and len(outs) == 1 and hasattr(module, "out_channels") and w.ndim == 4:
            # Conv2d: N*OH*OW*F output values, each (C/groups)*KH*KW multiply-adds:
            # N*OH*OW * weight.size in all.
            mult_adds = int(outs[0].size // outs[0].shape[1]) * int(w.size)
        elif w is not None and len(outs) == 1 and hasattr(module, "out_features") and w.ndim == 2:
            mult_adds = int(outs[0].size // outs[0].shape[-1]) * int(w.size)  # rows * in * out
        shape = tuple(int(v) for v in outs[0].shape) if len(outs) == 1 else \
            tuple(tuple(int(v) for v in a.shape) for a in outs)
        return Row(name, _describe(module), shape, activations, sum(p.size for p in own),
                   mult_adds, g.public() if g is not None else None)


def _format_shape(shape, batch_size):
    """(N, C, H, W) -> '224x224x64' (the lecture's H x W x C); (N, D) -> '4096'."""
    if shape is None:
        return "-"
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_format_shape(s, batch_size) for s in shape)
    per_image = list(shape[1:])
    if len(per_image) == 3:
        per_image = per_image[1:] + per_image[:1]
    text = "x".join(map(str, per_image)) or "1"
    return f"{shape[0]} x {text}" if batch_size != 1 else text


def _human(n):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


class Summary:
    """The result of ``summary(model, input_shape)``.

    - rows: list of Row, one per leaf-layer call in forward order
    - total_params, total_mult_adds, total_activations: ints (see the module docstring)
    - input_shape, output_shape: with the batch axis; batch_size; dtype
    - str(summary): the table; receptive_field(name): a ReceptiveField
    """

    def __init__(self, model_name, rows, layer_geometry, input_shape, output_shape, batch_size, dtype):
        self.model_name = model_name
        self.rows = rows
        self._layer_geometry = layer_geometry
        self.input_shape = input_shape
        self.output_shape = output_shape
        self.batch_size = batch_size
        self.dtype = np.dtype(dtype)
        self.total_params = sum(r.params for r in rows)
        self.total_mult_adds = sum(r.mult_adds for r in rows)
        self.total_activations = sum(r.activations for r in rows)

    def row(self, name):
        """The first row of the layer called ``name`` (dotted, e.g. 'features.0')."""
        for r in self.rows:
            if r.name == name:
                return r
        examples = ", ".join(repr(r.name) for r in self.rows[:3])
        raise ValueError(f"Summary.row: expected the name of a leaf layer ({examples}, ...), "
                         f"received {name!r}")

    def receptive_field(self, layer_name=None):
        """ReceptiveField of the outputs of layer ``layer_name`` (any module, leaf or composite,
        by dotted name; None or "" for the whole model's output).  For a layer called more
        than once, the largest field over its calls."""
        key = "" if layer_name is None else layer_name
        if key not in self._layer_geometry:
            known = [n for n in self._layer_geometry if n]
            raise ValueError(f"receptive_field: expected the name of a layer called in the forward "
                             f"(e.g. {', '.join(repr(n) for n in known[:4])}), received {layer_name!r}")
        g = self._layer_geometry[key]
        if g is None:
            raise ValueError(f"receptive_field: the field of {layer_name!r} is unknown: a layer before "
                             "it changes the spatial size without kernel_size/stride/padding attributes")
        return g.public()

    def __str__(self):
        per = "per image" if self.batch_size == 1 else f"batch of {self.batch_size}"
        header = ("Layer (type)", "Output (HxWxC)" if self.batch_size == 1 else "Output (N x HxWxC)",
                  "Activations", "Params", "Mult-adds", "RF")
        body = []
        name_width = max(len(r.name) for r in self.rows) if self.rows else 0
        for r in self.rows:
            layer = f"{r.name.ljust(name_width)}  {r.layer}" if name_width else r.layer
            if r.output_shape is None:
                layer += "  (not called)"
            rf = "-" if r.receptive_field is None else (
                str(r.receptive_field.size[0]) if r.receptive_field.size[0] == r.receptive_field.size[1]
                else "x".join(map(str, r.receptive_field.size)))
            body.append((layer, _format_shape(r.output_shape, self.batch_size), f"{r.activations:,}",
                         f"{r.params:,}", f"{r.mult_adds:,}", rf))
        widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

        def fmt(line):
            # Text columns (layer, shape) left-aligned, numbers right-aligned.
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(line, widths)))

        rule = "-" * len(fmt(header))
        nbytes = self.dtype.itemsize
        inputs = int(np.prod(self.input_shape))
        lines = [f"{self.model_name}: input {'x'.join(map(str, self.input_shape))} (NCHW), {self.dtype.name}",
                 rule, fmt(header), rule] + [fmt(line) for line in body] + [rule]
        lines += [
            f"Total params:       {self.total_params:,} ({self.total_params * nbytes / 2**20:.1f} MiB "
            f"as {self.dtype.name})",
            f"Total mult-adds:    {self.total_mult_adds:,} ({_human(self.total_mult_adds)}, {per}; "
            "conv and linear layers only, bias additions not counted)",
            f"Total activations:  {self.total_activations:,} ({self.total_activations * nbytes / 2**20:.1f} "
            f"MiB forward, {per}; every layer's output, ReLU included)",
            f"Input:              {inputs:,} values; output {'x'.join(map(str, self.output_shape))}",
            "RF: receptive field of the layer's outputs in input pixels (Summary.receptive_field)",
        ]
        return "\n".join(lines)

    __repr__ = __str__


def _check_input_shape(input_shape):
    if isinstance(input_shape, str):
        parts = input_shape.lower().replace(",", "x").split("x")
        try:
            input_shape = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"summary: expected input_shape like (3, 224, 224) or '3x224x224', "
                             f"received {input_shape!r}") from None
    if (not isinstance(input_shape, (tuple, list)) or not input_shape
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                       for v in input_shape)):
        raise ValueError(f"summary: expected input_shape as a tuple of positive ints without the "
                         f"batch axis, e.g. (3, 224, 224), received {input_shape!r}")
    return tuple(int(v) for v in input_shape)


_ABSENT = object()  # marks a module that had no `_cache` attribute before the pass


def summary(model, input_shape, batch_size=1, dtype=None):
    """Per-layer table of ``model`` for inputs of shape ``(batch_size,) + input_shape``.

    Inputs:
    - model: a minicnn.nn.Module
    - input_shape: one input without the batch axis, e.g. (3, 224, 224) (or '3x224x224')
    - batch_size: int >= 1; counts are for the whole batch (1 = per image)
    - dtype: the input's float dtype; None = the dtype of the model's parameters (float32
      for a model without any)
    Returns a Summary (str() is the table; attributes rows, total_params, total_mult_adds,
    total_activations; method receptive_field(name)).

    Runs one forward pass in evaluation mode on a random normal input (a fixed seed), then
    restores each module's training flag and forward cache (the model is left as it was).  Raises ValueError for bad arguments and when the
    input does not fit the model (naming the last layer that ran).
    """
    from minicnn.nn.module import Module, forward_hook  # here: minicnn.nn imports this package
    if not isinstance(model, Module):
        raise ValueError(f"summary: expected a minicnn.nn.Module, received {type(model).__name__}")
    input_shape = _check_input_shape(input_shape)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"summary: expected batch_size to be an int >= 1, received {batch_size!r}")
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
    # The model is left as it was: training flags, and the caches (by the Module
    # convention, all of a module's forward state is in `_cache`), so that a forward the
    # caller ran before still backpropagates, and the pass's caches (VGG-16's im2col
    # columns are ~300 MB) are freed on return.
    saved = [(m, m.training, m.__dict__.get("_cache", _ABSENT)) for m in model.modules()]
    model.eval()
    try:
        with forward_hook(tracer):
            out = model(x)
    except ValueError as e:
        where = f"after layer {tracer.last_name!r}" if tracer.last_name else "at the first layer"
        raise ValueError(f"summary: the forward pass of {type(model).__name__} on input "
                         f"{'x'.join(map(str, shape))} failed {where}: {e}") from e
    finally:
        for m, mode, cache in saved:
            object.__setattr__(m, "training", mode)
            if cache is not _ABSENT:
                object.__setattr__(m, "_cache", cache)
            elif "_cache" in m.__dict__:
                object.__delattr__(m, "_cache")

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
                   int(batch_size), dtype)


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
