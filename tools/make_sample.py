"""Make minicnn/data/sample.npz, the small real CIFAR-10 subset shipped in the package.

    python tools/make_sample.py [--src DIR] [--out FILE] [--max-bytes N]

Reads a CIFAR-10 python directory (default: the shared 1,000-records-per-batch sample,
../shared/datasets/cifar-10-batches-py-sample next to the repository) and keeps, per
class, the first k training and the first ceil(k / 5) test images in file order -- the
5:1 ratio of CIFAR-10 itself -- with k the largest that keeps the compressed file under
``--max-bytes`` (CIFAR-10 images barely compress, so not all 6,000 fit in 4 MB).  The
classes are balanced and the images keep their original relative order.

The .npz (np.savez_compressed, plain arrays, loadable with allow_pickle=False) holds
x_train, y_train, x_test, y_test (uint8 NCHW / int64), classes (str, label order) and
train_index / test_index: the position of every kept image in the source directory's
concatenated data_batch_1..5 (resp. test_batch) records.  Running the script again on
the same source gives the same arrays.
"""
import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minicnn.data.cifar import load_cifar10, load_cifar10_meta  # noqa: E402

DEFAULT_SRC = ROOT.parent / "shared" / "datasets" / "cifar-10-batches-py-sample"
DEFAULT_OUT = ROOT / "minicnn" / "data" / "sample.npz"


def first_per_class(y, k):
    """Indices of the first ``k`` images of every class, in their original order."""
    keep = np.concatenate([np.flatnonzero(y == c)[:k] for c in range(10)])
    return np.sort(keep)


def build(src, k):
    x_train, y_train, x_test, y_test = load_cifar10(src)
    i_train = first_per_class(y_train, k)
    i_test = first_per_class(y_test, -(-k // 5))
    return {
        "x_train": x_train[i_train], "y_train": y_train[i_train],
        "x_test": x_test[i_test], "y_test": y_test[i_test],
        "classes": np.array(load_cifar10_meta(src)),
        "train_index": i_train.astype(np.int64), "test_index": i_test.astype(np.int64),
    }


def compressed(arrays):
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--max-bytes", type=int, default=4_000_000)
    args = ap.parse_args(argv)

    _, y_train, _, y_test = load_cifar10(args.src)
    k_max = int(min(np.bincount(y_train, minlength=10).min(),
                    5 * np.bincount(y_test, minlength=10).min()))
    # The largest k whose file fits: size grows with k, so bisect.
    lo, hi, best = 1, k_max, None
    while lo <= hi:
        k = (lo + hi) // 2
        data = compressed(build(args.src, k))
        if len(data) <= args.max_bytes:
            lo, best = k + 1, (k, data)
        else:
            hi = k - 1
    if best is None:
        sys.exit(f"make_sample: even one image per class exceeds {args.max_bytes} bytes")
    k, data = best
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; package data is world-readable
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"{args.out}: {k} train + {-(-k // 5)} test images per class, {len(data)} bytes")


if __name__ == "__main__":
    main()
