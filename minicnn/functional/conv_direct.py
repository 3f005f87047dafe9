"""Direct convolution for thin float32 layers, with AVX2 or AVX-512 vector kernels.

The naive loops' algebra again (``conv.conv2d_forward_naive``), but the C kernel of
``minicnn/_ext/direct_conv.h`` computes a register block of filters x output positions at
a time with vector FMAs.  It pays where im2col's GEMMs would be too thin for BLAS (16
filters: a GEMM 16 rows tall runs at a fraction of its peak).  The kernel is compiled for
AVX-512 and for AVX2; ``best_isa`` asks the CPU which one runs, and ISA or
$MINICNN_DIRECT_ISA can cap it (below).
"""
import os

import numpy as np

from minicnn import backend, runtime
from minicnn.functional import conv_im2col, conv_winograd

# The direct kernel runs stride-1 float32 layers with at most this many input and output
# channels.  There im2col's GEMMs are 16 rows tall and BLAS runs them at a fraction of
# its peak.  Measured (one core, CIFAR ResNet 16->16 32x32, per image, AVX-512): forward 79 us
# by im2col + GEMM, 20 us direct; dW 50 -> 30 us.  Whole layers (batch 128, 2 cores,
# alternating runs), im2col -> direct fwd / bwd ms: that layer 5.8 -> 1.6 / 10.5 -> 4.2
# (AVX2: 3.6 / 8.0 before the dW kernel); LeNet-5's 6->16 5x5 0.65 -> 0.37 / 1.22 -> 1.04.
# Wider layers gain less and keep Winograd (32->32 16x16: 2.3 -> 1.9 / 5.0 -> 4.6 with
# AVX-512, but 2.4 -> 3.3 / 5.1 -> 6.3 with AVX2) and 8-wide rows lose (64->64 8x8: 1.4 -> 3.7 fwd).
MAX_CHANNELS = 16
# The weight-gradient kernel takes a chunk of images per call, their padded copies about this
# many bytes (kept in the core's L2 cache while every block of filters and taps reads them).
GRAD_CHUNK_BYTES = 512 << 10
# The backward pass computes dx by the direct kernel only for layers with at least this many
# input channels: dx's conv has them as its filters, the kernel works on blocks of 8 filters,
# and with fewer col2im's GEMM wastes less.  Measured (batch 128, 2 cores, AVX-512), dx ms by
# col2im / direct at 1, 3, 4, 6 input channels: 16 filters 5x5 on 14x14 (LeNet-5's second conv
# has 6) 0.47 / 0.91, 0.77 / 0.89, 0.93 / 0.93, 1.20 / 0.95; 16 filters 3x3 pad 1 on 32x32
# 1.63 / 1.57, 2.38 / 1.60, 2.62 / 1.59, 3.61 / 1.57; 6 filters 5x5 on 32x32 1.13 / 1.30,
# 2.17 / 1.35, 3.31 / 1.42, 4.37 / 1.42.
MIN_DX_CHANNELS = 4
# The kernel's instruction set: None = the best this CPU has (direct.isa()), or the cap set by
# $MINICNN_DIRECT_ISA; 0 = never use the direct kernel; 1 = AVX2 + FMA, 2 = AVX-512 (the tests
# force each one they can run).
ISA = None
# dW of a 3x3 layer that Winograd also takes (16 channels in and out: the CIFAR ResNets'
# first stage) comes from the Winograd path, dx and the forward from the direct kernel.
# Measured (batch 128, 2 cores, AVX-512), 16->16 32x32 ms, direct / Winograd: forward 2.71 /
# 2.72, dx 2.68 / 3.27, dW 4.64 / 3.65.  False: dW by the direct kernel too (the tests check both).
WINOGRAD_DW = True
# $MINICNN_DIRECT_ISA caps it for a process -- to see how minicnn runs on a CPU without AVX-512,
# as ONEDNN_MAX_CPU_ISA does for oneDNN.
ISA_NAMES = {"none": 0, "avx2": 1, "avx512": 2}


def _isa_cap():
    if ISA is not None:
        return ISA
    name = os.environ.get("MINICNN_DIRECT_ISA", "").strip().lower()
    if not name:
        return 2
    if name not in ISA_NAMES:
        raise ValueError(f"MINICNN_DIRECT_ISA: expected one of {', '.join(ISA_NAMES)}, "
                         f"received {name!r}")
    return ISA_NAMES[name]


def best_isa():
    """The instruction set the direct kernel runs with on this CPU: 2 AVX-512, 1 AVX2 + FMA,
    0 none (no such CPU, the kernel not built, or capped by ISA / $MINICNN_DIRECT_ISA)."""
    direct = backend.cython_kernels(np, "direct")
    if direct is None:
        return 0
    return min(_isa_cap(), direct.isa())


