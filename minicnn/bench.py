"""Time the hot ops on the shapes of real networks: Cython kernels vs the plain NumPy path.

For each op and shape it prints the median wall time of the forward pass and of
forward + backward, and the rate in GFLOP/s, with the Cython kernels on and off
(``minicnn.backend.use_cython``) side by side, in float32.  A float32 NumPy GEMM is
timed in the same run as a ceiling: a conv done by im2col + GEMM cannot beat it.

FLOP counts (a multiply-add is 2 FLOPs):
- conv:      forward 2*N*F*(C/groups)*KH*KW*OH*OW; backward twice that (dx and dw GEMMs) --
             the direct convolution's count, also for the layers minicnn runs by Winograd
             (which does 2.25x fewer multiplies, so their rate can pass the GEMM ceiling)
- max pool:  forward one comparison per window tap, N*C*OH*OW*KH*KW; backward one add per output
- LRN:       nominal (size + 5) per element forward, twice that backward
- batchnorm: nominal 8 per element forward (mean, variance, normalise, scale-shift), 10 backward
The non-conv counts are nominal, for comparing the two paths and shapes with each other,
not a hardware measure; those ops are memory-bound anyway.

Run it as ``minicnn bench`` (or ``benchmarks/bench_ops.py`` in the source tree), with the
BLAS environment as the user's (see benchmarks/README.md):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE minicnn bench

Options: --repeat R (timed runs per measurement, after one warm-up; the median is
printed), --quick (batch size at most 2 and a smaller GEMM: a smoke test, not a measurement).
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import minicnn.functional as F
from minicnn import backend
from minicnn.checks import check_int

DTYPE = np.float32


def conv_case(label, n, c, f, h, k, stride=1, pad=0):
    """A conv benchmark case; returns (label, shape text, setup)."""
    def setup(rng):
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        w = rng.standard_normal((f, c, k, k), dtype=DTYPE) * DTYPE(1.0 / np.sqrt(c * k * k))
        b = rng.standard_normal(f, dtype=DTYPE)
        oh = (h + 2 * pad - k) // stride + 1
        dout = rng.standard_normal((n, f, oh, oh), dtype=DTYPE)
        fwd_flops = 2.0 * n * f * c * k * k * oh * oh

        def forward():
            return F.conv2d_forward(x, w, b, stride, pad)

        def forward_backward():
            _, cache = F.conv2d_forward(x, w, b, stride, pad)
            return F.conv2d_backward(dout, cache)

        return forward, forward_backward, fwd_flops, 3.0 * fwd_flops
    return label, f"N{n} {c}->{f} {h}x{h} k{k} s{stride} p{pad}", setup


def max_pool_case(label, n, c, h, k, stride):
    def setup(rng):
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        oh = (h - k) // stride + 1
        dout = rng.standard_normal((n, c, oh, oh), dtype=DTYPE)
        fwd_flops = float(n * c * oh * oh * k * k)

        def forward():
            return F.max_pool2d_forward(x, k, stride)

        def forward_backward():
            _, cache = F.max_pool2d_forward(x, k, stride)
            return F.max_pool2d_backward(dout, cache)

        return forward, forward_backward, fwd_flops, fwd_flops + n * c * oh * oh
    return label, f"N{n} C{c} {h}x{h} k{k} s{stride}", setup


def lrn_case(label, n, c, h, size):
    def setup(rng):
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        dout = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        fwd_flops = float(n * c * h * h * (size + 5))

        def forward():
            return F.lrn_forward(x, size=size)

        def forward_backward():
            _, cache = F.lrn_forward(x, size=size)
            return F.lrn_backward(dout, cache)

        return forward, forward_backward, fwd_flops, 3.0 * fwd_flops
    return label, f"N{n} C{c} {h}x{h} n={size}", setup


def batchnorm_case(label, n, c, h):
    def setup(rng):
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        dout = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        gamma, beta = np.ones(c, dtype=DTYPE), np.zeros(c, dtype=DTYPE)
        mean, var = np.zeros(c, dtype=DTYPE), np.ones(c, dtype=DTYPE)
        fwd_flops = 8.0 * n * c * h * h

        def forward():
            return F.batchnorm_forward(x, gamma, beta, mean, var, True)

        def forward_backward():
            _, cache = F.batchnorm_forward(x, gamma, beta, mean, var, True)
            return F.batchnorm_backward(dout, cache)

        return forward, forward_backward, fwd_flops, fwd_flops + 10.0 * n * c * h * h
    return label, f"N{n} C{c} {h}x{h} train", setup


def cases(quick):
    """The benchmark shapes; --quick caps the batch at 2 (same layers, far less work)."""
    def b(n):
        return min(n, 2) if quick else n
    return [
        conv_case("conv LeNet conv1", b(128), 1, 6, 32, 5),
        conv_case("conv CIFAR ResNet 16", b(128), 16, 16, 32, 3, pad=1),
        conv_case("conv CIFAR ResNet 64", b(128), 64, 64, 8, 3, pad=1),
        conv_case("conv AlexNet conv1", b(16), 3, 96, 227, 11, stride=4),
        conv_case("conv VGG 128->256", b(4), 128, 256, 56, 3, pad=1),
        max_pool_case("max pool 3x3/2", b(64), 96, 55, 3, 2),
        max_pool_case("max pool 2x2/2", b(128), 64, 32, 2, 2),
        lrn_case("LRN", b(32), 96, 27, 5),
        batchnorm_case("batchnorm2d train", b(128), 64, 32),
    ]


def median_ms_per_path(fn, paths, repeat):
    """Median wall time in ms of fn() on each (name, use_cython flag) path (flag None: as is).

    The paths take turns run by run (after one warm-up each), so that a burst of load
    from other processes hits both alike rather than skewing their ratio.
    """
    def run(enabled):
        if enabled is None:
            fn()
            return
        with backend.use_cython(enabled):
            fn()

    for _, enabled in paths:
        run(enabled)
    times = {name: [] for name, _ in paths}
    for _ in range(repeat):
        for name, enabled in paths:
            t0 = time.perf_counter()
            run(enabled)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def gemm_rate(size, repeat):
    """Median time and GFLOP/s of a float32 (size x size) @ (size x size) NumPy matmul."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=DTYPE)
    b = rng.standard_normal((size, size), dtype=DTYPE)
    out = np.empty((size, size), dtype=DTYPE)
    t = median_ms_per_path(lambda: np.matmul(a, b, out=out), [("gemm", None)], repeat)["gemm"] / 1e3
    return t, 2.0 * size ** 3 / t / 1e9


