"""What benchmarks/run.py times: the op workloads and the networks, for every library.

A workload is a spec the parent process can print (label, shape, FLOPs) and a ``setup(lib)``
that a child process calls to get a no-argument function doing one unit of work in library
``lib``:

- "minicnn" and "baseline" -- two minicnn checkouts, run by the SAME code below: which one
  ``import minicnn`` finds is decided by the child's sys.path (harness.enter_checkout).  So
  this file uses only the long-stable public API (minicnn.functional ops, models.create,
  minicnn.nn, optim.SGD, nn.input_grad.data_layer), which older checkouts also have;
- "torch" -- PyTorch, the same networks written in torch_models.py;
- "textbook" -- the CS231n NumPy path of textbook.py (op workloads only).

Nothing here imports minicnn or torch at module level: a child imports only its own library.
Every workload draws its data from its own seeded Generator, so each library gets the same
arrays whatever rows ``--only`` selects.
"""
from collections import namedtuple

import numpy as np

import textbook

DTYPE = np.float32
MINICNN_LIBS = ("minicnn", "baseline")

OpCase = namedtuple("OpCase", "label shape flops setup")
OpCase.__doc__ = """An op workload: forward + backward of one layer.  ``flops`` counts a direct
convolution's multiply-adds (x2, backward = 2x forward), None for the non-conv ops;
``setup(lib)`` -> the no-argument function to time."""

ModelCase = namedtuple("ModelCase", "name key in_channels size batch big")
ModelCase.__doc__ = """A network timed end to end: ``key`` names it (models.create name, or
small_vgg), on a random (batch, in_channels, size, size) float32 batch with labels in
[0, 10).  ``big`` marks the slow ImageNet-sized row (fewer steps, --no-resnet18)."""


def _minicnn_functional():
    import minicnn.functional as F
    return F


def minicnn_fwd_bwd(forward, backward, dout):
    """One call of minicnn's op pair: ``forward()`` -> (out, cache), then backward(dout, cache)."""
    def mine():
        _, cache = forward()
        return backward(dout, cache)
    return mine


def torch_fwd_bwd(forward, inputs, dout):
    """One call of ``forward(*leaves).backward(dout)`` in PyTorch, the leaves made from the
    NumPy ``inputs`` (copies) and their gradients dropped before each call."""
    import torch
    leaves = [torch.from_numpy(np.array(a)).requires_grad_() for a in inputs]
    tdout = torch.from_numpy(dout)

    def theirs():
        for t in leaves:
            t.grad = None
        forward(*leaves).backward(tdout)
    return theirs


def conv_case(label, n, c, f, h, k, stride=1, pad=0):
    oh = (h + 2 * pad - k) // stride + 1

    def setup(lib):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        w = rng.standard_normal((f, c, k, k), dtype=DTYPE) * DTYPE(1 / np.sqrt(c * k * k))
        b = rng.standard_normal(f, dtype=DTYPE)
        dout = rng.standard_normal((n, f, oh, oh), dtype=DTYPE)
        if lib == "textbook":
            return lambda: textbook.tb_conv(x, w, b, stride, pad, dout)
        if lib == "torch":
            import torch.nn.functional as TF
            return torch_fwd_bwd(lambda tx, tw, tb: TF.conv2d(tx, tw, tb, stride, pad), (x, w, b), dout)
        F = _minicnn_functional()
        return minicnn_fwd_bwd(lambda: F.conv2d_forward(x, w, b, stride, pad), F.conv2d_backward, dout)
    return OpCase(label, f"N{n} {c}->{f} {h}x{h} k{k} s{stride} p{pad}",
                  3 * 2.0 * n * f * c * k * k * oh * oh, setup)   # fwd + dx + dw GEMMs


def pool_case(label, n, c, h, k, stride):
    def setup(lib):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        oh = (h - k) // stride + 1
        dout = rng.standard_normal((n, c, oh, oh), dtype=DTYPE)
        if lib == "textbook":
            return lambda: textbook.tb_max_pool(x, k, stride, dout)
        if lib == "torch":
            import torch.nn.functional as TF
            return torch_fwd_bwd(lambda tx: TF.max_pool2d(tx, k, stride), (x,), dout)
        F = _minicnn_functional()
        return minicnn_fwd_bwd(lambda: F.max_pool2d_forward(x, k, stride), F.max_pool2d_backward, dout)
    return OpCase(label, f"N{n} C{c} {h}x{h} {k}x{k}/{stride}", None, setup)


def lrn_case(label, n, c, h, size):
    alpha, beta, k = 1e-4, 0.75, 2.0

    def setup(lib):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        dout = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        if lib == "textbook":
            return lambda: textbook.tb_lrn(x, size, alpha, beta, k, dout)
        if lib == "torch":
            import torch.nn.functional as TF
            return torch_fwd_bwd(lambda tx: TF.local_response_norm(tx, size, alpha, beta, k), (x,), dout)
        F = _minicnn_functional()
        return minicnn_fwd_bwd(lambda: F.lrn_forward(x, size, alpha, beta, k), F.lrn_backward, dout)
    return OpCase(label, f"N{n} C{c} {h}x{h} n={size}", None, setup)


