"""What ``summary`` returns: ``Summary`` (the rows, the totals, ``str()`` as the printed
table, ``rows_at(depth)``, ``receptive_field(name)``), made of ``Row`` (one leaf-layer call,
or one block's call collapsed) and ``ReceptiveField``."""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class ReceptiveField(NamedTuple):
    """Receptive field of one layer's outputs, per axis (h, w), in input pixels.

    - size: (h, w) extent of the input region one output value depends on
    - jump: (h, w) input-pixel distance between neighbouring outputs (product of strides)
    - start: (h, w) centre of the top-left output's region (pixel centres at 0, 1, ...)
    """
    size: tuple
    jump: tuple
    start: tuple


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


def _level(name):
    """How deep a dotted module name is: '' (the model) 0, 'layer1' 1, 'layer1.0' 2, ..."""
    return name.count(".") + 1 if name else 0


class Summary:
    """The result of ``summary(model, input_shape)``.

    - rows: list of Row, one per leaf-layer call in forward order
    - total_params, total_mult_adds, total_activations: ints (see the module docstring)
    - input_shape, output_shape: with the batch axis; batch_size; dtype
    - depth: how deep str() shows the model (None: every layer; see rows_at)
    - str(summary): the table; rows_at(depth): its rows; receptive_field(name): a ReceptiveField
    """

    def __init__(self, model_name, rows, layer_geometry, input_shape, output_shape, batch_size, dtype,
                 blocks=(), depth=None):
        self.model_name = model_name
        self.rows = rows
        self.blocks = list(blocks)
        self.depth = depth
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

    def rows_at(self, depth=None):
        """The rows of the table shown ``depth`` levels deep (None: every leaf layer).

        A module ``depth`` levels below the model (``layer1`` is 1 level, ``layer1.0`` 2)
        that has children -- an Inception module, a residual block with its addition, a
        dense block, a Sequential stage -- becomes one row per call: its output shape (the
        concatenation, the sum), and the totals of the layers inside it (parameters,
        multiply-adds, activations stored).  Depth 0 is the whole model as one row.  The
        totals of the table do not change with the depth.
        """
        if depth is None:
            return list(self.rows)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"Summary.rows_at: expected depth an int >= 0 or None, received {depth!r}")
        covering = {}
        for b in self.blocks:
            if _level(b.name) == depth:
                covering.update((i, b) for i in range(b.first, b.end))
        out, shown, uncalled = [], set(), {}
        for i, r in enumerate(self.rows):
            block = covering.get(i)
            if block is not None:
                if id(block) not in shown:
                    shown.add(id(block))
                    out.append(block.row(self.rows))
            elif _level(r.name) <= depth:
                out.append(r)
            else:   # a layer the forward never called, inside a block it never called
                name = ".".join(r.name.split(".")[:depth])
                if name not in uncalled:
                    uncalled[name] = Row(name, "(not called)", None, 0, 0, 0, None)
                    out.append(uncalled[name])
                uncalled[name].params += r.params
        return out

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
        rows = self.rows_at(self.depth)
        name_width = max(len(r.name) for r in rows) if rows else 0
        for r in rows:
            layer = f"{r.name.ljust(name_width)}  {r.layer}" if name_width else r.layer
            if r.output_shape is None and not r.layer.endswith("(not called)"):
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
        shown = "" if self.depth is None else f"; blocks {self.depth} level{'s' * (self.depth != 1)} deep"
        lines = [f"{self.model_name}: input {'x'.join(map(str, self.input_shape))} (NCHW), {self.dtype.name}"
                 f"{shown}", rule, fmt(header), rule] + [fmt(line) for line in body] + [rule]
        lines += [
            f"Total params:       {self.total_params:,} ({self.total_params * nbytes / 2**20:.1f} MiB "
            f"as {self.dtype.name})",
            f"Total mult-adds:    {self.total_mult_adds:,} ({_human(self.total_mult_adds)}, {per}; "
            "conv and linear layers only, bias additions not counted)",
            f"Total activations:  {self.total_activations:,} ({self.total_activations * nbytes / 2**20:.1f} "
            f"MiB forward, {per}; every layer's output, ReLU included)",
            f"Input:              {inputs:,} values; output {'x'.join(map(str, self.output_shape))}",
            "Params count every weight and bias, BatchNorm's scale and shift included (its running "
            "statistics are buffers, not parameters)",
            "RF: receptive field of the layer's outputs in input pixels (Summary.receptive_field)",
        ]
        if self.depth is not None:
            lines.append("A block's row [n layers]: its output (a concatenation, a residual sum, ...) and "
                         "the totals of the layers inside it")
        return "\n".join(lines)

    __repr__ = __str__
