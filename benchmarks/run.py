"""minicnn vs PyTorch vs the textbook NumPy approach, on the layers of real networks.

One command prints the tables (float32, median wall time of forward + backward):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/run.py

- the six conv workloads of issue 5, two max pools, LRN and spatial batch norm (training);
- end-to-end training throughput (forward, backward, SGD momentum step; batch 128, random
  CIFAR-shaped data) of LeNet-5 (3 input channels), CIFAR ResNet-20 and a small VGG
  (conv 64-64-pool-128-128-pool-256-pool, then a linear classifier, ReLU after every conv);
- the float32 GEMM rate (1024^3 matmul): the ceiling of any im2col + GEMM convolution.  A
  conv's GFLOP/s count a direct convolution's multiply-adds (backward = 2x forward); the
  layers minicnn runs by Winograd (3x3 stride 1, >= 16 channels) do 2.25x fewer, so their
  rate can pass that ceiling;
- the memory of a training step of the same three models (see below).

PyTorch is optional (not a dependency).  When ``import torch`` works its column is filled
in: run this file with a Python that has torch and sees minicnn, e.g.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=/path/to/minicnn \\
        /path/to/torchvenv/bin/python benchmarks/run.py

Without torch, minicnn's and the textbook's figures are printed alone.  The "textbook"
column is the approach of CS231n's assignment: ``np.pad`` + fancy-index im2col, one GEMM
for the whole batch, ``np.add.at`` col2im -- written out below, so the comparison needs
nothing else.

minicnn and PyTorch take turns run by run, so that a burst of load from another process
hits them alike (the textbook path is timed in a pass of its own, after them); in each turn an implementation runs
twice back to back and the second call is timed (see ``time_alternating``); each figure
is the median of ``--repeat`` such turns after one warm-up.  Both libraries use every core they may
(torch.set_num_threads; minicnn's own chunk threads and BLAS).

Memory: each (model, library) pair is measured in a fresh process (this file run again
with a hidden ``--_memory-probe``), since memory one measurement frees stays with the
process (glibc keeps freed heap for reuse) and would hide the next one's needs.  The
child builds the model, the batch and the optimizer as the throughput rows do (same
threads), takes its resident set size (VmRSS) as the baseline, resets the peak RSS
(VmHWM, via /proc/self/clear_refs) and runs 5 training steps; the figure is peak RSS -
baseline: what a step needs above the model and the data -- activations and caches,
gradients, optimizer state, workspaces, and the allocator's slack.  The baseline is taken
before the first step, not after a warm-up one: after a step, both libraries' processes
keep the freed heap resident (measured here: PyTorch's RSS between steps stayed at
90-360 MB above the baseline), so "peak - RSS after a warm-up" would mostly measure
what the allocator happened to keep (0-50 MB here, for either).  MB are 2^20 bytes.  (minicnn allocates its
gradients with the model, PyTorch at the first backward: a few MB here, counted for
PyTorch only.)  minicnn's peak repeats to within 1% from run to run; PyTorch's varied
by up to 25% (e.g. 272-343 MB for the small VGG: its heap fragments differently from run
to run, and its peak crept up over 20 steps).  For minicnn a second view: the NumPy arrays live
at the peak of one steady-state step, by tracemalloc, and of those the ones held between
steps (the layers' caches of the last step), both without the state allocated before
(parameters, gradients, momentum, workspaces).  Linux only exactly: without /proc the
figures are lower bounds (baseline = peak RSS so far, by getrusage); without getrusage
(Windows) the table is skipped.

Options: ``--repeat R``, ``--steps S`` (timed training steps per model), ``--only SUBSTR``
(rows whose name contains it), ``--no-torch``, ``--no-textbook``, ``--no-memory``,
``--quick`` (tiny sizes: a smoke test whose numbers mean nothing).
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:            # run from a checkout without installing
    sys.path.insert(0, ROOT)

import minicnn.functional as F  # noqa: E402
from minicnn import models, nn, optim  # noqa: E402
from minicnn import runtime  # noqa: E402
from minicnn.nn.input_grad import data_layer  # noqa: E402

DTYPE = np.float32

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = None


# ----------------------------------------------------------------------------- the textbook path
# CS231n's im2col_indices / col2im_indices and the layers built on them, in plain NumPy.

def _indices(x_shape, kh, kw, pad, stride):
    n, c, h, w = x_shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    i0 = np.tile(np.repeat(np.arange(kh), kw), c)
    i1 = stride * np.repeat(np.arange(oh), ow)
    j0 = np.tile(np.arange(kw), kh * c)
    j1 = stride * np.tile(np.arange(ow), oh)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(c), kh * kw).reshape(-1, 1)
    return k, i, j, oh, ow


def tb_im2col(x, kh, kw, pad, stride):
    """x (N, C, H, W) -> cols (C*KH*KW, OH*OW*N)."""
    k, i, j, _, _ = _indices(x.shape, kh, kw, pad, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = xp[:, k, i, j]
    return cols.transpose(1, 2, 0).reshape(kh * kw * x.shape[1], -1)


def tb_col2im(cols, x_shape, kh, kw, pad, stride):
    n, c, h, w = x_shape
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    k, i, j, _, _ = _indices(x_shape, kh, kw, pad, stride)
    cols = cols.reshape(c * kh * kw, -1, n).transpose(2, 0, 1)
    np.add.at(xp, (slice(None), k, i, j), cols)
    return xp[:, :, pad:pad + h, pad:pad + w] if pad else xp


def tb_conv(x, w, b, stride, pad, dout):
    f, _, kh, kw = w.shape
    n = x.shape[0]
    oh, ow = (x.shape[2] + 2 * pad - kh) // stride + 1, (x.shape[3] + 2 * pad - kw) // stride + 1
    cols = tb_im2col(x, kh, kw, pad, stride)
    out = (w.reshape(f, -1) @ cols + b.reshape(-1, 1)).reshape(f, oh, ow, n).transpose(3, 0, 1, 2)
    d = dout.transpose(1, 2, 3, 0).reshape(f, -1)
    db = d.sum(axis=1)
    dw = (d @ cols.T).reshape(w.shape)
    dx = tb_col2im(w.reshape(f, -1).T @ d, x.shape, kh, kw, pad, stride)
    return out, dx, dw, db


def tb_max_pool(x, k, stride, dout):
    n, c, h, w = x.shape
    xr = x.reshape(n * c, 1, h, w)
    cols = tb_im2col(xr, k, k, 0, stride)
    idx = np.argmax(cols, axis=0)
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = cols[idx, np.arange(idx.size)].reshape(oh, ow, n, c).transpose(2, 3, 0, 1)
    dcols = np.zeros_like(cols)
    dcols[idx, np.arange(idx.size)] = dout.transpose(2, 3, 0, 1).ravel()
    dx = tb_col2im(dcols, (n * c, 1, h, w), k, k, 0, stride).reshape(x.shape)
    return out, dx


def tb_lrn(x, size, alpha, beta, k, dout):
    """Caffe/PyTorch LRN across channels, forward and backward, by padded channel sums."""
    c = x.shape[1]
    half = size // 2
    sq = np.pad(x * x, ((0, 0), (half, size - 1 - half), (0, 0), (0, 0)))
    s = sum(sq[:, d:d + c] for d in range(size))
    scale = k + alpha / size * s
    out = x * scale ** -beta
    t = dout * x * scale ** (-beta - 1)
    tp = np.pad(t, ((0, 0), (size - 1 - half, half), (0, 0), (0, 0)))
    win = sum(tp[:, d:d + c] for d in range(size))
    dx = dout * scale ** -beta - 2 * alpha * beta / size * x * win
    return out, dx


def tb_batchnorm(x, gamma, beta, dout, eps=1e-5):
    """CS231n's spatial batch norm: transpose to (N*H*W, C), vanilla batch norm, back."""
    n, c, h, w = x.shape
    xf = x.transpose(0, 2, 3, 1).reshape(-1, c)
    mu = xf.mean(axis=0)
    var = xf.var(axis=0)
    xhat = (xf - mu) / np.sqrt(var + eps)
    out = (gamma * xhat + beta).reshape(n, h, w, c).transpose(0, 3, 1, 2)
    d = dout.transpose(0, 2, 3, 1).reshape(-1, c)
    dbeta, dgamma = d.sum(axis=0), (d * xhat).sum(axis=0)
    dxhat = d * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / np.sqrt(var + eps)
    return out, dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


