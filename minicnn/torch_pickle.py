"""Reading ``torch.save`` files without PyTorch, and without running any code they hold.

What ``torch.save(model.state_dict(), "w.pth")`` writes is a pickle of a dict whose
tensors are pickled as calls: ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)``, with each storage replaced by a *persistent id*
``("storage", torch.FloatStorage, key, "cpu", numel)`` whose bytes live outside the pickle:

- zip format (PyTorch >= 1.6): ``<archive>/data.pkl`` is the pickle and
  ``<archive>/data/<key>`` the raw bytes of each storage; ``<archive>/byteorder`` says
  ``little`` or ``big`` (absent in old files: little).  ``<archive>`` varies (the file's
  stem, ``archive``, ...).
- legacy format (``_use_new_zipfile_serialization=False``): five things one after the
  other in one file: pickles of the magic number, the protocol version and a dict of
  system info, then the pickle of the object (persistent ids are 6-tuples ending in a
  ``view_metadata`` that is None), a pickle of the list of storage keys, and for each key
  its element count (int64, little-endian) followed by its bytes (little-endian).

Why not ``pickle.load``: unpickling calls whatever the file names -- ``os.system``
included -- so a downloaded checkpoint could take over the machine.  ``_Unpickler``
below only resolves an allowlist of names modelled on ``torch.load(weights_only=True)``
(``torch/_weights_only_unpickler.py``), and resolves each to a stand-in written here
that records its arguments: a tensor becomes a ``_TensorRecord``, which ``to_array``
turns into an owned NumPy array once the storage bytes are read and every offset, size
and stride has been checked against them.  Any other name is refused before anything
runs (``UnsafePickleError``).  torch is never imported.
"""
from collections import Counter, OrderedDict
import io
import math
import os
import pickle
import pickletools
import struct
import warnings
import zipfile
import zlib

import numpy as np


class WeightsError(ValueError):
    """A weights file is missing, truncated, corrupt, unsupported or not a state dict.

    Defined here, the lowest file that raises it; ``minicnn.weights`` re-exports it."""


class UnsafePickleError(WeightsError):
    """A pickle names a global outside the allowlist; nothing in it was run."""


# ------------------------------------------------------------------- dtypes
# Canonical dtype name -> (NumPy type code without byte order, itemsize).  bfloat16 has
# no NumPy type: it is read as uint16 and widened to float32 (its top 16 bits).
DTYPES = {
    "float64": ("f8", 8), "float32": ("f4", 4), "float16": ("f2", 2), "bfloat16": ("u2", 2),
    "complex128": ("c16", 16), "complex64": ("c8", 8),
    "int64": ("i8", 8), "int32": ("i4", 4), "int16": ("i2", 2), "int8": ("i1", 1),
    "uint64": ("u8", 8), "uint32": ("u4", 4), "uint16": ("u2", 2), "uint8": ("u1", 1),
    "bool": ("u1", 1),
}

# torch's legacy storage classes (how the pickle names a typed storage) -> dtype.
STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}

# Aliases that torch dtypes pickle under (``torch.float`` pickles as ``torch.float32``,
# but older files may use the short names).
_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
                  "int": "int32", "short": "int16", "cfloat": "complex64", "cdouble": "complex128"}