def bn_case(label, n, c, h):
    def setup(lib):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        gamma, beta = np.ones(c, DTYPE), np.zeros(c, DTYPE)
        rm, rv = np.zeros(c, DTYPE), np.ones(c, DTYPE)
        dout = rng.standard_normal((n, c, h, h), dtype=DTYPE)
        if lib == "textbook":
            return lambda: textbook.tb_batchnorm(x, gamma, beta, dout)
        if lib == "torch":
            import torch
            import torch.nn.functional as TF
            trm, trv = torch.from_numpy(rm), torch.from_numpy(rv)
            return torch_fwd_bwd(lambda tx, tg, tb: TF.batch_norm(tx, trm, trv, tg, tb, training=True),
                                 (x, gamma, beta), dout)
        F = _minicnn_functional()
        return minicnn_fwd_bwd(lambda: F.batchnorm_forward(x, gamma, beta, rm, rv, True),
                               F.batchnorm_backward, dout)
    return OpCase(label, f"N{n} C{c} {h}x{h}", None, setup)


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


# ----------------------------------------------------------------------------- networks

def model_cases(quick):
    """The networks of the training, inference and memory tables.  ``--quick`` shrinks the
    batches (and ResNet-18's images) to a smoke test's size."""
    batch = 4 if quick else 128
    big_size, big_batch = (32, 2) if quick else (224, 32)
    return [ModelCase("LeNet-5 (1 channel)", "lenet5", 1, 32, batch, False),
            ModelCase("LeNet-5 (3 channels)", "lenet5", 3, 32, batch, False),
            ModelCase("ResNet-20", "resnet20", 3, 32, batch, False),
            ModelCase("small VGG", "small_vgg", 3, 32, batch, False),
            ModelCase(f"ResNet-18 {big_size}x{big_size} (batch {big_batch})", "resnet18", 3,
                      big_size, big_batch, True)]


def batch_of(case):
    """The random batch a row uses: x (batch, in_channels, size, size) float32, labels y."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.batch, case.in_channels, case.size, case.size), dtype=DTYPE)
    return x, rng.integers(0, 10, case.batch)


def small_vgg(rng=0):
    """conv 64-64-pool-128-128-pool-256-pool (3x3 pad 1, ReLU), then Linear(256*4*4 -> 10)."""
    from minicnn import nn
    rng = np.random.default_rng(rng)
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1, rng=rng), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 4 * 4, 10, rng=rng))


def build_model(case, lib):
    """The network of ``case`` in ``lib`` ("minicnn"/"baseline" or "torch"), in training mode."""
    if lib == "torch":
        import torch_models
        if case.key == "lenet5":
            return torch_models.lenet5(case.in_channels)
        return torch_models.MODELS[case.key]()
    if case.key == "small_vgg":
        return small_vgg()
    from minicnn import models
    if case.key == "lenet5":
        return models.create("lenet5", in_channels=case.in_channels, rng=0)
    return models.create(case.key, rng=0)


def train_step(case, lib, x, y):
    """A no-argument training step (zero_grad, forward, loss, backward, SGD momentum step) of
    ``case``'s network in ``lib`` on the batch (x, y); the model and optimizer are built here."""
    net = build_model(case, lib)
    if lib == "torch":
        import torch
        import torch.nn.functional as TF
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def tstep():
            opt.zero_grad()
            TF.cross_entropy(net(tx), ty).backward()
            opt.step()
        return tstep
    from minicnn import nn, optim
    from minicnn.nn.input_grad import data_layer
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss = nn.CrossEntropyLoss()
    # As minicnn.train does (and PyTorch, whose input needs no grad): the layer that reads
    # the images skips their gradient.
    first = data_layer(net, x)
    if first is not None:
        first.input_grad = False

    def step():
        opt.zero_grad()
        loss.forward(net(x), y)
        net.backward(loss.backward())
        opt.step()
    return step


def infer_step(case, lib, x):
    """A no-argument inference call of ``case``'s network in ``lib``: evaluation mode (batch
    norm on running statistics), no gradients -- minicnn ``model.eval()`` under
    ``minicnn.nn.no_grad()``, PyTorch ``model.eval()`` under ``torch.no_grad()``.  (A minicnn
    checkout from before no_grad existed runs ``model(x)`` plainly, keeping its caches.)"""
    net = build_model(case, lib)
    net.eval()
    if lib == "torch":
        import torch
        tx = torch.from_numpy(x)

        def tinfer():
            with torch.no_grad():
                net(tx)
        return tinfer
    from minicnn import nn
    if not hasattr(nn, "no_grad"):
        return lambda: net(x)

    def infer():
        with nn.no_grad():
            net(x)
    return infer
