"""Checkpoints as plain ``.npz`` files: arrays and JSON, never pickle.

A checkpoint holds everything needed to continue a run exactly where it stopped:
the model's weights and buffers, the optimizer's state (momentum buffers, Adam's
moments, step counts), the learning-rate schedule's state, the data loader's RNG
state, the RNG states of modules that draw random numbers (dropout), the epoch and
batch reached, the history so far and the run's configuration.

Why not pickle: unpickling runs code chosen by whoever wrote the file, so a
checkpoint downloaded from somewhere could take over the machine.  Here every value
is either a numeric array or a JSON document stored as a unicode array, and loading
uses ``np.load(..., allow_pickle=False)``, which refuses object arrays.

Why atomic: a crash or Ctrl-C while writing must never leave a half-written file in
place of the last good checkpoint.  ``save`` writes to a temporary file in the same
directory, flushes it to disk and then ``os.replace``-s it over the target, which is
atomic on POSIX and Windows: readers see the old file or the new one, nothing else.

Layout of the archive (``np.savez`` names)::

    __minicnn_checkpoint__   JSON {"format": 1, ...}; marks the file as ours
    model/<state key>        every entry of model.state_dict()
    <part>/__json__          JSON tree of a nested state (optimizer, schedule, ...),
                             arrays replaced by {"__array__": "<part>/<i>"}
    <part>/<i>               the arrays of that tree
"""
import json
from collections import OrderedDict
import os
import tempfile
import zipfile
import zlib

import numpy as np

from minicnn import backend
from minicnn.nn.probe import generator_states, set_generator_states

FORMAT = 1
_MARK = "__minicnn_checkpoint__"


class CheckpointError(ValueError):
    """A file is not a readable minicnn checkpoint (missing, truncated, tampered, or foreign)."""


# ------------------------------------------------------------------ atomic writes
def _file_mode():
    """0o666 minus the process umask: what open() would have given (mkstemp gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path, write, binary=True):
    """Create or replace ``path`` atomically: ``write(f)`` fills a temporary file in the same
    directory, which is flushed to disk and renamed over ``path`` (``os.replace``).

    Readers see the old file or the new one, never a half-written one; on any error
    (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=directory)
    try:
        text = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, "wb" if binary else "w", **text) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