# ----------------------------------------------------------------------------- op workloads

def conv_case(label, n, c, f, h, k, stride=1, pad=0):
    def setup(rng):
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        w = rng.standard_normal((f, c, k, k), dtype=DTYPE) * DTYPE(1 / np.sqrt(c * k * k))
        b = rng.standard_normal(f, dtype=DTYPE)
        oh = (h + 2 * pad - k) // stride + 1
        dout = rng.standard_normal((n, f, oh, oh), dtype=DTYPE)

        def mine():
            _, cache = F.conv2d_forward(x, w, b, stride, pad)
            return F.conv2d_backward(dout, cache)

        def textbook():
            return tb_conv(x, w, b, stride, pad, dout)

        impls = {"minicnn": mine, "textbook": textbook}
        if torch is not None:
            tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
            td = torch.from_numpy(dout)

            def theirs():
                tx.grad = tw.grad = tb.grad = None
                TF.conv2d(tx, tw, tb, stride, pad).backward(td)
            impls["torch"] = theirs
        return impls, 3 * 2.0 * n * f * c * k * k * oh * oh   # fwd + dx + dw GEMMs
    return label, f"N{n} {c}->{f} {h}x{h} k{k} s{stride} p{pad}", setup


def pool_case(label, n, c, h, k, stride):
    def setup(rng):
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        oh = (h - k) // stride + 1
        dout = rng.standard_normal((n, c, oh, oh), dtype=DTYPE)

        def mine():
            _, cache = F.max_pool2d_forward(x, k, stride)
            return F.max_pool2d_backward(dout, cache)

        impls = {"minicnn": mine, "textbook": lambda: tb_max_pool(x, k, stride, dout)}
        if torch is not None:
            tx, td = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dout)

            def theirs():
                tx.grad = None
                TF.max_pool2d(tx, k, stride).backward(td)
            impls["torch"] = theirs
        return impls, None
    return label, f"N{n} C{c} {h}x{h} {k}x{k}/{stride}", setup


