"""How ``summary`` follows a forward pass: one row per leaf-layer call, and receptive fields.

``_Tracer`` is the forward hook (``minicnn.nn.module.forward_hook``) of the pass that
``summary`` runs; it turns each call into a ``Row`` and follows the receptive field of
every array through the pass.

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
output size does not match (H + 2P - K) // S + 1 for its attributes (rounded up for a
pool with ``ceil_mode``: the field's recurrence is the same).
"""
from dataclasses import dataclass

import numpy as np

from minicnn.functional.pool import pooled_size
from minicnn.summary.table import ReceptiveField, Row


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
        self.row_owners = []      # id(module) of each row
        self.blocks = []          # Block: one per composite call (Summary.rows_at collapses to them)
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
                ceil = getattr(module, "ceil_mode", False)   # a pool that rounds up (SqueezeNet)
                expect = tuple(pooled_size(n, k, s, p, ceil)
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
        first = len(self.rows) if leaf else self._first_row_inside(module)
        if leaf or own:
            self.rows.append(self._row(module, name, out, own, g))
            self.row_owners.append(id(module))
        if leaf:
            self.last_name = name
        else:
            self.blocks.append(Block(name, _describe(module), _shape_of(out), g, first, len(self.rows)))

    def _first_row_inside(self, module):
        """Index of the first row of the call of composite ``module`` that just ended: its
        rows are the latest ones, every one of them a row of one of its descendants."""
        desc, i = self._strict_descendants(module), len(self.rows)
        while i > 0 and self.row_owners[i - 1] in desc:
            i -= 1
        return i

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
        return Row(name, _describe(module), _shape_of(out), activations, sum(p.size for p in own),
                   mult_adds, g.public() if g is not None else None)


def _shape_of(out):
    """The output's shape with the batch axis (a tuple of shapes for several arrays)."""
    outs = _arrays(out)
    return tuple(int(v) for v in outs[0].shape) if len(outs) == 1 else \
        tuple(tuple(int(v) for v in a.shape) for a in outs)


@dataclass(frozen=True)
class Block:
    """One call of a composite module: its rows are ``rows[first:end]`` (every layer it ran).

    ``Summary.rows_at(depth)`` turns it into one row: its output (the concatenation of an
    Inception module, the sum of a residual block), the totals of its rows, its field.
    """
    name: str
    layer: str
    output_shape: tuple
    geometry: _Geometry
    first: int
    end: int

    def row(self, rows):
        inside = rows[self.first:self.end]
        return Row(self.name, f"{self.layer} [{len(inside)} layers]", self.output_shape,
                   sum(r.activations for r in inside), sum(r.params for r in inside),
                   sum(r.mult_adds for r in inside),
                   self.geometry.public() if self.geometry is not None else None)