def blas_name():
    try:
        info = np.show_config(mode="dicts")
        return info["Build Dependencies"]["blas"]["name"]
    except Exception:  # older NumPy has no mode= and prints instead; the name is only informative
        return "unknown"


def main(argv=None):
    """``minicnn bench [--repeat R] [--quick]``: parse ``argv`` and print the table; the exit code."""
    parser = argparse.ArgumentParser(
        prog="minicnn bench", description="Time conv, pooling, LRN and batch norm on the shapes of "
        "real layers (float32), Cython kernels vs the plain NumPy path, with a GEMM as the ceiling. "
        "For comparable numbers run it on an idle machine, with OPENBLAS_CORETYPE and "
        "OPENBLAS_L2_SIZE unset.")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed runs per measurement (median printed)")
    parser.add_argument("--quick", action="store_true",
                        help="batch size <= 2, smaller GEMM: a smoke test")
    return run(parser.parse_args(argv))


def run(args):
    """Print the table for parsed options ``args`` (repeat, quick); returns the exit code."""
    check_int("bench", "--repeat", args.repeat, 1)

    paths = [("cython", True), ("numpy", False)] if backend.cython_available() else [("numpy", False)]
    names = [name for name, _ in paths]
    print(f"minicnn op benchmark: float32, median of {args.repeat} after a warm-up, paths alternating"
          f"{' (--quick: batch <= 2, not a measurement)' if args.quick else ''}")
    kernels = "built" if backend.cython_available() else "NOT built (numpy path only)"
    print(f"python {platform.python_version()}, numpy {np.__version__} ({blas_name()}), "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"Cython kernels {kernels}")
    if hasattr(os, "getloadavg"):   # other busy processes make every threaded step wait
        print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    size = 256 if args.quick else 1024
    t, rate = gemm_rate(size, args.repeat)
    print(f"ceiling: numpy float32 GEMM {size}x{size}x{size}: {t * 1e3:.1f} ms, {rate:.1f} GFLOP/s\n")

    width = 9 * len(names)
    paths_head = "".join(f"{n:>9}" for n in names)
    print(f"{'op':<22} {'shape':<28}| {'forward ms':>{width}}{'GFLOP/s':>{width}} "
          f"| {'fwd+bwd ms':>{width}}{'GFLOP/s':>{width}} | speedup")
    sub = f"{'':<22} {'':<28}| {paths_head * 2} | {paths_head * 2} | fwd+bwd"
    print(sub)
    print("-" * len(sub))
    rng = np.random.default_rng(0)
    for label, shape, setup in cases(args.quick):
        forward, forward_backward, fwd_flops, fb_flops = setup(rng)
        fwd_ms = median_ms_per_path(forward, paths, args.repeat)
        fb_ms = median_ms_per_path(forward_backward, paths, args.repeat)
        fwd = ("".join(f"{fwd_ms[n]:9.2f}" for n in names)
               + "".join(f"{fwd_flops / fwd_ms[n] / 1e6:9.2f}" for n in names))
        fb = ("".join(f"{fb_ms[n]:9.2f}" for n in names)
              + "".join(f"{fb_flops / fb_ms[n] / 1e6:9.2f}" for n in names))
        speedup = f"{fb_ms['numpy'] / fb_ms['cython']:6.2f}x" if "cython" in fb_ms else "   n/a"
        print(f"{label:<22} {shape:<28}| {fwd} | {fb} | {speedup}", flush=True)
    print("\nspeedup = numpy-path time / cython-path time for forward+backward.  Conv GFLOP/s count a "
          "direct convolution's\nmultiply-adds; the Winograd layers (3x3 stride 1, >= 16 channels) do "
          "2.25x fewer, so their rate can pass the GEMM ceiling.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
