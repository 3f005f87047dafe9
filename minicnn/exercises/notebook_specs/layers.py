"""Notebook ``layers``: the linear layer, ReLU and the softmax cross-entropy loss."""
from minicnn.exercises.notebooks import check, code, exercise, md, question

CELLS = [
    md(r"""
# Layers: linear, ReLU, softmax cross-entropy

Every layer of a network is two functions:

- `forward(inputs) -> (out, cache)` computes the output and keeps in `cache` what the backward needs;
- `backward(dout, cache) -> gradients` receives $\partial L / \partial\,\text{out}$ (the *upstream
  gradient* `dout`, out's shape) and returns the gradient of the loss with respect to each input,
  by the chain rule.

Write the body of each function in the cell that holds its skeleton, run the cell, then run
the check under it.  The check is `minicnn exercise check`'s checker: it runs your function
on small random inputs in float64, compares it with minicnn's own op and every backward
with numeric gradients, and prints the relative error next to the tolerance it must stay
below and what a correct solution gives.  On a classic mistake it says which one.

Conventions are minicnn's (and PyTorch's): a batch of `N` examples, linear weights
`(out, in)`.  Your functions must be your own: one that calls minicnn is REFUSED.
"""),
    code(r"""
import numpy as np
import matplotlib.pyplot as plt

from minicnn.exercises import check_functions
"""),
    md(r"""
## Linear (fully connected) layer

$$\text{out} = x\,w^\top + b, \qquad x: (N, D),\quad w: (M, D),\quad b: (M,),\quad \text{out}: (N, M)$$

An input of shape `(N, d1, ..., dk)` -- an image batch `(N, C, H, W)` reaching the classifier --
is first flattened to `(N, D)` with `D = d1 * ... * dk`.

Backward, from $\text{out}_{nm} = \sum_d x_{nd} w_{md} + b_m$:

$$dx = \text{dout}\; w \;\;(N, D) \to x\text{'s shape}, \qquad dw = \text{dout}^\top x \;\;(M, D),
\qquad db = \textstyle\sum_n \text{dout}_n \;\;(M,)$$
"""),
    exercise("linear_forward"),
    check("linear_forward"),
    exercise("linear_backward"),
    check("linear_backward"),
    question(r"""
Every example of the batch used the same `w`.  Why is `dw` a **sum** over the batch and not
a mean, and where does the averaging over the batch happen instead?
"""),
    md(r"""
## ReLU

$$\text{relu}(x) = \max(0, x) \text{ elementwise}, \qquad dx = \text{dout} \cdot [x > 0]$$

The picture below draws your ReLU and its gradient (with `dout = 1`) once both are written.
"""),
    exercise("relu_forward", "relu_backward"),
    check("relu"),
    code(r"""
x = np.linspace(-3, 3, 121)
try:
    out, cache = relu_forward(x)
    dx = relu_backward(np.ones_like(x), cache)
    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    ax[0].plot(x, out)
    ax[0].set_title("relu_forward(x)")
    ax[1].plot(x, dx)
    ax[1].set_title("relu_backward(1, cache)")
    plt.show()
except NotImplementedError as e:
    print(f"no picture yet: {e}")
"""),
    question(r"""
A unit whose input is negative for every example of the data set is called *dead*.  Looking
at `relu_backward`, why does it stay dead during training?  Which of these initialisations
makes dead units more likely: weights scaled too large, or a large negative bias?
"""),
    md(r"""
## Softmax cross-entropy

For class scores $s_n$ (one row of `scores`, `K` classes) and label $y_n$:

$$p_{nk} = \frac{e^{s_{nk}}}{\sum_j e^{s_{nj}}}, \qquad
L = \frac{1}{N}\sum_n -\log p_{n y_n}, \qquad
\frac{\partial L}{\partial s_{nk}} = \frac{p_{nk} - [k = y_n]}{N}$$

`exp(1000)` overflows a float64.  Subtracting each row's maximum first changes nothing
($e^{s - c} / \sum e^{s_j - c} = e^s / \sum e^{s_j}$) and makes the largest exponent `exp(0) = 1`;
compute $\log p$ as $(s - c) - \log\sum_j e^{s_j - c}$ rather than `log(p)`, which is `-inf`
when `p` underflows to 0.
"""),
    exercise("softmax_cross_entropy"),
    check("softmax_cross_entropy"),
    code(r"""
# A sanity check CS231n teaches: with small random scores every class is about equally likely,
# so the loss at initialisation is about -log(1/K) = log(K).
rng = np.random.default_rng(0)
scores = 0.001 * rng.standard_normal((500, 10))
labels = rng.integers(0, 10, 500)
try:
    loss, _ = softmax_cross_entropy(scores, labels)
    print(f"loss with small random scores: {loss:.4f} (should be close to log(10) = {np.log(10):.4f})")
    # One example, 10 classes, every score 0 but the correct class's, t: the loss is about -t
    # when the class is far behind, log(10) at t = 0, and goes to 0 -- never below -- as it wins.
    t = np.linspace(-8, 8, 81)
    losses = [softmax_cross_entropy(np.eye(1, 10) * v, np.array([0]))[0] for v in t]
    plt.figure(figsize=(4.5, 2.8))
    plt.plot(t, losses)
    plt.axhline(np.log(10), color="gray", linestyle=":")
    plt.xlabel("score of the correct class (the 9 others are 0)")
    plt.ylabel("loss")
    plt.show()
except NotImplementedError as e:
    print(f"not yet: {e}")
"""),
    question(r"""
A network's first loss on CIFAR-10 (10 classes) is 23.0 instead of about 2.3.  What does
that tell you about its initial scores?
"""),
    md(r"""
## Everything at once

The last check runs every function of this notebook, as `minicnn exercise check my_layers.py
linear relu softmax` would on a file.  The same exercises as a plain Python file:
`minicnn exercise new linear --out my_linear.py`.
"""),
    check("linear", "relu", "softmax"),
]
