"""The datasets minicnn reads, by name: ``load(name, data_dir=None, limit=None)``.

    x_train, y_train, x_test, y_test = load("sample")                  # shipped in the package
    x_train, y_train, x_test, y_test = load("cifar10", "data")         # cifar-10-batches-py or its parent
    x_train, y_train, x_test, y_test = load("mnist", "mnist", limit=500)

``describe(name, data_dir)`` says in words what was read, and ``class_names(name, K)``
names the K classes (CIFAR-10's ten words; digits otherwise).
"""
from minicnn.checks import check_int
from minicnn.data.cifar import CLASSES, load_cifar10
from minicnn.data.mnist import load_mnist
from minicnn.data.sample import load_sample

DATASETS = ("sample", "cifar10", "mnist")


def _check_name(op, name):
    if name not in DATASETS:
        raise ValueError(f"{op}: expected a dataset name in {', '.join(DATASETS)}, received {name!r}")


def load(name, data_dir=None, limit=None):
    """Read dataset ``name`` -> ``(x_train, y_train, x_test, y_test)``, as the readers return them.

    - name: "sample" (the CIFAR-10 subset shipped in the package; takes no data_dir),
      "cifar10" (the python version in ``data_dir``) or "mnist" (the four idx files in
      ``data_dir``)
    - limit: None, or an int >= 1: keep the first ``limit`` training and ``limit`` test
      images (a quick run on a small, fixed subset)
    Raises ValueError naming a missing directory or file.
    """
    _check_name("data.load", name)
    if limit is not None:
        limit = check_int("data.load", "limit", limit, 1)
    if name == "sample":
        if data_dir is not None:
            raise ValueError(f"data.load: the sample is inside the package and takes no data_dir, "
                             f"received data_dir={str(data_dir)!r}")
        arrays = load_sample()
    elif data_dir is None:
        what = "cifar-10-batches-py (or its parent)" if name == "cifar10" else "the four MNIST idx files"
        raise ValueError(f"data.load: {name!r} needs data_dir, the directory holding {what}")
    else:
        arrays = load_cifar10(data_dir) if name == "cifar10" else load_mnist(data_dir)
    if limit is not None:
        arrays = tuple(a[:limit] for a in arrays)
    return tuple(arrays)


def describe(name, data_dir=None):
    """What ``load(name, data_dir)`` reads, in words: 'CIFAR-10 from data', ..."""
    _check_name("data.describe", name)
    if name == "sample":
        return "the CIFAR-10 sample shipped with minicnn"
    return f"{'CIFAR-10' if name == 'cifar10' else 'MNIST'} from {data_dir}"


def class_names(name, num_classes):
    """The names of ``num_classes`` classes of dataset ``name`` (None: unknown), a tuple of str.

    CIFAR-10 and the sample with 10 classes: 'airplane', ..., 'truck'; anything else
    (MNIST's digits, a run with another class count): '0', '1', ...
    """
    num_classes = check_int("data.class_names", "num_classes", num_classes, 1)
    if name in (None, "sample", "cifar10") and num_classes == len(CLASSES):
        return tuple(CLASSES)
    return tuple(str(i) for i in range(num_classes))