def lrn_case(label, n, c, h, size):
    alpha, beta, k = 1e-4, 0.75, 2.0

    def setup(rng):
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        dout = rng.standard_normal((n, c, h, h), dtype=DTYPE)

        def mine():
            _, cache = F.lrn_forward(x, size, alpha, beta, k)
            return F.lrn_backward(dout, cache)

        impls = {"minicnn": mine, "textbook": lambda: tb_lrn(x, size, alpha, beta, k, dout)}
        if torch is not None:
            tx, td = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dout)

            def theirs():
                tx.grad = None
                TF.local_response_norm(tx, size, alpha, beta, k).backward(td)
            impls["torch"] = theirs
        return impls, None
    return label, f"N{n} C{c} {h}x{h} n={size}", setup


def bn_case(label, n, c, h):
    def setup(rng):
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        gamma, beta = np.ones(c, DTYPE), np.zeros(c, DTYPE)
        rm, rv = np.zeros(c, DTYPE), np.ones(c, DTYPE)
        dout = rng.standard_normal((n, c, h, h), dtype=DTYPE)

        def mine():
            _, cache = F.batchnorm_forward(x, gamma, beta, rm, rv, True)
            return F.batchnorm_backward(dout, cache)

        impls = {"minicnn": mine, "textbook": lambda: tb_batchnorm(x, gamma, beta, dout)}
        if torch is not None:
            tx, tg, tb = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, gamma, beta))
            trm, trv, td = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy()), torch.from_numpy(dout)

            def theirs():
                tx.grad = tg.grad = tb.grad = None
                TF.batch_norm(tx, trm, trv, tg, tb, training=True).backward(td)
            impls["torch"] = theirs
        return impls, None
    return label, f"N{n} C{c} {h}x{h}", setup


def op_cases(quick):
    if quick:
        return [conv_case("conv 3x3", 2, 4, 8, 8, 3, 1, 1), pool_case("max pool 3x3/2", 2, 3, 9, 3, 2),
                lrn_case("LRN", 2, 6, 5, 5), bn_case("batch norm (train)", 2, 3, 4)]
    return [
        conv_case("LeNet conv1", 128, 1, 6, 32, 5),
        conv_case("CIFAR ResNet 3x3", 128, 16, 16, 32, 3, 1, 1),
        conv_case("CIFAR ResNet 3x3", 128, 64, 64, 8, 3, 1, 1),
        conv_case("AlexNet conv1", 16, 3, 96, 227, 11, 4, 0),
        conv_case("VGG 3x3", 4, 128, 256, 56, 3, 1, 1),
        conv_case("1x1", 32, 256, 64, 14, 1),
        pool_case("max pool 3x3/2", 64, 96, 55, 3, 2),
        pool_case("max pool 2x2/2", 128, 64, 32, 2, 2),
        lrn_case("LRN", 32, 96, 27, 5),
        bn_case("spatial BN (train)", 128, 64, 32),
    ]


