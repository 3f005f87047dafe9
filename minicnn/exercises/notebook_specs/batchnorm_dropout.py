"""Notebook ``batchnorm_dropout``: batch normalisation (forward, backward, running statistics)
and inverted dropout, with their effect on activations and on a CIFAR-10 image drawn."""
from minicnn.exercises.notebooks import check, code, exercise, md, question

CELLS = [
    md(r"""
# Batch normalisation and dropout

Two layers that behave differently in training and in evaluation: batch normalisation
normalises with the batch's statistics while training and with running averages
afterwards; dropout zeroes random units while training and does nothing afterwards.

As before: write each function in its cell, run it, run the check under it (the checker of
`minicnn exercise check`, which prints the relative error, the tolerance and what a correct
solution gives, and names a classic mistake when it sees one).
"""),
    code(r"""
import numpy as np
import matplotlib.pyplot as plt

from minicnn.data.sample import load_sample
from minicnn.exercises import check_functions
"""),
    md(r"""
## Batch normalisation, forward

For each feature (a column of `x` of shape `(N, D)`, or a channel of `x` of shape
`(N, C, H, W)`, whose statistics are taken over N, H and W), over the $m$ values of the batch:

$$\mu = \frac{1}{m}\sum x, \qquad \sigma^2 = \frac{1}{m}\sum (x - \mu)^2, \qquad
\hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad \text{out} = \gamma\,\hat x + \beta$$

In evaluation $\mu$ and $\sigma^2$ are the running averages, updated in training **in place**
with PyTorch's momentum (the weight of the new value; CS231n's `momentum=0.9` is the weight of
the old one):

$$\text{running\_mean} \leftarrow (1 - m_o)\,\text{running\_mean} + m_o\,\mu, \qquad
\text{running\_var} \leftarrow (1 - m_o)\,\text{running\_var} + m_o\,\frac{m}{m - 1}\sigma^2$$

(the running variance is the unbiased one; $\hat x$ uses the biased $\sigma^2$).
"""),
    exercise("batchnorm_forward"),
    check("batchnorm_forward"),
    code(r"""
# Activations far from zero mean and unit variance, before and after your batch norm (gamma=1, beta=0).
rng = np.random.default_rng(0)
a = 5 + 3 * rng.standard_normal((200, 3)) * np.array([1, 2, 0.5])
try:
    out, _ = batchnorm_forward(a, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True)
    print("before: mean", a.mean(axis=0).round(2), " std", a.std(axis=0).round(2))
    print("after:  mean", out.mean(axis=0).round(2), " std", out.std(axis=0).round(2))
    fig, ax = plt.subplots(1, 2, figsize=(8, 2.5), sharey=True)
    ax[0].hist(a, bins=30, histtype="step")
    ax[0].set_title("three features before")
    ax[1].hist(out, bins=30, histtype="step")
    ax[1].set_title("after batch norm")
    plt.show()
except NotImplementedError as e:
    print(f"no picture yet: {e}")
"""),
    question(r"""
A network with batch norm is trained, then asked to classify a single image.  Why must it
use the running statistics instead of the statistics of that batch of one?
"""),
    md(r"""
## Batch normalisation, backward

$\mu$ and $\sigma^2$ depend on every $x$ of the batch, so each input's gradient has three
paths: through $\hat x$ directly, through $\mu$ and through $\sigma^2$.  Collected, with
$g = \gamma / \sqrt{\sigma^2 + \epsilon}$ and means over the $m$ values of a feature:

$$dx = g \left(\text{dout} - \overline{\text{dout}} - \hat x\;\overline{\text{dout}\cdot\hat x}\right),
\qquad d\gamma = \sum \text{dout}\cdot \hat x, \qquad d\beta = \sum \text{dout}$$

In evaluation the statistics are constants: $dx = g\,\text{dout}$.
"""),
    exercise("batchnorm_backward"),
    check("batchnorm_backward"),
    question(r"""
Why does the batch-norm gradient $dx$ of a feature sum to zero over the batch (in training)?
What does that say about adding a constant to every $x$?
"""),
    md(r"""
## Inverted dropout

In training each value is zeroed with probability $p$ (the probability of **dropping**) and
the survivors are scaled by $1 / (1 - p)$, so that the expected value is unchanged and
evaluation is the identity.  Draw the mask from the `rng` you are given
(`rng.random(x.shape)`), never from `np.random`: the checker replays the same Generator.

$$\text{out} = x \cdot \text{mask}, \quad \text{mask} = \frac{[u \ge p]}{1 - p},\; u \sim U[0, 1);
\qquad dx = \text{dout} \cdot \text{mask}$$
"""),
    exercise("dropout_forward", "dropout_backward"),
    check("dropout"),
    code(r"""
# Your dropout on the brightness of a CIFAR-10 image of the shipped sample, at three rates.
# The survivors are scaled by 1/(1-p): brighter (white where they pass 1), the mean kept.
_, _, x_test, _ = load_sample()
image = x_test[:1].astype(np.float64).mean(axis=1, keepdims=True) / 255   # (1, 1, 32, 32)
try:
    fig, ax = plt.subplots(1, 4, figsize=(9, 2.6))
    ax[0].imshow(image[0, 0], cmap="gray", vmin=0, vmax=1)
    ax[0].set_title(f"image\nmean {image.mean():.3f}", fontsize=9)
    for k, p in enumerate([0.25, 0.5, 0.75], start=1):
        out, _ = dropout_forward(image, p, True, np.random.default_rng(0))
        ax[k].imshow(out[0, 0], cmap="gray", vmin=0, vmax=1)
        ax[k].set_title(f"p = {p}\nmean {out.mean():.3f}", fontsize=9)
    for a in ax:
        a.axis("off")
    plt.show()
except NotImplementedError as e:
    print(f"no picture yet: {e}")
"""),
    question(r"""
With dropout that is *not* inverted (no $1/(1-p)$ in training), what would evaluation have to
do instead, and why is the inverted form preferred?
"""),
    md(r"""
## Everything at once

As `minicnn exercise check my_layers.py batchnorm dropout` on a file.
"""),
    check("batchnorm", "dropout"),
]
