"""Parameter, Module and Sequential: the bookkeeping every layer and model shares.

A ``Module`` is a CS231n layer (``forward`` caches what ``backward`` needs) that also
knows its parts, as a PyTorch module does.  Attributes assigned in ``__init__`` are
registered in assignment order:

* a ``Parameter`` becomes a parameter (``named_parameters``),
* a ``Module`` becomes a child (``named_modules``, ``children``),
* ``self.register_buffer(name, array)`` makes a buffer: state that is saved and moved
  with the model but not trained (BatchNorm's running mean and variance).

The contract of a layer::

    out = layer(x)           # __call__ runs forward(x) (storing a cache), then the active hooks
    dx = layer.backward(dout)  # returns dL/dx and ADDS dL/dparam into every param.grad

Gradients accumulate (``+=``) so that a module used twice, or a batch split in two,
sums its contributions; call ``zero_grad()`` before each step.  A backward never
writes into ``dout``.

Composite modules call their children as ``child(x)``, never ``child.forward(x)``,
so that the forward hooks (``minicnn.nn.hooks``, used by ``minicnn.summary``) see every
module.

Names follow PyTorch/torchvision: ``state_dict()`` of a ResNet has keys such as
``layer1.0.conv1.weight`` and ``layer1.0.bn1.running_mean``, so weights can be
exchanged with torchvision (see ``load_state_dict`` for ``num_batches_tracked``).
"""
from collections import OrderedDict

import numpy as np

from minicnn import backend
from minicnn.nn import grad_mode, hooks
# Kept importable from here (minicnn.summary, minicnn.viz and the tests import them so).
from minicnn.nn.hooks import forward_hook, forward_hooks  # noqa: F401

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Parameter:
    """A trainable array and its gradient.

    - ``data``: the array (NumPy or CuPy, float32 or float64)
    - ``grad``: an array of zeros with the shape, dtype and backend of ``data``;
      ``Module.backward`` adds into it, ``zero_grad`` resets it.
    - ``requires_grad``: True (PyTorch's name); ``Module.freeze`` sets it False, and then
      backward adds nothing into ``grad`` and the optimizers leave the parameter as it is.
    """

    def __init__(self, data):
        if backend.device_of(data) == "numpy":
            data = np.asarray(data)
        if data.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"Parameter: expected a float32 or float64 array, received dtype "
                             f"{data.dtype}")
        self.data = data
        self.grad = backend.get_array_module(data).zeros_like(data)
        self.requires_grad = True

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return int(self.data.size)

    def zero_grad(self):
        self.grad[...] = 0

    def __repr__(self):
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.shape}, dtype={self.data.dtype.name}{frozen})"