# ----------------------------------------------------------------------------- end to end

def small_vgg(rng=0):
    """conv 64-64-pool-128-128-pool-256-pool (3x3 pad 1, ReLU), then Linear(256*4*4 -> 10)."""
    rng = np.random.default_rng(rng)
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1, rng=rng), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 4 * 4, 10, rng=rng))


def torch_models():
    """The same three networks in PyTorch (weights are not shared; only the speed is compared)."""
    tnn = torch.nn

    def lenet():
        return tnn.Sequential(tnn.Conv2d(3, 6, 5), tnn.ReLU(), tnn.MaxPool2d(2, 2),
                              tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2, 2), tnn.Flatten(),
                              tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
                              tnn.Linear(84, 10))

    class Block(tnn.Module):   # CIFAR basic block, option A shortcut (as minicnn's resnet20)
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = tnn.BatchNorm2d(cout)
            self.c2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = tnn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            out = TF.relu(self.b1(self.c1(x)))
            out = self.b2(self.c2(out))
            sc = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
            if self.extra:
                sc = TF.pad(sc, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
            return TF.relu(out + sc)

    def resnet20():
        layers, cin = [tnn.Conv2d(3, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU()], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                layers.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10))

    def vgg():
        layers, c = [], 3
        for v in (64, 64, "M", 128, 128, "M", 256, "M"):
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
            else:
                layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.ReLU()]
                c = v
        return tnn.Sequential(*layers, tnn.Flatten(), tnn.Linear(256 * 16, 10))

    return {"LeNet-5": lenet, "ResNet-20": resnet20, "small VGG": vgg}


def train_data(batch):
    """The random CIFAR-shaped batch every training row uses: x (batch, 3, 32, 32) float32, labels y."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, 3, 32, 32), dtype=DTYPE), rng.integers(0, 10, batch)


MINE = {"LeNet-5": lambda: models.create("lenet5", in_channels=3, rng=0),
        "ResNet-20": lambda: models.create("resnet20", rng=0),
        "small VGG": small_vgg}


def train_step(name, lib, x, y):
    """A no-argument training step (zero_grad, forward, loss, backward, SGD momentum step) of
    model ``name`` in ``lib`` ("minicnn" or "torch") on the batch (x, y); the model and the
    optimizer are built here."""
    if lib == "minicnn":
        net = MINE[name]()
        opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        loss = nn.CrossEntropyLoss()
        # As minicnn.train.fit does (and PyTorch, whose input needs no grad): the layer that
        # reads the images skips their gradient.
        first = data_layer(net, x)
        if first is not None:
            first.input_grad = False

        def step():
            opt.zero_grad()
            loss.forward(net(x), y)
            net.backward(loss.backward())
            opt.step()
        return step
    tnet = torch_models()[name]()
    topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def tstep():
        topt.zero_grad()
        TF.cross_entropy(tnet(tx), ty).backward()
        topt.step()
    return tstep


def train_cases(batch):
    x, y = train_data(batch)
    libs = ("minicnn", "torch") if torch is not None else ("minicnn",)
    return [(name, {lib: train_step(name, lib, x, y) for lib in libs}) for name in MINE]


# ----------------------------------------------------------------------------- memory

MEMORY_STEPS = 5


def _proc_status():
    """{"VmRSS": bytes, "VmHWM": bytes} of this process, or None where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}
    except (OSError, KeyError, ValueError):
        return None