def to_array(raw, dtype, size, stride=None, offset=0, byteorder="little"):
    """An owned, C-contiguous, native-endian array read from the bytes ``raw``.

    ``size``/``stride``/``offset`` are in elements of ``dtype`` (a key of ``DTYPES``);
    ``stride=None`` means contiguous.  Raises ``ValueError`` (no NumPy traceback) if the
    tensor reaches past the end of ``raw``.  bfloat16 comes back as float32, bool as bool
    (any non-zero byte is True).
    """
    code, itemsize = DTYPES[dtype]
    size = tuple(size)
    result = np.dtype({"bfloat16": "f4", "bool": "?"}.get(dtype, code))
    if 0 in size:   # nothing to read; the other axes may still be absurd
        try:
            return np.empty(size, result)
        except ValueError:
            raise ValueError(f"a {dtype} tensor of size {list(size)} is too large") from None
    if stride is None:
        stride = tuple(math.prod(size[i + 1:]) for i in range(len(size)))
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1   # elements reached
    if extent * itemsize > len(raw):
        raise ValueError(f"a {dtype} tensor of size {list(size)}, stride {list(stride)} at offset "
                         f"{offset} needs {extent * itemsize} bytes, its storage holds {len(raw)}")
    stored = np.dtype(("<" if byteorder == "little" else ">") + code)
    base = np.frombuffer(raw, dtype=stored, count=len(raw) // itemsize)
    view = np.lib.stride_tricks.as_strided(base[offset:], shape=size,
                                           strides=[s * itemsize for s in stride], writeable=False)
    if dtype == "bfloat16":   # the float32 that has these 16 bits on top
        out = np.empty(size, result)
        np.left_shift(view, 16, out=out.view(np.uint32), dtype=np.uint32)
        return out
    if dtype == "bool":
        return view != 0
    return view.astype(result, order="C")   # astype copies


# ------------------------------------------------------- what the pickle builds
class _Record:
    """Base of the plain objects the stand-ins return.  BUILD (which sets attributes
    on an unpickled object) is refused on them, so a pickle cannot reshape them."""
    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"refusing to set state on a {type(self).__name__[1:]}")


class _Storage(_Record):
    """A storage as named by a persistent id: its key, dtype (None: raw bytes) and length."""
    __slots__ = ("key", "dtype", "numel")

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel

    @property
    def nbytes(self):
        return self.numel * (DTYPES[self.dtype][1] if self.dtype else 1)


class _TensorRecord(_Record):
    """The arguments of a ``_rebuild_tensor*`` call, checked for type; values later."""
    __slots__ = ("storage", "offset", "size", "stride", "dtype", "negate", "conj")

    def __init__(self, storage, offset, size, stride, dtype=None, metadata=None):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"a tensor's storage is a {type(storage).__name__}")
        self.storage = storage
        self.offset = _count("storage offset", offset)
        self.size = tuple(_count("size", n) for n in _sequence("size", size))
        self.stride = tuple(_count("stride", s) for s in _sequence("stride", stride))
        if len(self.size) != len(self.stride):
            raise pickle.UnpicklingError(f"a tensor has size {self.size} but stride {self.stride}")
        self.dtype = dtype if dtype is not None else storage.dtype
        if self.dtype is None:
            raise pickle.UnpicklingError("a tensor on an untyped storage has no dtype")
        metadata = metadata or {}
        self.negate, self.conj = bool(metadata.get("neg")), bool(metadata.get("conj"))


def _count(what, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise pickle.UnpicklingError(f"a tensor's {what} is {v!r}, expected an int >= 0")
    return v


def _sequence(what, v):
    if not isinstance(v, (tuple, list)):
        raise pickle.UnpicklingError(f"a tensor's {what} is a {type(v).__name__}, expected a tuple")
    return v


class _Global(_Record):
    """What ``find_class`` returns for an allowed name: a callable stand-in (never torch's)."""
    __slots__ = ("name", "call")

    def __init__(self, name, call=None):
        self.name, self.call = name, call

    def __call__(self, *args):
        if self.call is None:
            raise pickle.UnpicklingError(f"{self.name} may not be called")
        try:
            return self.call(*args)
        except TypeError as e:   # wrong arity from a hand-made pickle
            raise pickle.UnpicklingError(f"{self.name}{args!r}: {e}") from None


class _StorageType(_Global):
    """``torch.FloatStorage`` and friends: only used as a persistent id's second item."""
    __slots__ = ("dtype",)

    def __init__(self, name, dtype):
        super().__init__(name)
        self.dtype = dtype


class _DType(_Global):
    """``torch.float32`` and friends, passed to ``_rebuild_tensor_v3``."""
    __slots__ = ("dtype",)

    def __init__(self, name, dtype):
        super().__init__(name)
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride):
    return _TensorRecord(storage, offset, size, stride)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    return _TensorRecord(storage, offset, size, stride, metadata=metadata)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    if not isinstance(dtype, _DType):
        raise pickle.UnpicklingError(f"_rebuild_tensor_v3 got dtype {dtype!r}")
    return _TensorRecord(storage, offset, size, stride, dtype.dtype, metadata)