class Module:
    """Base class of every layer, block and model.

    Subclasses call ``super().__init__()`` first, assign their parameters, buffers and
    children, and define ``forward(x)`` and ``backward(dout)``.  ``extra_repr()``
    returns the hyper-parameters shown by ``repr`` (as in PyTorch).
    """

    def __init__(self):
        # Names only; the values live in the instance __dict__ so that attribute access
        # is an ordinary (fast) lookup.  Order of assignment is the order of iteration.
        object.__setattr__(self, "_param_names", [])
        object.__setattr__(self, "_buffer_names", [])
        object.__setattr__(self, "_module_names", [])
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------------- registration
    def _registries(self):
        try:
            return self._param_names, self._buffer_names, self._module_names
        except AttributeError:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               "before assigning attributes") from None

    def __setattr__(self, name, value):
        params, buffers, modules = self._registries()
        if isinstance(value, Parameter):
            kind = params
        elif isinstance(value, Module):
            kind = modules
        elif name in buffers:
            kind = buffers  # re-assigning a buffer keeps it a buffer (self.running_mean = new)
        else:
            kind = None     # a plain attribute (hyper-parameter, cache, or a parameter set to None)
        for registry in (params, buffers, modules):
            if registry is not kind and name in registry:
                registry.remove(name)
        if kind is not None and name not in kind:
            kind.append(name)  # a re-assigned name keeps its place, as in PyTorch
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for registry in self._registries():
            if name in registry:
                registry.remove(name)
        object.__delattr__(self, name)

    def register_buffer(self, name, array):
        """Register ``array`` as buffer ``name``: saved by state_dict and moved by ``to``, not trained."""
        params, buffers, modules = self._registries()
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"register_buffer: expected a non-empty name without '.', received {name!r}")
        if name in params or name in modules:
            raise ValueError(f"register_buffer: {name!r} is already a parameter or a child module")
        if array is not None and not hasattr(array, "shape"):
            raise ValueError(f"register_buffer: expected an array for {name!r}, received "
                             f"{type(array).__name__}")
        if name not in buffers:
            buffers.append(name)
        object.__setattr__(self, name, array)

    def add_module(self, name, module):
        """Register ``module`` as child ``name`` (for names that are not identifiers, e.g. "0")."""
        if not isinstance(module, Module):
            raise ValueError(f"add_module: expected a Module for {name!r}, received "
                             f"{type(module).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"add_module: expected a non-empty name without '.', received {name!r}")
        setattr(self, name, module)

    # ------------------------------------------------------------------ iteration
    def named_children(self):
        """(name, child) for every direct child, in registration order."""
        for name in self._module_names:
            yield name, getattr(self, name)

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix=""):
        """(dotted name, module) for this module ("" ) and every descendant, parents first.

        A module reachable twice (shared) is listed once.
        """
        seen = set()

        def walk(module, prefix):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield prefix, module
            for name, child in module.named_children():
                yield from walk(child, f"{prefix}.{name}" if prefix else name)

        yield from walk(self, prefix)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, trainable_only=False):
        """(dotted name, Parameter): own parameters first, then each child's, recursively.

        A parameter shared by two modules is yielded once (so an optimizer steps it once).
        ``trainable_only=True`` leaves out the frozen ones (``requires_grad`` False).
        """
        seen = set()
        for prefix, module in self.named_modules():
            for name in module._param_names:
                p = getattr(module, name)
                if id(p) in seen or (trainable_only and not p.requires_grad):
                    continue
                seen.add(id(p))
                yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def trainable_parameters(self):
        """The parameters that are not frozen: what an optimizer needs to be given."""
        for _, p in self.named_parameters(trainable_only=True):
            yield p

    def named_buffers(self):
        """(dotted name, array) for every buffer that is not None."""
        for prefix, module in self.named_modules():
            for name in module._buffer_names:
                b = getattr(module, name)
                if b is not None:
                    yield (f"{prefix}.{name}" if prefix else name), b

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    def num_parameters(self):
        """Total number of trainable scalars."""
        return sum(p.size for p in self.parameters())

    # -------------------------------------------------------------------- running
    def __call__(self, *args, **kwargs):
        forward = getattr(self, "forward", None)
        if forward is None:
            raise TypeError(f"{type(self).__name__} defines no forward(x); a Module subclass must")
        out = forward(*args, **kwargs)
        if hooks.ACTIVE:
            hooks.run(self, args, kwargs, out)
        if not grad_mode.is_grad_enabled() and self.__dict__.get("_cache") is not None:
            object.__setattr__(self, "_cache", None)    # inference: keep nothing (grad_mode.py)
        return out

    def _get_cache(self):
        """``self._cache`` as stored by forward; a clear error if backward comes first.

        Convention for every module: ``self._cache = None`` in __init__ (and after
        ``to``); forward stores a non-None cache.
        """
        cache = getattr(self, "_cache", None)
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward (or after a "
                               "forward under minicnn.nn.no_grad(), which keeps nothing for it): "
                               "run module(x) first, outside no_grad, so that it can store what "
                               "backward needs")
        return cache

    def _accumulate(self, param, grad):
        """param.grad += grad (grads accumulate, as in PyTorch); nothing for a frozen parameter."""
        if param is not None and grad is not None and param.requires_grad:
            param.grad += grad

    def _trains(self):
        """Whether any of this module's own parameters is trainable (a layer whose parameters
        are all frozen may skip computing their gradients)."""
        return any(getattr(self, name).requires_grad for name in self._param_names)

    def zero_grad(self):
        """Set every parameter's gradient to zero (in place)."""
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode=True):
        """Training mode (BatchNorm uses batch statistics, Dropout drops) for this module and
        every descendant; ``train(False)`` is ``eval()``.  Returns self."""
        mode = bool(mode)
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        """Evaluation mode: BatchNorm uses running statistics, Dropout is the identity."""
        return self.train(False)

    # ------------------------------------------------------------------- freezing
    def freeze(self, prefix=None, exclude=None):
        """Stop training the parameters whose dotted name starts with ``prefix``; returns self.

        ``prefix``: None (every parameter), a name, or a tuple/list of names; a name matches
        itself and everything below it ("layer1" matches ``layer1.0.conv1.weight``, not
        ``layer10.0.conv1.weight``).  ``exclude``: names (same rules) left as they are --
        ``model.freeze(exclude=model.classifier_names)`` freezes the backbone of a zoo model
        and trains only its head.  A name that matches no parameter is a ValueError.

        A frozen parameter has ``requires_grad = False``: backward adds nothing into its
        ``grad`` (dx still flows through the layer to the layers before it), and the
        optimizers skip it (no update, no weight decay, no momentum), even when they were
        given it.  A BatchNorm whose parameters are all frozen stays in evaluation mode
        (see ``_BatchNorm``).  Freezing is not saved in ``state_dict``: to resume a run
        whose backbone was frozen, freeze the new model the same way before resuming.
        """
        return self._set_requires_grad("freeze", False, prefix, exclude)

    def unfreeze(self, prefix=None, exclude=None):
        """Train again the parameters ``freeze`` would select (same arguments); returns self."""
        return self._set_requires_grad("unfreeze", True, prefix, exclude)

    def _set_requires_grad(self, op, value, prefix, exclude):
        op = f"{type(self).__name__}.{op}"
        params = list(self.named_parameters())
        chosen = _matching(op, "prefix", params, prefix, self) if prefix is not None else params
        skipped = ({id(p) for _, p in _matching(op, "exclude", params, exclude, self)}
                   if exclude is not None else set())
        for _, p in chosen:
            if id(p) not in skipped:
                p.requires_grad = value
        return self

    # ---------------------------------------------------------------- state dict
    def state_dict(self):
        """OrderedDict name -> NumPy copy of every parameter and buffer.

        Order is torchvision's: for each module (parents first) its parameters, then its
        buffers.  Keys are dotted paths, e.g. ``features.0.weight``,
        ``layer1.0.bn1.running_mean``.  Values are NumPy arrays even on the CuPy
        backend (so a checkpoint can be saved anywhere).
        """
        sd = OrderedDict()
        for prefix, module in self.named_modules():
            for name in module._param_names:
                sd[f"{prefix}.{name}" if prefix else name] = backend.asnumpy(getattr(module, name).data).copy()
            for name in module._buffer_names:
                b = getattr(module, name)
                if b is not None:
                    sd[f"{prefix}.{name}" if prefix else name] = backend.asnumpy(b).copy()
        return sd

    def _state_slots(self):
        """name -> (module, attribute, is_parameter) for every entry of state_dict."""
        slots = OrderedDict()
        for prefix, module in self.named_modules():
            for name in module._param_names:
                slots[f"{prefix}.{name}" if prefix else name] = (module, name, True)
            for name in module._buffer_names:
                if getattr(module, name) is not None:
                    slots[f"{prefix}.{name}" if prefix else name] = (module, name, False)
        return slots

    def load_state_dict(self, state_dict, strict=True):
        """Copy the arrays of ``state_dict`` into this module's parameters and buffers.

        Each value is converted to the dtype and backend of the array it replaces and
        copied in place.  ``strict=True`` refuses missing and unexpected keys; a wrong
        shape is always refused.  Keys ending in ``num_batches_tracked`` (torchvision's
        BatchNorm counter, which minicnn does not keep) are ignored, so torchvision
        weights load.  Everything is checked before anything is copied.

        Raises ValueError naming the key.  Returns (missing_keys, unexpected_keys)
        (both empty when strict).
        """
        if not hasattr(state_dict, "keys"):
            raise ValueError(f"load_state_dict: expected a mapping name -> array, received "
                             f"{type(state_dict).__name__}")
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots
                      and not str(k).endswith("num_batches_tracked")]
        if strict and missing:
            raise ValueError(f"load_state_dict: missing key {missing[0]!r} "
                             f"({len(missing)} missing: {', '.join(missing[:5])}"
                             f"{', ...' if len(missing) > 5 else ''})")
        if strict and unexpected:
            raise ValueError(f"load_state_dict: unexpected key {unexpected[0]!r} "
                             f"({len(unexpected)} unexpected: {', '.join(map(str, unexpected[:5]))}"
                             f"{', ...' if len(unexpected) > 5 else ''})")
        updates = []
        for key, (module, name, is_param) in slots.items():
            if key not in state_dict:
                continue
            target = getattr(module, name).data if is_param else getattr(module, name)
            value = backend.asnumpy(state_dict[key])
            if not np.issubdtype(value.dtype, np.number) and value.dtype != np.bool_:
                raise ValueError(f"load_state_dict: expected a numeric array for key {key!r}, "
                                 f"received dtype {value.dtype}")
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"load_state_dict: key {key!r} expected shape {tuple(target.shape)}, "
                                 f"received {tuple(value.shape)}")
            updates.append((target, value.astype(target.dtype, copy=False)))
        for target, value in updates:
            target[...] = backend.to_backend(value, backend.device_of(target))
        return missing, unexpected

    # ------------------------------------------------------------------- classifier
    classifier_names = ()   # a zoo model's layers that output class scores (dotted names)

    def reset_classifier(self, num_classes, rng=None):
        """Replace the classifier layers (``classifier_names``) by fresh ones with
        ``num_classes`` outputs, drawn from ``rng``; everything else is kept (transfer
        learning).  Returns self.  See minicnn/nn/classifier.py."""
        from minicnn.nn.classifier import reset_classifier   # it builds layers, which import this file
        return reset_classifier(self, num_classes, rng)

    def embed(self, x):
        """The penultimate-layer embedding (N, D): what the classifier layer receives (VGG's
        FC7, ResNet's pooled vector), in the current mode.  See minicnn/nn/classifier.py."""
        from minicnn.nn.classifier import embed
        return embed(self, x)

    # ------------------------------------------------------------------- moving
    def to(self, target):
        """Move to a backend ('numpy' or 'cupy') or cast to a float dtype (np.float32 / np.float64).

        Parameters (data and grad) and floating-point buffers are converted; the
        stored forward caches are dropped (they belong to the old arrays).  Returns self.
        """
        if isinstance(target, str) and target in backend.BACKENDS:
            def convert(a):
                return backend.to_backend(a, target)
        else:
            try:
                dtype = np.dtype(target)
            except TypeError:
                raise ValueError(f"Module.to: expected 'numpy', 'cupy', np.float32 or np.float64, "
                                 f"received {target!r}") from None
            if dtype not in _FLOAT_DTYPES:
                raise ValueError(f"Module.to: expected 'numpy', 'cupy', np.float32 or np.float64, "
                                 f"received {target!r}")

            def convert(a):
                if a.dtype.kind != "f":
                    return a  # integer buffers (counts, indices) keep their type
                return a.astype(dtype, copy=False)
        for module in self.modules():
            for name in module._param_names:
                p = getattr(module, name)
                p.data = convert(p.data)
                p.grad = convert(p.grad)
            for name in module._buffer_names:
                b = getattr(module, name)
                if b is not None:
                    object.__setattr__(module, name, convert(b))
            if "_cache" in module.__dict__:
                object.__setattr__(module, "_cache", None)
        return self

    # -------------------------------------------------------------------- printing
    def extra_repr(self):
        """One line of hyper-parameters for repr (override in layers)."""
        return ""

    def __repr__(self):
        lines = []
        for name, child in self.named_children():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}({extra}" if extra else f"{type(self).__name__}("
        return head + "\n" + "\n".join(lines) + "\n)"


def _matching(op, what, named_params, prefixes, model):
    """The (name, parameter) pairs whose name is one of ``prefixes`` or lies below one;
    a ValueError for a prefix that matches nothing, listing the model's top-level names."""
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    if not isinstance(prefixes, (tuple, list)) or not all(isinstance(p, str) and p for p in prefixes):
        raise ValueError(f"{op}: expected {what} as a non-empty name or a tuple/list of them, "
                         f"received {prefixes!r}")
    if not prefixes:       # freeze(exclude=model.classifier_names) on a model that names none
        raise ValueError(f"{op}: expected at least one name in {what}, received {prefixes!r} "
                         "(only zoo models name their classifier_names)")
    found = []
    for prefix in prefixes:
        hits = [(n, p) for n, p in named_params if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            top = list(model._param_names) + list(model._module_names)
            raise ValueError(f"{op}: {what} {prefix!r} matches no parameter; the top-level names "
                             f"are {', '.join(top) or '(none)'}")
        found += hits
    return found


class Sequential(Module):
    """Modules applied one after the other; backward runs them in reverse.

    ``Sequential(a, b, c)`` names its children "0", "1", "2" (torchvision's
    ``features.0.weight``); ``Sequential(OrderedDict([("conv0", a), ...]))`` keeps the
    given names (as torchvision's DenseNet does).  Supports ``len``, iteration,
    ``seq[i]`` (negative too) and ``seq[i:j]`` (a new Sequential sharing the modules).

    Shapes: whatever the first module takes -> whatever the last one returns.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def append(self, module):
        """Add ``module`` at the end, named by its position."""
        self.add_module(str(len(self)), module)
        return self

    def __len__(self):
        return len(self._module_names)

    def __iter__(self):
        return iter(list(self.children()))

    def __getitem__(self, idx):
        names = self._module_names
        if isinstance(idx, slice):
            return Sequential(OrderedDict((n, getattr(self, n)) for n in names[idx]))
        try:
            return getattr(self, names[idx])
        except (IndexError, TypeError):
            raise IndexError(f"Sequential index {idx!r} out of range for {len(self)} modules") from None

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x

    def backward(self, dout):
        for module in reversed(list(self.children())):
            dout = module.backward(dout)
        return dout