def applies(x, w, stride, pad, groups):
    """True if conv2d_forward should run this layer by the direct kernel: float32, stride 1,
    no groups, at most MAX_CHANNELS channels, padding within the kernel, and a CPU for it."""
    f, cg, kh, kw = w.shape
    if (x.dtype != np.float32 or stride != 1 or groups != 1 or max(f, cg) > MAX_CHANNELS
            or pad > min(kh, kw) - 1):       # the backward pass's dx conv pads by k - 1 - pad
        return False
    return best_isa() > 0


def forward(x, w, b, pad_h, pad_w, isa=None):
    """out (N, F, OH, OW) of a stride-1 conv by the direct kernel, a chunk of images per call,
    chunks over the cores.

    Also the backward pass's dx (a stride-1 conv of dout with the flipped, transposed
    filters, padded by k - 1 - pad).  ``isa``: the instruction set (None: best_isa()).
    """
    direct = backend.cython_kernels(np, "direct")
    isa = best_isa() if isa is None else isa
    x = np.ascontiguousarray(x)
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = h + 2 * pad_h - kh + 1, wd + 2 * pad_w - kw + 1
    out = runtime.empty_output((n, f, oh, ow), np.float32)
    scratch = direct.scratch_len(isa, c, oh, ow, kh, kw)
    # A few images per call: the padding is zeroed once per call, and the chunks are still
    # small enough to share out evenly between the cores.
    step = max(1, min(8, n // (4 * runtime.cpu_count())))
    # 16 filters, rows of at most 12: weights packed for the kernel with the filters in the
    # vector lanes, not the output columns (direct_conv.h).  Batch 128, one core, columns ->
    # lanes, ms: LeNet-5's 6 -> 16 5x5 on 14x14 1.01 -> 0.70; 16 -> 16 3x3 pad 1 on 12x12
    # 1.30 -> 0.99, 8x8 0.79 -> 0.65, 4x4 0.42 -> 0.34.
    block = direct.LANES if direct.lanes_fit(isa, f, ow) else 0
    wpk = direct.pack_weights(w, isa, block)

    def images(chunks):
        buf = runtime.workspace("direct_pad", (scratch,), np.float32)
        for n0 in chunks:
            m = min(step, n - n0)
            direct.conv(x[n0:n0 + m], wpk, f, pad_h, pad_w, b, out[n0:n0 + m], buf, isa)

    runtime.run_chunks(images, n, step, n * f * c * kh * kw * oh * ow)
    return out


def backward(dout, x, w, pad, need_dx=True, need_dw=True):
    """(dx, dw) of forward, both gradients by the direct kernels.

    dW: ``direct.grad_w`` (a register block of filters x kernel taps, each a vector of sums
    over output positions), a chunk of images per call, summed per thread over fixed shares
    of the chunks and added up in a fixed order (``runtime.sum_over_chunks``).  dx: the
    forward kernel again,

        dx[n, c, y, z] = sum_{f,p,q} w[f, c, KH-1-p, KW-1-q] * dout_pad[n, f, y + p, z + q]

    -- the stride-1 conv of dout, padded by KH-1-pad (KW-1-pad), with the filters flipped in
    both spatial axes and their in/out channels swapped.  Layers with few input channels
    (they are dx's filters, and the kernel works in blocks of 8) take col2im for dx instead,
    and 3x3 layers Winograd takes have their dW from it (WINOGRAD_DW).
    ``need_dx=False`` / ``need_dw=False`` skip dx / dW (None).
    """
    direct = backend.cython_kernels(np, "direct")
    isa = best_isa()
    f, c, kh, kw = w.shape
    dout = np.ascontiguousarray(dout)
    if need_dx and c < MIN_DX_CHANNELS:
        dx, _ = conv_im2col.backward(dout, x, w, 1, pad, 1, need_dw=False)
    elif need_dx:
        w_flip = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]                 # (C, F, KH, KW)
        dx = forward(dout, w_flip, None, kh - 1 - pad, kw - 1 - pad, isa)
    else:
        dx = None
    if not need_dw:
        return dx, None
    if WINOGRAD_DW and conv_winograd.applies(w.shape, 1, 1):
        return dx, conv_winograd.backward(dout, x, w, pad, need_dx=False)[1]
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    oh, ow = dout.shape[2:]
    per_image = direct.grad_w_scratch_len(isa, 1, c, f, oh, ow, kh, kw)
    step = max(1, min(n, GRAD_CHUNK_BYTES // (4 * per_image)))

    def images(chunks):
        scratch = runtime.workspace("direct_grad", (per_image * step,), np.float32)
        dw = np.zeros(w.shape, dtype=np.float32)
        for n0 in chunks:
            direct.grad_w(x[n0:n0 + step], dout[n0:n0 + step], pad, pad, dw, scratch, isa)
        return dw

    dw = runtime.sum_over_chunks(images, n, step, n * f * c * kh * kw * oh * ow)
    return dx, dw
