"""Notebook ``conv_pool``: convolution (naive loops, then im2col) and max pooling, with
hand-made filters and their feature maps on a CIFAR-10 image, and a naive vs im2col timing."""
from minicnn.exercises import templates
from minicnn.exercises.notebooks import check, code, exercise, md, question

# Average pooling joins the notebook where its exercise (templates/avgpool.py) exists.
POOLS = ("maxpool", "avgpool") if "avgpool" in templates.NAMES else ("maxpool",)

AVG_POOL = [
    md(r"""
## Average pooling

Each window is replaced by its mean.  With padding, the zeros count in the mean (every window
is divided by `size * size`, PyTorch's `count_include_pad=True`).  Backward: every input of a
window receives `dout / (size * size)` of that window's output; overlapping windows add, and
the padding's share is dropped.
"""),
    exercise("avg_pool_forward", "avg_pool_backward"),
    check("avgpool"),
    question(r"""
For one 2x2 window with `dout = 1`, what does each of its four inputs receive from max pooling,
and what from average pooling?
"""),
] if "avgpool" in POOLS else []

CELLS = [
    md(r"""
# Convolution and pooling

A convolutional layer slides `F` small filters over the image; each filter gives one
*feature map*.  You will write it twice: first as its definition (loops over the output
positions), then as one matrix product per image (im2col), the way minicnn and the
libraries compute it; then max pooling.

As in the first notebook: write the body of each function in its cell, run the cell, then
run the check under it (the checker of `minicnn exercise check`: relative error, the
tolerance, the error a correct solution gives, and a hint on a classic mistake).  Layout
is NCHW: `x` is `(N, C, H, W)`, conv weights `(F, C, KH, KW)`.
"""),
    code(r"""
import os
import time

import numpy as np
import matplotlib.pyplot as plt

import minicnn.functional as F
from minicnn.data.sample import load_sample, sample_classes
from minicnn.exercises import check_functions

# The project's tests run every notebook with MINICNN_NOTEBOOK_QUICK=1: tiny timings.
QUICK = os.environ.get("MINICNN_NOTEBOOK_QUICK") == "1"

# One image of the CIFAR-10 sample shipped with minicnn, as a (1, 3, 32, 32) float batch in [0, 1].
_, _, x_test, y_test = load_sample()
horse = sample_classes().index("horse")
image = x_test[y_test == horse][:1].astype(np.float64) / 255
plt.figure(figsize=(2, 2))
plt.imshow(image[0].transpose(1, 2, 0))
plt.axis("off")
plt.show()
"""),
    md(r"""
## Convolution, the definition

$$\text{out}[n, f, i, j] = b_f + \sum_{c, p, q} w[f, c, p, q]\;
x_{\text{pad}}[n, c,\; i\,S + p,\; j\,S + q]$$

with $x_{\text{pad}}$ the input with `pad` zeros on each side of H and W, stride $S$, and
output size

$$OH = \left\lfloor \frac{H + 2P - KH}{S} \right\rfloor + 1, \qquad
OW = \left\lfloor \frac{W + 2P - KW}{S} \right\rfloor + 1$$

(floor: a window that would stick out of the padded input is dropped).  The kernel is not
flipped -- this is a cross-correlation, as in every deep-learning library.  Loop over the
output positions `(i, j)`; the sum over `(c, p, q)` and the batch can be one NumPy
expression per position.
"""),
    exercise("conv_forward_naive"),
    check("conv_forward_naive"),
    question(r"""
AlexNet's first layer takes a 227x227x3 image and has 96 filters of 11x11, stride 4, no
padding.  What is its output volume (H x W x depth), and how many parameters does it have
(count the biases)?
"""),
    md(r"""
### Hand-made filters and their feature maps

Before any training, filters can be written by hand.  The four below look for vertical
edges, horizontal edges (Sobel), a blurred copy, and "more red than green".  Your
`conv_forward_naive` turns the horse into four feature maps; bright means a strong response.
"""),
    code(r"""
sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64)
filters = np.zeros((4, 3, 3, 3))
filters[0] = sobel / 3                    # the same on every colour channel: edges of the brightness
filters[1] = sobel.T / 3
filters[2] = 1 / 27                       # the average of the 3x3x3 window
filters[3, 0, 1, 1], filters[3, 1, 1, 1] = 1, -1
names = ["vertical edges", "horizontal edges", "blur", "red - green"]
try:
    maps, _ = conv_forward_naive(image, filters, np.zeros(4), stride=1, pad=1)
    fig, ax = plt.subplots(2, 4, figsize=(9, 4.5))
    for k in range(4):
        shown = filters[k].transpose(1, 2, 0)     # (KH, KW, C): a filter is a tiny colour image
        ax[0, k].imshow(0.5 + shown / (2 * np.abs(shown).max()))   # grey is 0
        ax[0, k].set_title(names[k], fontsize=9)
        ax[1, k].imshow(np.abs(maps[0, k]) if k < 2 else maps[0, k], cmap="gray")
    for a in ax.flat:
        a.axis("off")
    plt.show()
except NotImplementedError as e:
    maps = None
    print(f"no feature maps yet: {e}")
"""),
    md(r"""
## Convolution backward

Each output $\text{out}[n, f, i, j]$ read one window of $x_{\text{pad}}$ through $w_f$, so its
gradient `dout[n, f, i, j]` flows back

- to that window: $dx_{\text{pad}}[n, :, \text{window}] \mathrel{+}= \text{dout}[n, f, i, j]\, w_f$ --
  windows overlap when the stride is smaller than the kernel, so **add**, then crop the padding;
- to the filter: $dw_f \mathrel{+}= \text{dout}[n, f, i, j]\; x_{\text{pad}}[n, :, \text{window}]$,
  summed over the batch and every position;
- to the bias: $db_f = \sum_{n, i, j} \text{dout}[n, f, i, j]$.

Shapes: `dx` (N, C, H, W), `dw` (F, C, KH, KW), `db` (F,).
"""),
    exercise("conv_backward_naive"),
    check("conv_backward_naive"),
    question(r"""
Why is the bias gradient of a convolution summed over the output positions $(i, j)$ as
well as over the batch, when a linear layer's sums over the batch only?
"""),
    md(r"""
## im2col: convolution as a matrix product

Copy every window of the padded input into a column: image `n` becomes a matrix of
`C*KH*KW` rows (one per tap, channel slowest: row $(c\,KH + p)\,KW + q$) and `OH*OW` columns
(one per output position).  The filters reshaped to `(F, C*KH*KW)` times that matrix is the
whole convolution, `(F, OH*OW)`, reshaped to `(F, OH, OW)` -- one large matrix product that
BLAS runs fast.

`col2im` is im2col's adjoint: it adds each column back onto the window it came from (a
pixel covered by several windows receives the sum).  The backward of the convolution then
is: $dw = \text{dout}\cdot\text{cols}^\top$, $d\text{cols} = w^\top\,\text{dout}$,
$dx = \text{col2im}(d\text{cols})$.
"""),
    exercise("im2col", "col2im"),
    check("im2col", "col2im"),
    exercise("conv_forward_im2col", "conv_backward_im2col"),
    check("conv_forward_im2col", "conv_backward_im2col"),
    md(r"""
### How much faster?

The same convolution timed three ways: your loops, your im2col, and minicnn's
`conv2d_forward` (im2col in a Cython kernel, then the product).
"""),
    code(r"""
rng = np.random.default_rng(0)
n, size, filters_out, repeats = (2, 16, 8, 1) if QUICK else (8, 32, 16, 2)
x = rng.standard_normal((n, 3, size, size))
w = rng.standard_normal((filters_out, 3, 3, 3))
b = np.zeros(filters_out)


def best_time(fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x, w, b, 1, 1)
        times.append(time.perf_counter() - start)
    return min(times)


timings = {}
for label, fn in [("naive (yours)", conv_forward_naive), ("im2col (yours)", conv_forward_im2col),
                  ("minicnn conv2d_forward", F.conv2d_forward)]:
    try:
        timings[label] = best_time(fn)
    except NotImplementedError as e:
        print(f"not timed: {e}")
for label, seconds in timings.items():
    print(f"{label:>24}: {1000 * seconds:8.2f} ms")
plt.figure(figsize=(6, 2.5))
plt.barh(list(timings), [1000 * s for s in timings.values()])
plt.xlabel(f"ms for {n} images of 3x{size}x{size}, {filters_out} filters of 3x3")
plt.show()
"""),
    question(r"""
For a 3x3 convolution with stride 1 and padding 1, how many times larger than the input is
im2col's matrix?  Why is the matrix product still faster than the loops?
"""),
    md(r"""
## Max pooling

Each `size x size` window (stride `S`) is replaced by its maximum, channel by channel: `out`
is `(N, C, OH, OW)`, its size given by the convolution's formula with `K = size` (the
skeleton's docstring says which padding, if any, the function takes).

Backward: the window's gradient goes to the position of its maximum -- the only input that
moved the output -- and nowhere else.  On ties, to the first maximum in row-major order, as
minicnn, PyTorch and cuDNN do.  Windows overlap when `stride < size` (AlexNet: 3x3, stride
2), so add.
"""),
    exercise("max_pool_forward", "max_pool_backward"),
    check("maxpool"),
    code(r"""
try:
    if maps is None:
        raise NotImplementedError("conv_forward_naive is not written yet")
    pooled, _ = max_pool_forward(np.abs(maps[:, :2]), 2, 2)
    fig, ax = plt.subplots(1, 4, figsize=(9, 2.5))
    for k in range(2):
        ax[2 * k].imshow(np.abs(maps[0, k]), cmap="gray")
        ax[2 * k].set_title(f"{names[k]} {maps.shape[2]}x{maps.shape[3]}", fontsize=9)
        ax[2 * k + 1].imshow(pooled[0, k], cmap="gray")
        ax[2 * k + 1].set_title(f"max-pooled {pooled.shape[2]}x{pooled.shape[3]}", fontsize=9)
    for a in ax:
        a.axis("off")
    plt.show()
except NotImplementedError as e:
    print(f"no pooled maps yet: {e}")
"""),
    question(r"""
AlexNet's first pooling layer (3x3, stride 2) takes the 55x55x96 output of CONV1.  What is
its output volume, and how many parameters does it have?  Why that many?
"""),
    *AVG_POOL,
    md(rf"""
## Everything at once

As `minicnn exercise check my_conv.py conv {' '.join(POOLS)}` on a file (`minicnn exercise new
conv --out my_conv.py` writes the same skeletons as a plain Python file).
"""),
    check("conv", *POOLS),
]