def _reset_peak_rss():
    """Lower VmHWM to the current RSS (Linux >= 4.0), so that the peak read later is the
    steps' own and not the import's or the model build's; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss():
    """Peak RSS in bytes by getrusage (kB on Linux, bytes on macOS), or None (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def memory_probe(name, lib, batch):
    """Run in a fresh process (see ``memory_rows``): bytes of memory a training step needs.

    Builds the model, the batch and the optimizer exactly as the throughput rows do, takes
    the resident set size as the baseline, runs MEMORY_STEPS steps and reads the peak RSS.
    Returns a dict: "peak" (peak RSS - baseline), "held" (RSS after the steps - baseline),
    "exact" (False when the peak may include the time before the baseline, or, without
    /proc, the baseline is itself a peak), and for minicnn "np_peak" and "np_held" (see below).
    """
    import gc
    if torch is not None:
        torch.set_num_threads(runtime.cpu_count())
    x, y = train_data(batch)
    step = train_step(name, lib, x, y)
    gc.collect()
    status = _proc_status()
    if status is not None:
        exact = _reset_peak_rss()
        base = status["VmRSS"]
    else:
        exact, base = False, _maxrss()
        if base is None:
            return None
    for _ in range(MEMORY_STEPS):
        step()
    status = _proc_status()
    peak = status["VmHWM"] if status is not None else _maxrss()
    res = {"peak": peak - base, "held": None if status is None else status["VmRSS"] - base, "exact": exact}
    if lib == "minicnn":
        # NumPy reports its array data to tracemalloc.  Trace one step, so that what the
        # next step frees of it (the previous step's caches) is traced too, then take the
        # traced peak of the following step: the arrays live at once in a steady-state step,
        # not counting the state allocated before tracing (parameters, gradients, momentum,
        # workspace buffers) nor allocator slack.
        import tracemalloc
        tracemalloc.start()
        step()
        tracemalloc.reset_peak()
        held = tracemalloc.get_traced_memory()[0]
        step()
        res["np_held"], res["np_peak"] = held, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return res


def memory_rows(names, libs, batch):
    """{name: {lib: memory_probe result or an error string}}, each in a process of its own.

    A fresh process per measurement, because memory freed by one model stays in the
    process (glibc keeps freed heap for reuse) and would hide the next model's needs.
    """
    import json
    import subprocess
    rows = {}
    for name in names:
        rows[name] = {}
        for lib in libs:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--_memory-probe", name, lib,
                                   str(batch)] + (["--no-torch"] if torch is None else []),
                                  capture_output=True, text=True)
            if proc.returncode == 0 and proc.stdout.strip():
                rows[name][lib] = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
                rows[name][lib] = err
    return rows


# ----------------------------------------------------------------------------- timing

def time_alternating(impls, repeat, best=False):
    """Median (or with ``best``, smallest) seconds per call of every impl, taking turns run by run."""
    for fn in impls.values():
        fn()                                     # warm-up: first-touch allocations, caches
    times = {k: [] for k in impls}
    for _ in range(repeat):
        for k, fn in impls.items():
            # One untimed call first: the previous implementation's idle BLAS / OpenMP
            # threads keep spinning for a while and would steal the cores from this one,
            # and sleeping instead lets the (virtual) cores idle down, which slowed the
            # next call by up to 1.6x here.  So each turn times a back-to-back second call.
            fn()
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: (min(v) if best else statistics.median(v)) for k, v in times.items()}