def _rebuild_parameter(data, requires_grad, hooks, state=None):
    # A Parameter is its tensor: requires_grad, hooks and Python attributes are dropped.
    if not isinstance(data, _TensorRecord):
        raise pickle.UnpicklingError(f"a Parameter wraps a {type(data).__name__}")
    return data


_REBUILDERS = {}    # filled below: the _Global of each rebuild function


def _rebuild_from_type_v2(func, new_type, args, state):
    # How a Tensor/Parameter carrying Python attributes is pickled: func(*args), then the
    # attributes.  Only our own rebuild functions may be func; the attributes are dropped.
    if func not in _REBUILDERS.values() or new_type not in (_TENSOR, _PARAMETER):
        raise pickle.UnpicklingError(f"_rebuild_from_type_v2 of {func!r} as {new_type!r}")
    return func(*args)


def _latin1_bytes(text, encoding):
    # Protocol-2 pickles store a bytes object as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({text!r}, {encoding!r})")
    return text.encode("latin1")


_TENSOR, _PARAMETER = _Global("torch.Tensor"), _Global("torch.nn.parameter.Parameter")
for _f in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter):
    _REBUILDERS[f"torch._utils.{_f.__name__}"] = _Global(f"torch._utils.{_f.__name__}", _f)
_REBUILDERS["torch._utils._rebuild_parameter_with_state"] = _Global(
    "torch._utils._rebuild_parameter_with_state", _rebuild_parameter)

# The allowlist: the only globals a weights file may name, each to a harmless stand-in.
ALLOWED = {
    **_REBUILDERS,
    "torch._tensor._rebuild_from_type_v2": _Global("torch._tensor._rebuild_from_type_v2",
                                                   _rebuild_from_type_v2),
    "torch.Tensor": _TENSOR,
    "torch.nn.parameter.Parameter": _PARAMETER,
    "torch.Size": _Global("torch.Size", lambda dims=(): tuple(dims)),
    "torch.storage.UntypedStorage": _StorageType("torch.storage.UntypedStorage", None),
    **{f"torch.{name}": _StorageType(f"torch.{name}", dt) for name, dt in STORAGE_DTYPES.items()},
    **{f"torch.{name}": _DType(f"torch.{name}", name) for name in DTYPES},
    **{f"torch.{alias}": _DType(f"torch.{alias}", name) for alias, name in _DTYPE_ALIASES.items()},
    "collections.OrderedDict": OrderedDict,   # plain containers: constructing one runs nothing
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.complex": complex,     # (not bytearray, which torch allows: bytearray(10**12) is an int away)
    "_codecs.encode": _Global("_codecs.encode", _latin1_bytes),
}


class _Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only ``ALLOWED`` names and torch's storage ids."""

    def __init__(self, path, file, storages=None, legacy=False):
        super().__init__(file)
        self.path = path
        self.storages = {} if storages is None else storages   # key -> _Storage
        self.legacy = legacy

    def find_class(self, module, name):
        full = f"{module}.{name}"
        if full not in ALLOWED:
            raise UnsafePickleError(
                f"{self.path}: refusing to load: its pickle names the global {full}, which is not "
                "a tensor, storage, dtype or plain container; a state dict never needs it and a "
                "hostile file would use it to run code (nothing was run). If it is a whole "
                "pickled model, save model.state_dict() instead")
        return ALLOWED[full]

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
            if isinstance(pid, tuple) and pid and pid[0] in ("module", b"module"):
                raise pickle.UnpicklingError("it holds a pickled nn.Module class; "
                                             "save model.state_dict() instead")
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        if len(pid) != (6 if self.legacy else 5):
            raise pickle.UnpicklingError(f"storage id {pid!r:.80} has {len(pid)} items")
        _, storage_type, key, _location, numel = pid[:5]
        if self.legacy and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (files from PyTorch < 0.4) are not supported")
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise pickle.UnpicklingError(f"bad storage id {pid!r:.80}")
        numel = _count("storage size", numel)
        known = self.storages.setdefault(key, _Storage(key, storage_type.dtype, numel))
        if (known.dtype, known.numel) != (storage_type.dtype, numel):
            raise pickle.UnpicklingError(f"storage {key!r} is named with two different types or sizes")
        return known


