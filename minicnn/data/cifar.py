"""CIFAR-10 (Krizhevsky, 2009) from the official python-pickle layout.

The download ``cifar-10-python.tar.gz`` unpacks to a directory ``cifar-10-batches-py``::

    data_batch_1 ... data_batch_5   each a pickled dict {b"data": uint8 (n, 3072), b"labels": [n ints], ...}
    test_batch                      the same, 10,000 test records
    batches.meta                    {b"label_names": [b"airplane", ...], ...}

Each row of ``data`` is one 32x32 colour image stored channel after channel (1024 red,
then 1024 green, then 1024 blue values, each row-major), so a reshape to (n, 3, 32, 32)
gives NCHW directly.

Pickle runs code on load: a pickle can name any importable callable and have it called.
These files are read with ``RestrictedUnpickler``, which admits only the three globals
the real files use (NumPy's array reconstruction, ``ndarray`` and ``dtype``); anything
else -- ``os.system``, ``builtins.eval``, ... -- raises ``ValueError`` before it is
looked up, so a malicious file can never run code.
"""
import io
import pickle
from pathlib import Path

import numpy as np

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
CIFAR10_DIR = "cifar-10-batches-py"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")

# ndarray.__reduce__ names the reconstruction function by the module path of the NumPy
# that wrote the file: "numpy.core.multiarray" (NumPy 1.x, the official files) or
# "numpy._core.multiarray" (NumPy 2).  Both map to the function of the NumPy we run,
# taken from __reduce__ itself so that importing the deprecated numpy.core is never needed.
_RECONSTRUCT = np.ndarray((0,), np.uint8).__reduce__()[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle named a global that ``RestrictedUnpickler`` does not admit."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only NumPy array reconstruction; any other global raises.

    ``find_class`` is the single door through which a pickle reaches Python objects
    (every GLOBAL / STACK_GLOBAL opcode goes through it), so refusing names here refuses
    all code execution: REDUCE can then only call the admitted callables.
    """

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: a CIFAR-10 batch contains only "
                "NumPy arrays, lists, bytes and ints") from None


def restricted_load(path):
    """Unpickle the file at ``path`` with ``RestrictedUnpickler`` (``encoding="bytes"``).

    Raises ``ValueError`` naming the file if it is not a pickle, is truncated, or names a
    global other than NumPy's array reconstruction.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafePickleError as e:
        raise ValueError(f"{path}: not a safe CIFAR-10 pickle: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            OverflowError, MemoryError) as e:
        # Truncated or garbled files surface as any of these from the pickle machine.
        raise ValueError(f"{path}: corrupt pickle ({type(e).__name__}: {e})") from None


def _key(d, name, path):
    """``d[name]`` for a dict pickled by Python 2 (bytes keys) or 3 (str keys)."""
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a pickled dict, received {type(d).__name__}")
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    raise ValueError(f"{path}: expected a key {name!r}, found keys {sorted(map(repr, d))}")


def load_batch(path):
    """One CIFAR-10 batch file -> ``(x uint8 (n, 3, 32, 32), y int64 (n,))``.

    Checks that ``data`` is uint8 of shape (n, 3072) and that there are n labels in 0..9.
    """
    path = Path(path)
    d = restricted_load(path)
    data, labels = _key(d, "data", path), _key(d, "labels", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        got = (f"dtype {data.dtype}, shape {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise ValueError(f"{path}: expected data as uint8 of shape (n, 3072), received {got}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{path}: expected labels as a list of ints, received "
                         f"{type(labels).__name__}") from None
    if y.shape != (data.shape[0],):
        raise ValueError(f"{path}: expected {data.shape[0]} labels (one per image), received "
                         f"shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{path}: expected labels in 0..9, received values from {y.min()} "
                         f"to {y.max()}")
    return data.reshape(-1, 3, 32, 32), y


def _check_dir(path, files):
    path = Path(path).expanduser()
    # Accept the directory given to download_cifar10 too: it holds cifar-10-batches-py.
    if not (path / files[0]).is_file() and (path / CIFAR10_DIR).is_dir():
        path = path / CIFAR10_DIR
    if not path.is_dir():
        raise ValueError(f"load_cifar10: expected a directory holding {', '.join(files)} "
                         f"(the unpacked cifar-10-batches-py), received {str(path)!r} which is "
                         f"not a directory; minicnn.data.download_cifar10(dest) fetches it")
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise ValueError(f"load_cifar10: {str(path)!r} is not a CIFAR-10 python directory: "
                         f"missing {', '.join(missing)} (expected the unpacked "
                         f"cifar-10-batches-py with {', '.join(files)})")
    return path


def load_cifar10(path):
    """Read the CIFAR-10 python directory at ``path``.

    Returns ``(x_train, y_train, x_test, y_test)``: images uint8 (N, 3, 32, 32) in NCHW,
    labels int64 (N,) in 0..9.  The full download gives 50,000 + 10,000 images; any
    directory with the same file names and layout (such as the 1,000-record-per-batch
    sample) is read the same way; ``path`` may also be the directory that contains
    ``cifar-10-batches-py`` (where ``download_cifar10`` puts it).  Raises ``ValueError``
    naming a missing or corrupt file.
    """
    path = _check_dir(path, TRAIN_FILES + (TEST_FILE,))
    parts = [load_batch(path / f) for f in TRAIN_FILES]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = load_batch(path / TEST_FILE)
    return x_train, y_train, x_test, y_test


def load_cifar10_meta(path):
    """The class names from ``batches.meta`` in ``path``, as a tuple of 10 str (label order)."""
    path = _check_dir(path, (META_FILE,))
    d = restricted_load(path / META_FILE)
    names = _key(d, "label_names", path / META_FILE)
    if not isinstance(names, list) or len(names) != 10 \
            or not all(isinstance(n, (bytes, str)) for n in names):
        raise ValueError(f"{path / META_FILE}: expected label_names as a list of 10 strings, "
                         f"received {names!r:.200}")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)
