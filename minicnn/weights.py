"""Model-zoo weights in and out: PyTorch checkpoints, safetensors and ``.npz``, without PyTorch.

    state = minicnn.weights.load("resnet18-f37072fd.pth")   # {name: numpy array}
    model.load_state_dict(state)
    minicnn.weights.save(model.state_dict(), "mine.safetensors")   # loads into PyTorch

Formats, chosen by the file's extension:

- ``.pth`` / ``.pt`` / ``.bin``: ``torch.save`` files, zip or legacy format, read by
  ``minicnn.torch_pickle`` with an allowlist in place of pickle's "call anything": a
  file naming any other global (``os.system``, ...) is refused before anything runs.
  The file may hold a state dict, or a dict holding one under ``state_dict``,
  ``model_state_dict`` or ``model`` (the rest -- epoch, optimizer -- is ignored).
- ``.safetensors``: 8-byte little-endian header length, a JSON header
  ``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}``
  and then the tensors' bytes, back to back (offsets are relative to the end of the
  header).  No pickle at all, which is why it is the format to share weights in.  Read
  and written here in a few lines (the ``safetensors`` package is not needed).
- ``.npz``: a minicnn training checkpoint (``minicnn.checkpoint``; its model state is
  returned) or a plain archive of arrays, read with ``allow_pickle=False``.

Every file is untrusted input: whatever is wrong with it -- truncated, corrupt, a header
whose sizes lie, an unknown dtype -- raises ``WeightsError`` (a ``ValueError``) naming the
file and the problem.  Loaded arrays are owned, C-contiguous and native-endian; bfloat16
is widened to float32; ``num_batches_tracked`` entries (torchvision's BatchNorm counter,
which minicnn does not keep) are left out.
"""
import json
import math
import os
import struct
import zipfile

import numpy as np

from minicnn import backend
from minicnn import checkpoint
from minicnn.torch_pickle import (DTYPES, ZIP_ERRORS, UnsafePickleError, WeightsError,  # noqa: F401
                                  read_torch, to_array)

TORCH_EXTENSIONS = (".pth", ".pt", ".bin")
EXTENSIONS = TORCH_EXTENSIONS + (".safetensors", ".npz")

# safetensors' dtype names <-> ours.  (F8 variants have no NumPy type and are refused.)
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                      "C64": "complex64", "I64": "int64", "I32": "int32", "I16": "int16",
                      "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16",
                      "U8": "uint8", "BOOL": "bool"}
_SAFETENSORS_CODE = {name: code for code, name in SAFETENSORS_DTYPES.items()}
MAX_HEADER = 100_000_000   # the reference implementation's limit: a larger "length" is a lie


def _extension(path, op):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in EXTENSIONS:
        raise WeightsError(f"weights.{op}: expected a file ending in {', '.join(EXTENSIONS)}, "
                           f"received {os.fspath(path)!r}")
    return ext