def _unpickle(path, file, storages=None, legacy=False):
    _check_memo(path, file)
    return _Unpickler(path, file, storages, legacy).load()


def _check_memo(path, file):
    """Walk the pickle's opcodes without running them and refuse memo indices that no
    pickler writes (it numbers them 0, 1, 2, ...): CPython's unpickler grows its memo
    table to the largest index, so ten bytes saying ``PUT 1_000_000_000`` would take 8 GB."""
    start = file.tell()
    with warnings.catch_warnings():   # genops warns on bad escapes in protocol-0 strings
        warnings.simplefilter("ignore", DeprecationWarning)
        for n, (op, arg, _) in enumerate(pickletools.genops(file)):
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(arg) > n:
                raise pickle.UnpicklingError(f"memo index {arg} at opcode {n}: not written by a pickler")
    file.seek(start)


# ----------------------------------------------------------- the two formats
# What zipfile raises on a damaged archive besides BadZipFile: a flipped bit in a header
# reads as an unknown compression method or version, "encrypted", a bad seek, bad deflate data.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError,
              ValueError)


def read_member(path, z, member):
    """The bytes of ``member`` (a name or ZipInfo) of the open archive ``z``, CRC-checked."""
    try:
        return z.read(member)
    except ZIP_ERRORS as e:
        name = getattr(member, "filename", member)
        raise WeightsError(f"{path}: cannot read {name} from the archive (corrupt?): "
                           f"{type(e).__name__}: {e}") from None


