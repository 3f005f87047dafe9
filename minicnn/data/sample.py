"""The CIFAR-10 sample shipped inside the package: ``load_sample()``, ``sample_classes()``.

The shipped sample (``sample.npz``, made by ``tools/make_sample.py``) is real CIFAR-10
(Alex Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009,
https://www.cs.toronto.edu/~kriz/cifar.html): 117 training and 24 test images of each
of the 10 classes -- 1,170 + 240 images, as many as fit in 4 MB compressed -- taken in
file order from the first 1,000 records of each batch of the official python download.
It is enough to watch a small network learn in minutes; real results need the full set.
"""
from importlib import resources

import numpy as np

SAMPLE_FILE = "sample.npz"


def _sample_arrays():
    ref = resources.files("minicnn.data").joinpath(SAMPLE_FILE)
    with ref.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_sample():
    """The CIFAR-10 subset shipped in the package -> ``(x_train, y_train, x_test, y_test)``.

    Images uint8 (1170, 3, 32, 32) and (240, 3, 32, 32), labels int64 in 0..9, classes
    balanced.  Loaded with ``allow_pickle=False``: the file holds plain arrays only.
    """
    z = _sample_arrays()
    return z["x_train"], z["y_train"].astype(np.int64), z["x_test"], z["y_test"].astype(np.int64)


def sample_classes():
    """The class names of the shipped sample (those of CIFAR-10), a tuple of 10 str."""
    return tuple(str(c) for c in _sample_arrays()["classes"])
