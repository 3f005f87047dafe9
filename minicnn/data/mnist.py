"""MNIST (LeCun et al., 1998) from its idx files, gzipped or not.

An idx file is a tiny binary format: a 4-byte magic ``0x00 0x00 <type> <ndim>``, then
``ndim`` big-endian uint32 sizes, then the values row-major.  MNIST uses type 0x08
(unsigned byte): images are (n, 28, 28), labels (n,).  The four files are::

    train-images-idx3-ubyte   train-labels-idx1-ubyte   (60,000)
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte    (10,000)

each possibly with a ``.gz`` suffix (as downloaded).  Nothing here is pickled, so
reading an untrusted file can at worst raise ``ValueError``.
"""
import gzip
from pathlib import Path

import numpy as np

FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

# idx type byte -> big-endian dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read one idx file (gzipped if its name ends in .gz) -> a NumPy array in native byte order.

    Raises ``ValueError`` naming the file for a bad magic number, an unknown type, or a
    payload whose length does not match the declared sizes.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip raises BadGzipFile (an OSError) or EOFError
        raise ValueError(f"{path}: cannot read idx file: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an idx file (expected magic 0x0000TTDD, received "
                         f"{raw[:4].hex() or 'an empty file'})")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown idx type 0x{type_code:02x} (expected one of "
                         f"{', '.join(f'0x{t:02x}' for t in _IDX_TYPES)})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header ({len(raw)} bytes for {ndim} sizes)")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: expected {expected} bytes of data for shape {shape}, "
                         f"received {len(raw) - header}")
    a = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return a.astype(dtype.newbyteorder("="))


def _find(path, stem):
    for name in (stem, stem + ".gz"):
        if (path / name).is_file():
            return path / name
    return None


def load_mnist(path):
    """Read the four MNIST idx files in directory ``path`` (each plain or ``.gz``).

    Returns ``(x_train, y_train, x_test, y_test)``: images uint8 (N, 1, 28, 28) in NCHW,
    labels int64 (N,) in 0..9 -- the same convention as ``load_cifar10``.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"load_mnist: expected a directory holding the MNIST idx files, "
                         f"received {str(path)!r} which is not a directory")
    found = {k: _find(path, stem) for k, stem in FILES.items()}
    missing = [FILES[k] for k, f in found.items() if f is None]
    if missing:
        raise ValueError(f"load_mnist: {str(path)!r} is missing {', '.join(missing)} "
                         "(with or without .gz)")
    out = {}
    for split in ("train", "test"):
        fx, fy = found[f"x_{split}"], found[f"y_{split}"]
        x, y = read_idx(fx), read_idx(fy)
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"{fx}: expected uint8 images of shape (n, 28, 28), received "
                             f"{x.dtype} {x.shape}")
        if y.dtype != np.uint8 or y.shape != (x.shape[0],):
            raise ValueError(f"{fy}: expected {x.shape[0]} uint8 labels (one per image in "
                             f"{fx.name}), received {y.dtype} {y.shape}")
        if y.size and y.max() > 9:
            raise ValueError(f"{fy}: expected labels in 0..9, received a maximum of {y.max()}")
        out[f"x_{split}"] = x.reshape(-1, 1, 28, 28)
        out[f"y_{split}"] = y.astype(np.int64)
    return out["x_train"], out["y_train"], out["x_test"], out["y_test"]