def gemm_rates(size, repeat):
    """GFLOP/s of a size^3 float32 matmul: the best of the runs (a ceiling, not a typical rate)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=DTYPE)
    b = rng.standard_normal((size, size), dtype=DTYPE)
    impls = {"numpy": lambda: a @ b}
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        impls["torch"] = lambda: ta @ tb
    return {k: 2.0 * size ** 3 / t / 1e9 for k, t in time_alternating(impls, repeat, best=True).items()}


def wanted(only, name):
    return not only or any(part.strip().lower() in name.lower() for part in only.split(",") if part.strip())


def fmt_ms(t):
    return "-" if t is None else f"{t * 1e3:.1f}"


def fmt_ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    ap.add_argument("--only", default="", help="only rows whose name contains one of these "
                    "comma-separated substrings")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-textbook", action="store_true")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory table")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    ap.add_argument("--_memory-probe", nargs=3, metavar=("MODEL", "LIB", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global torch
    if args.no_torch:
        torch = None
    if args._memory_probe:      # the child process of memory_rows: one measurement, as JSON
        import json
        name, lib, batch = args._memory_probe
        print(json.dumps(memory_probe(name, lib, int(batch))))
        return
    threads = runtime.cpu_count()
    if torch is not None:
        torch.set_num_threads(threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# minicnn benchmark: {platform.machine()}, {threads} cores, load average {load:.2f}, "
          f"numpy {np.__version__}, torch {torch.__version__ if torch is not None else 'not importable'}; "
          f"float32, median of {args.repeat} after a warm-up")
    size = 256 if args.quick else 1024
    gemm = gemm_rates(size, args.repeat)
    print(f"# GEMM ceiling ({size}^3 float32, best run): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in gemm.items()))
    print()
    head = ("| workload (fwd+bwd) | shape | minicnn ms | PyTorch ms | textbook ms | minicnn / PyTorch "
            "| textbook / minicnn | minicnn GFLOP/s (% of GEMM) |")
    print(head)
    print("|" + "---|" * 8)
    rng = np.random.default_rng(0)
    for label, shape, setup in op_cases(args.quick):
        if not wanted(args.only, label):
            continue
        impls, flops = setup(rng)
        textbook = impls.pop("textbook")
        # The textbook path runs in a pass of its own: its threaded GEMMs leave OpenBLAS's
        # threads spinning for a while after each call, which slowed whatever ran next
        # (PyTorch's 64->64 8x8 conv took 16 ms instead of 8 right after it).
        t = time_alternating(impls, args.repeat)
        if not args.no_textbook:
            t["textbook"] = time_alternating({"textbook": textbook}, args.repeat)["textbook"]
        mine, theirs, tb = t["minicnn"], t.get("torch"), t.get("textbook")
        rate = "-" if flops is None else f"{flops / mine / 1e9:.0f} ({100 * flops / mine / 1e9 / gemm['numpy']:.0f}%)"
        print(f"| {label} | {shape} | {fmt_ms(mine)} | {fmt_ms(theirs)} | {fmt_ms(tb)} | "
              f"{fmt_ratio(mine, theirs)} | {fmt_ratio(tb, mine)} | {rate} |", flush=True)
    print()
    batch = 4 if args.quick else 128
    print(f"| training, batch {batch}, SGD momentum | minicnn images/s | PyTorch images/s | minicnn / PyTorch |")
    print("|---|---|---|---|")
    for name, impls in train_cases(batch):
        if not wanted(args.only, name):
            continue
        t = time_alternating(impls, 1 if args.quick else args.steps)
        mine, theirs = batch / t["minicnn"], (batch / t["torch"] if "torch" in t else None)
        print(f"| {name} | {mine:.0f} | {'-' if theirs is None else f'{theirs:.0f}'} | "
              f"{'-' if theirs is None else f'{mine / theirs:.2f}x'} |", flush=True)
    if not args.no_memory:
        print_memory(args, batch)


def fmt_mb(r, key):
    return "-" if not isinstance(r, dict) or r.get(key) is None else f"{r[key] / 2 ** 20:.1f}"


def print_memory(args, batch):
    names = [name for name in MINE if wanted(args.only, name)]
    if not names:
        return
    libs = ("minicnn", "torch") if torch is not None else ("minicnn",)
    rows = memory_rows(names, libs, batch)
    print()
    print(f"| training step memory, batch {batch} | minicnn MB | PyTorch MB | minicnn / PyTorch "
          f"| minicnn NumPy arrays MB (held between steps) |")
    print("|---|---|---|---|---|")
    notes = set()
    for name in names:
        mine, theirs = rows[name]["minicnn"], rows[name].get("torch")
        for lib, r in rows[name].items():
            if isinstance(r, str):
                notes.add(f"{name}, {lib}: {r}")
            elif r is None:
                notes.add("no /proc and no getrusage here: memory not measured")
            elif not r["exact"]:
                notes.add("peak RSS could not be reset after the model was built: the peaks are upper bounds"
                          if r["held"] is not None else "no /proc: the baseline is a peak, the figures lower bounds")
        ratio = (f"{mine['peak'] / theirs['peak']:.2f}x" if isinstance(mine, dict) and isinstance(theirs, dict)
                 and theirs["peak"] > 0 else "-")
        np_view = f"{fmt_mb(mine, 'np_peak')} ({fmt_mb(mine, 'np_held')})" if isinstance(mine, dict) else "-"
        print(f"| {name} | {fmt_mb(mine, 'peak')} | {fmt_mb(theirs, 'peak')} | {ratio} | {np_view} |", flush=True)
    for note in sorted(notes):
        print(f"# {note}")


if __name__ == "__main__":
    main()
