"""Datasets and mini-batches: CIFAR-10, MNIST, the shipped sample, a batch loader.

    from minicnn import data
    x_train, y_train, x_test, y_test = data.load_sample()            # offline, in the package
    x_train, y_train, x_test, y_test = data.load_cifar10(data.download_cifar10("~/data"))
    x_train, y_train, x_test, y_test = data.load("mnist", "~/mnist", limit=1000)   # by name
    loader = data.BatchLoader(x_train, y_train, 128, augment=True, rng=0)

Every reader returns ``(x_train, y_train, x_test, y_test)``: images uint8 (N, C, H, W),
labels int64 (N,).  The shipped sample is described in sample.py.
"""
from minicnn.data.cifar import CLASSES, load_cifar10, load_cifar10_meta
from minicnn.data.datasets import DATASETS, class_names, describe, load
from minicnn.data.download import CIFAR10_MD5, CIFAR10_URL, download_cifar10
from minicnn.data.loader import BatchLoader, channel_stats, random_crop_flip
from minicnn.data.mnist import load_mnist, read_idx
from minicnn.data.sample import SAMPLE_FILE, load_sample, sample_classes

CIFAR10_CLASSES = CLASSES

__all__ = ["CIFAR10_CLASSES", "CIFAR10_MD5", "CIFAR10_URL", "DATASETS", "BatchLoader",
           "channel_stats", "class_names", "describe", "download_cifar10", "load", "load_cifar10",
           "load_cifar10_meta", "load_mnist", "load_sample", "random_crop_flip", "read_idx",
           "sample_classes"]