# ----------------------------------------------------------------- JSON + arrays
def _encode(value, arrays, part):
    """A JSON-able tree for ``value``; arrays (and NumPy scalars, to keep their dtype) go to ``arrays``.

    Dicts are stored as lists of [key, value] pairs so that int keys stay ints and
    the order is kept; tuples are marked so that they come back as tuples.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, np.generic):
        return value
    if isinstance(value, np.generic) or hasattr(value, "__array_interface__") or backend.device_of(value) == "cupy":
        name = f"{part}/{len(arrays)}"
        arr = backend.asnumpy(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"checkpoint: expected numeric arrays in the {part} state, received "
                             f"dtype {arr.dtype}")
        arrays[name] = np.array(arr)  # a copy, detached from the live state
        return {"__array__": name, "scalar": bool(np.ndim(value) == 0 and isinstance(value, np.generic))}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, arrays, part), _encode(v, arrays, part)]
                             for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, part) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays, part) for v in value]
    raise ValueError(f"checkpoint: cannot store a {type(value).__name__} in the {part} state "
                     "(expected arrays, numbers, strings, None, and dicts/lists/tuples of them)")


def _decode(tree, arrays, to=None):
    """Inverse of ``_encode``; arrays are moved to backend ``to`` if given."""
    if isinstance(tree, list):
        return [_decode(v, arrays, to) for v in tree]
    if isinstance(tree, dict):
        if "__array__" in tree:
            arr = arrays[tree["__array__"]]
            if tree.get("scalar"):
                return arr[()]  # a NumPy scalar of the stored dtype
            return backend.to_backend(arr, to) if to else arr
        if "__dict__" in tree:
            return {_hashable(_decode(k, arrays, to)): _decode(v, arrays, to) for k, v in tree["__dict__"]}
        if "__tuple__" in tree:
            return tuple(_decode(v, arrays, to) for v in tree["__tuple__"])
    return tree


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def _json_array(obj):
    # A 0-d unicode array: numeric to NumPy (no pickle needed), readable with allow_pickle=False.
    return np.array(json.dumps(obj, allow_nan=True))


# -------------------------------------------------------------------- save/load
def save(path, model, *, optimizer=None, schedule=None, loader_state=None, epoch=0, batch=0,
         config=None, history=None, extra=None):
    """Write a checkpoint to ``path`` atomically.

    - ``model``: a Module; its ``state_dict()`` and its modules' RNG states are saved
    - ``optimizer`` / ``schedule``: objects with ``state_dict()`` (arrays + JSON-able scalars)
    - ``loader_state``: the JSON-able state of the batch loader (its RNG)
    - ``epoch``: epochs completed; ``batch``: batches completed in the current epoch
    - ``config``: JSON-able dict describing the run (model name, lr, data, ...)
    - ``history``: list of per-epoch dicts; ``extra``: any other JSON-able/array tree

    Returns ``path``.
    """
    path = os.fspath(path)
    arrays = {}
    for key, value in model.state_dict().items():
        arrays[f"model/{key}"] = value
    parts = {
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "schedule": schedule.state_dict() if schedule is not None else None,
        "loader": loader_state,
        "rng": generator_states(model),
        "extra": extra,
    }
    for part, state in parts.items():
        arrays[f"{part}/__json__"] = _json_array(_encode(state, arrays, part))
    header = {"format": FORMAT, "epoch": int(epoch), "batch": int(batch),
              "config": config or {}, "history": history or [],
              "model_keys": list(model.state_dict().keys())}
    arrays[_MARK] = _json_array(header)

    # The previous checkpoint stays untouched, and no temporary file is left, if this fails.
    return atomic_write(path, lambda f: np.savez(f, **arrays))


class Checkpoint:
    """What ``load`` read: plain data, applied to live objects with ``restore``.

    Attributes: ``path``, ``epoch``, ``batch``, ``config`` (dict), ``history`` (list),
    ``model_state`` (OrderedDict name -> array), ``optimizer_state``, ``schedule_state``,
    ``loader_state``, ``rng_states``, ``extra``.
    """

    def __init__(self, path, header, model_state, parts):
        self.path = path
        self.epoch = header["epoch"]
        self.batch = header["batch"]
        self.config = header["config"]
        self.history = header["history"]
        self.model_state = model_state
        self._parts = parts

    def state(self, part, to=None):
        """The decoded state ``part`` ('optimizer', 'schedule', 'loader', 'rng', 'extra')."""
        tree, arrays = self._parts[part]
        return _decode(tree, arrays, to)

    @property
    def optimizer_state(self):
        return self.state("optimizer")

    @property
    def schedule_state(self):
        return self.state("schedule")

    @property
    def loader_state(self):
        return self.state("loader")

    @property
    def rng_states(self):
        return self.state("rng")

    @property
    def extra(self):
        return self.state("extra")

    def restore(self, model, optimizer=None, schedule=None):
        """Load weights, module RNG states and (if given) optimizer and schedule state."""
        model.load_state_dict(self.model_state)
        set_generator_states(model, self.rng_states or {})
        params = list(model.parameters())
        target = backend.device_of(params[0].data) if params else None
        if optimizer is not None:
            state = self.state("optimizer", to=target)
            if state is None:
                raise CheckpointError(f"checkpoint {self.path} holds no optimizer state")
            optimizer.load_state_dict(state)
        if schedule is not None:
            state = self.schedule_state
            if state is None:
                raise CheckpointError(f"checkpoint {self.path} holds no schedule state")
            schedule.load_state_dict(state)


def load(path):
    """Read a checkpoint written by ``save``; ``CheckpointError`` if it is not one.

    Uses ``allow_pickle=False``: an archive holding object arrays (which would need
    pickle) is refused rather than executed.  Every member is read and CRC-checked
    here, so a truncated or altered file fails now, with the path in the message.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    what = f"checkpoint {path!r} is not a readable minicnn checkpoint"
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {name: z[name] for name in z.files}
    # Besides BadZipFile, a flipped bit in a member's header reads as an unsupported
    # compression method (NotImplementedError), "encrypted" (RuntimeError) or bad deflate data.
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, ValueError,
            OSError, EOFError, KeyError) as e:
        raise CheckpointError(f"{what} (truncated, corrupted or not an .npz file?): "
                              f"{type(e).__name__}: {e}") from None
    if _MARK not in data:
        raise CheckpointError(f"{what}: the {_MARK} entry is missing")
    try:
        header = json.loads(str(data[_MARK][()]))
        if header.get("format") != FORMAT:
            raise CheckpointError(f"{what}: format {header.get('format')!r}, expected {FORMAT}")
        model_state = {}
        for key in header["model_keys"]:
            model_state[key] = data[f"model/{key}"]
        parts = {}
        for part in ("optimizer", "schedule", "loader", "rng", "extra"):
            tree = json.loads(str(data[f"{part}/__json__"][()]))
            arrays = {k: v for k, v in data.items() if k.startswith(f"{part}/") and not k.endswith("__json__")}
            parts[part] = (tree, arrays)
            _decode(tree, arrays)  # fail now, not later, if a referenced array is missing
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{what}: {type(e).__name__}: {e}") from None
    return Checkpoint(path, header, OrderedDict(model_state), parts)