def _read(path):
    """(format name, {name: array}) of any supported file."""
    path = os.fspath(path)
    ext = _extension(path, "load")
    if not os.path.isfile(path):
        raise WeightsError(f"weights.load: {path!r} does not exist")
    if ext in TORCH_EXTENSIONS:
        fmt, state = read_torch(path)
    elif ext == ".safetensors":
        fmt, state = "safetensors", read_safetensors(path)[0]
    else:
        fmt, state = _read_npz(path)
    return fmt, {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def load(path):
    """``{name: numpy array}`` read from a ``.pth``/``.pt``/``.bin``, ``.safetensors`` or ``.npz`` file.

    Raises ``WeightsError`` (a ``ValueError``) naming the file if it is missing, corrupt,
    holds no state dict, or -- for PyTorch files -- names a global outside the allowlist
    (``UnsafePickleError``: nothing in the file was run).
    """
    return _read(path)[1]


# ----------------------------------------------------------------- safetensors
def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate names in {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return dict(pairs)


def _safetensors_header(path, f, size):
    """The parsed and checked header: ([(name, dtype, shape, begin, end)], metadata, data start)."""
    head = f.read(8)
    if len(head) < 8:
        raise WeightsError(f"{path}: {size} bytes, too short for a safetensors header")
    n = struct.unpack("<Q", head)[0]
    if n > min(MAX_HEADER, size - 8):
        raise WeightsError(f"{path}: header length {n} exceeds the file ({size} bytes) or the "
                           f"{MAX_HEADER}-byte limit: truncated or not a safetensors file")
    try:
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise WeightsError(f"{path}: the safetensors header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the safetensors header is a {type(header).__name__}, "
                           "expected an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsError(f"{path}: __metadata__ must map names to strings")
    entries = [_safetensors_entry(path, name, spec) for name, spec in header.items()]
    data_len, at = size - 8 - n, 0
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != at:   # the reference format has no holes and no overlaps
            raise WeightsError(f"{path}: tensor {name!r} starts at byte {begin}, expected {at} "
                               f"({'overlapping' if begin < at else 'a gap before it'})")
        at = end
    if at != data_len:
        raise WeightsError(f"{path}: the tensors cover {at} bytes of data, the file holds {data_len} "
                           f"({'truncated' if at > data_len else 'trailing bytes'})")
    return entries, metadata, 8 + n


def _safetensors_entry(path, name, spec):
    what = f"{path}: tensor {name!r}"
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
        raise WeightsError(f"{what}: expected {{dtype, shape, data_offsets}}, received {spec!r:.100}")
    dtype = SAFETENSORS_DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
    if dtype is None:
        raise WeightsError(f"{what}: unsupported dtype {spec['dtype']!r:.20} "
                           f"(supported: {', '.join(SAFETENSORS_DTYPES)})")
    shape, offsets = spec["shape"], spec["data_offsets"]
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise WeightsError(f"{what}: shape {shape!r:.100} is not a list of ints >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise WeightsError(f"{what}: data_offsets {offsets!r:.100} is not [begin, end] "
                           "with 0 <= begin <= end")
    nbytes = math.prod(shape) * DTYPES[dtype][1]
    if offsets[1] - offsets[0] != nbytes:
        raise WeightsError(f"{what}: {dtype} of shape {shape} needs {nbytes} bytes, "
                           f"data_offsets {offsets} give {offsets[1] - offsets[0]}")
    return name, dtype, tuple(shape), offsets[0], offsets[1]


def read_safetensors(path):
    """``({name: array}, metadata)`` of a ``.safetensors`` file, every offset checked first."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        entries, metadata, start = _safetensors_header(path, f, os.fstat(f.fileno()).st_size)
        state = {}
        for name, dtype, shape, begin, end in entries:
            f.seek(start + begin)
            try:
                state[name] = to_array(f.read(end - begin), dtype, shape)
            except ValueError as e:
                raise WeightsError(f"{path}: tensor {name!r}: {e}") from None
    return state, metadata


def _write_safetensors(f, arrays, metadata=None):
    # Widest itemsize first (stable, so the state dict's order within each width): with the
    # header padded to a multiple of 8, every tensor then starts at a multiple of its itemsize.
    order = sorted(arrays, key=lambda k: -arrays[k].dtype.itemsize)
    header, at = {}, 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name in order:
        a = arrays[name]
        header[name] = {"dtype": _SAFETENSORS_CODE[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [at, at + a.nbytes]}
        at += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for name in order:
        f.write(np.ascontiguousarray(arrays[name], dtype=arrays[name].dtype.newbyteorder("<")).tobytes())


# ------------------------------------------------------------------------ npz
def _read_npz(path):
    try:
        with zipfile.ZipFile(path) as z:
            is_checkpoint = f"{checkpoint._MARK}.npy" in z.namelist()   # the mark checkpoint.save writes
    except ZIP_ERRORS as e:
        raise WeightsError(f"{path}: not a complete .npz archive (truncated or corrupt?): {e}") from None
    if is_checkpoint:
        fmt = "minicnn-checkpoint"
        try:
            state = dict(checkpoint.load(path).model_state)
        except checkpoint.CheckpointError as e:
            raise WeightsError(str(e)) from None
        except ZIP_ERRORS as e:   # what checkpoint.load does not catch itself
            raise WeightsError(f"{path}: not a readable minicnn checkpoint: "
                               f"{type(e).__name__}: {e}") from None
    else:
        fmt = "npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                state = {name: z[name] for name in z.files}
        except ZIP_ERRORS + (KeyError,) as e:
            raise WeightsError(f"{path}: not a readable .npz of arrays ({type(e).__name__}: {e})") from None
    for name, a in state.items():
        if a.dtype.kind not in "biufc":
            raise WeightsError(f"{path}: entry {name!r} has dtype {a.dtype}, expected numbers")
        # As from the other formats: an owned copy in C order and native byte order
        # (np.load gives views into the bytes it read, in the order they were written).
        state[name] = np.array(a, dtype=a.dtype.newbyteorder("="), order="C")
    return fmt, state


def _write_npz(f, arrays):
    # What np.savez does, without its keyword arguments (a key named "file" or
    # "allow_pickle" would collide with them).
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, a in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, a, allow_pickle=False)


# ----------------------------------------------------------------------- save
def save(state_dict, path, metadata=None):
    """Write ``state_dict`` ({name: array}) to ``path`` atomically, as ``.safetensors`` or ``.npz``.

    A ``.safetensors`` file loads into PyTorch with ``safetensors.torch.load_file(path)`` and
    ``model.load_state_dict``; ``metadata`` ({str: str}) goes to its ``__metadata__``.
    Arrays may be NumPy or CuPy; they are written as they are (no dtype change).  The
    previous file at ``path`` stays intact if anything fails.  Returns ``path``.
    """
    ext = _extension(path, "save")
    if ext in TORCH_EXTENSIONS:
        raise WeightsError(f"weights.save: writing PyTorch pickles is not supported (received "
                           f"{os.fspath(path)!r}); use .safetensors, which PyTorch reads with "
                           "safetensors.torch.load_file, or .npz")
    arrays = _checked_arrays(state_dict, ext)
    if metadata is not None and (ext != ".safetensors" or not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise WeightsError(f"weights.save: metadata must be a dict of strings, for .safetensors only; "
                           f"received {metadata!r:.100} for {os.fspath(path)!r}")
    if ext == ".safetensors":
        return checkpoint.atomic_write(path, lambda f: _write_safetensors(f, arrays, metadata))
    return checkpoint.atomic_write(path, lambda f: _write_npz(f, arrays))


def _checked_arrays(state_dict, ext):
    if hasattr(state_dict, "state_dict") or not hasattr(state_dict, "items"):
        raise WeightsError(f"weights.save: expected a state dict (a mapping name -> array), received "
                           f"a {type(state_dict).__name__}; pass model.state_dict()")
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise WeightsError(f"weights.save: state dict keys must be non-empty strings other than "
                               f"'__metadata__', received {name!r}")
        a = np.asarray(backend.asnumpy(value))
        supported = a.dtype.name in _SAFETENSORS_CODE if ext == ".safetensors" else a.dtype.kind in "biufc"
        if not supported:
            raise WeightsError(f"weights.save: entry {name!r} has dtype {a.dtype}, which {ext} cannot "
                               "hold (expected bool, int, uint or float)")
        arrays[name] = a
    return arrays


# ----------------------------------------------------------------- inspection
def info(path):
    """What ``path`` holds: ``{"path", "format", "tensors": {name: {"shape", "dtype"}},
    "num_tensors", "total_params"}``.

    Dtypes are as loaded (bfloat16 shows as float32); ``total_params`` counts every value
    in the file, buffers such as BatchNorm's running statistics included (a state dict
    does not say which entries are parameters)."""
    fmt, state = _read(path)
    return {"path": os.fspath(path), "format": fmt,
            "tensors": {k: {"shape": tuple(v.shape), "dtype": v.dtype.name} for k, v in state.items()},
            "num_tensors": len(state), "total_params": int(sum(v.size for v in state.values()))}


def describe(path):
    """``info(path)`` as text, one line per tensor, and which zoo models the file fits
    (what ``minicnn weights info`` prints)."""
    about = info(path)
    lines = [f"{about['path']}: {about['format']}, {about['num_tensors']} tensors, "
             f"{about['total_params']:,} values (buffers included)"]
    width = max((len(k) for k in about["tensors"]), default=0)
    for key, t in about["tensors"].items():
        lines.append(f"  {key:<{width}}  {t['dtype']:<8} {'x'.join(map(str, t['shape'])) or 'scalar'}")
    fits = _matching({k: t["shape"] for k, t in about["tensors"].items()})
    lines.append("fits: " + (", ".join(fits) if fits else "no minicnn zoo model (keys or shapes differ)"))
    return "\n".join(lines)


_MODEL_SHAPES = {}   # zoo model name -> {key: shape}, built once per process


def _model_shapes(name):
    if name not in _MODEL_SHAPES:
        from minicnn import models   # here, not on top: models.create(weights=...) imports this file
        _MODEL_SHAPES[name] = {k: v for k, v in models.state_shapes(name).items()
                               if not k.endswith("num_batches_tracked")}
    return _MODEL_SHAPES[name]


def fits(state_shapes, model_shapes):
    """Do the keys match and every shape too, allowing another class count?

    The entries whose shapes differ must all differ in the first axis only, from one
    common size (the model's class count) to another: the classifier's weight and bias,
    so that a ResNet-18 fine-tuned to 10 classes still fits ``resnet18``.
    """
    if set(state_shapes) != set(model_shapes):
        return False
    class_counts = set()   # (the model's, the state's) first axis where shapes differ
    for key, ours in model_shapes.items():
        theirs = state_shapes[key]
        if ours != theirs:
            if len(ours) != len(theirs) or not ours or ours[1:] != theirs[1:]:
                return False
            class_counts.add((ours[0], theirs[0]))
    return len(class_counts) <= 1


def match_models(state, names=None):
    """Zoo models (sorted names) whose state-dict keys and shapes ``state`` fits (see ``fits``).

    ``state`` is a state dict or a path to load.  ``names`` restricts the search (default:
    every model).  The models are built without drawing their weights
    (``models.state_shapes``), each once per process.
    """
    if isinstance(state, (str, os.PathLike)):
        state = load(state)
    return _matching({k: np.shape(v) for k, v in state.items()}, names)


def _matching(shapes, names=None):
    from minicnn import models
    shapes = {k: tuple(v) for k, v in shapes.items() if not k.endswith("num_batches_tracked")}
    return [name for name in sorted(models.names() if names is None else names)
            if fits(shapes, _model_shapes(name))]