def _read_zip(path, f):
    """(state dict of records, read(storage) -> bytes, byteorder) of a zip-format file."""
    try:
        z = zipfile.ZipFile(f)
    except ZIP_ERRORS as e:
        raise WeightsError(f"{path}: not a complete zip archive (truncated or corrupt?): {e}") from None
    members = {info.filename: info for info in z.infolist()}
    pickles = [n for n in members if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise WeightsError(f"{path}: expected one <archive>/data.pkl in the zip, found "
                           f"{len(pickles)}: not a torch.save file")
    prefix = pickles[0][:-len("data.pkl")]
    if prefix + "constants.pkl" in members or any(n.startswith(prefix + "code/") for n in members):
        raise WeightsError(f"{path}: a TorchScript archive (torch.jit.save), not a state dict; "
                           "save model.state_dict() with torch.save instead")
    byteorder = "little"
    if prefix + "byteorder" in members:
        byteorder = read_member(path, z, prefix + "byteorder").decode("ascii", "replace")
        if byteorder not in ("little", "big"):
            raise WeightsError(f"{path}: byteorder record is {byteorder!r:.40}, expected 'little' or 'big'")
    storages = {}
    obj = _unpickle(path, io.BytesIO(read_member(path, z, pickles[0])), storages)

    def read(storage):
        name = f"{prefix}data/{storage.key}"
        info = members.get(name)
        if info is None:
            raise WeightsError(f"{path}: storage {name} is missing from the archive")
        nbytes = storage.nbytes
        if info.file_size != nbytes:   # checked before reading: a lying size allocates nothing
            raise WeightsError(f"{path}: storage {name} holds {info.file_size} bytes, "
                               f"its tensors' storage needs {nbytes}")
        return read_member(path, z, info)
    return obj, read, byteorder


MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


def _read_legacy(path, f):
    """(state dict of records, read(storage) -> bytes, "little") of a legacy-format file."""
    if _unpickle(path, f) != MAGIC_NUMBER:
        raise WeightsError(f"{path}: not a PyTorch file (no zip archive, wrong magic number)")
    version = _unpickle(path, f)
    if version != PROTOCOL_VERSION:
        raise WeightsError(f"{path}: legacy protocol version {version!r}, expected {PROTOCOL_VERSION}")
    if not isinstance(_unpickle(path, f), dict):
        raise WeightsError(f"{path}: the system-info record is not a dict")
    storages = {}
    obj = _unpickle(path, f, storages, legacy=True)
    keys = _unpickle(path, f)
    if not isinstance(keys, list) or any(k not in storages for k in keys):
        raise WeightsError(f"{path}: the storage key list does not match the storages in the pickle")
    where, end = {}, os.fstat(f.fileno()).st_size      # key -> file offset of its bytes
    for key in keys:
        storage = storages[key]
        head = f.read(8)
        nbytes = storage.nbytes
        if len(head) < 8 or struct.unpack("<q", head)[0] != storage.numel or f.tell() + nbytes > end:
            raise WeightsError(f"{path}: storage {key} is truncated or its size record is wrong")
        where[key] = f.tell()
        f.seek(nbytes, os.SEEK_CUR)

    def read(storage):
        if storage.key not in where:
            raise WeightsError(f"{path}: storage {storage.key} is missing from the file")
        f.seek(where[storage.key])
        return f.read(storage.nbytes)
    return obj, read, "little"


STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


def pick_state_dict(path, obj):
    """The state dict in ``obj``: ``obj`` itself, or the dict under one of STATE_DICT_KEYS."""
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, expected a state dict "
                           f"(a dict name -> tensor) or a dict holding one under {STATE_DICT_KEYS}")
    for key in STATE_DICT_KEYS:
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def read_torch(path):
    """``(format, {name: array})`` of a ``torch.save`` file; ``format`` is "pytorch-zip" or
    "pytorch-legacy".  ``num_batches_tracked`` entries are left out."""
    with open(path, "rb") as f:
        magic = f.read(512)
        f.seek(0)
        try:
            if magic.startswith(b"PK"):
                fmt, (obj, read, byteorder) = "pytorch-zip", _read_zip(path, f)
            elif magic[257:262] == b"ustar":
                raise WeightsError(f"{path}: a tar-format torch.save file (PyTorch < 0.1.10), "
                                   "which is not supported")
            else:
                fmt, (obj, read, byteorder) = "pytorch-legacy", _read_legacy(path, f)
            tensors = _tensor_records(path, pick_state_dict(path, obj))
            # Each storage is read once, however many tensors view it, and dropped after its last.
            users = Counter(rec.storage.key for rec in tensors.values())
            arrays, raw = {}, {}
            for name, rec in tensors.items():
                key = rec.storage.key
                if key not in raw:
                    raw[key] = read(rec.storage)
                arrays[name] = _to_array(path, name, rec, raw[key], byteorder)
                users[key] -= 1
                if not users[key]:
                    del raw[key]
        except WeightsError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, struct.error, zipfile.BadZipFile, UnicodeDecodeError,
                RecursionError, MemoryError, OverflowError) as e:
            raise WeightsError(f"{path}: corrupt or unsupported PyTorch file "
                               f"({type(e).__name__}: {e})") from None
    return fmt, arrays


def _tensor_records(path, state):
    """{name: _TensorRecord} of a state dict, num_batches_tracked left out; anything else refused."""
    records = {}
    for name, rec in state.items():
        if not isinstance(name, str):
            raise WeightsError(f"{path}: state dict key {name!r:.60} is not a string")
        if name.endswith("num_batches_tracked"):
            continue
        if not isinstance(rec, _TensorRecord):
            raise WeightsError(f"{path}: state dict entry {name!r} is a "
                               f"{type(rec).__name__}, expected a tensor")
        records[name] = rec
    return records


def _to_array(path, name, rec, raw, byteorder):
    try:
        a = to_array(raw, rec.dtype, rec.size, rec.stride, rec.offset, byteorder)
    except ValueError as e:
        raise WeightsError(f"{path}: tensor {name!r}: {e}") from None
    if rec.conj:
        a = np.conj(a)
    return -a if rec.negate else a


