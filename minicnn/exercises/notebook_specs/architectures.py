"""Notebook ``architectures``: the questions of the CS231n lecture "CNN Architectures" --
output volumes, parameters, memory, receptive fields, operation counts -- as functions
checked against minicnn's own layers and blocks (templates/architecture.py), then the
lecture's blocks built from minicnn's layers (templates/blocks.py)."""
from minicnn.exercises.notebooks import check, code, exercise, md, question

CELLS = [
    md(r"""
# CNN architectures: the numbers behind the designs

From AlexNet to DenseNet, each design answers a question of cost: how big is the output of
a layer, how many parameters does it learn, how much memory does an image take, how many
multiply-adds does a module cost?  Each function below answers one for any configuration;
the check compares your numbers with what minicnn computes on its own layers and blocks
(`minicnn.summary`), on the lecture's case **and** on random configurations -- a number
typed in from the slides does not pass.

Conventions (minicnn's): shapes are `(C, H, W)` -- the slides write H x W x C, so the
lecture's 55x55x96 is `(96, 55, 55)` here; parameters count weights **and** biases unless
the docstring says otherwise; operation counts are **multiply-adds** (one multiply and its
add = 1 op, the lecture's and the papers' convention; FLOPs would be twice as many).
"""),
    code(r"""
import numpy as np
import matplotlib.pyplot as plt

import minicnn.nn as nn      # the layers the blocks at the end are built from
from minicnn.exercises import check_functions
from minicnn.models.vgg import cfgs
"""),
    md(r"""
## One layer: output volume and parameters

A conv layer with `F` filters of `K x K`, stride `S` and padding `P` on a `(C, H, W)` input
gives `(F, OH, OW)`, $OH = \lfloor (H + 2P - K) / S \rfloor + 1$; each filter spans **all** `C`
input channels: $K \cdot K \cdot C$ weights and one bias.
"""),
    exercise("conv_output_shape", "conv_params", "pool_params"),
    check("conv_output_shape", "conv_params", "pool_params"),
    question(r"""
AlexNet's CONV1 (96 filters of 11x11, stride 4, on 227x227x3) has 34,944 parameters and
POOL1 none.  Yet POOL1 is not free: what does it cost, and what does it buy the layers after it?
"""),
    md(r"""
## VGG: memory per image

VGG-16 is thirteen 3x3 convs (stride 1, pad 1) in five stages, each closed by a 2x2 max
pool, then three fully connected layers.  The forward pass of one image keeps every layer's
output for the backward: count the input plus the output of every conv, pool and fc layer
(ReLU works in place).
"""),
    exercise("vgg_memory"),
    check("vgg_memory"),
    code(r"""
try:
    activations, params = vgg_memory(cfgs["D"], (3, 224, 224), (4096, 4096, 1000))
    print(f"VGG-16, one 224x224 image: {activations / 1e6:.1f} M values "
          f"({4 * activations / 2**20:.0f} MiB in float32), {params / 1e6:.1f} M parameters")
except NotImplementedError as e:
    print(f"not yet: {e}")
"""),
    question(r"""
Where is most of VGG-16's activation memory, and where most of its parameters -- early or
late in the network?  What does that mean for the batch size that fits in a GPU?
"""),
    md(r"""
## Small filters: three 3x3 convs instead of one 7x7

Each extra KxK layer widens the receptive field by K - 1, so three 3x3 layers see a 7x7
region, like one 7x7 conv -- with fewer weights and three non-linearities instead of one.
"""),
    exercise("stacked_convs"),
    check("stacked_convs"),
    code(r"""
try:
    layers = np.arange(1, 6)
    answers = [stacked_convs(int(n), 3, 64) for n in layers]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(layers - 0.2, [a[1] for a in answers], width=0.4, label="n stacked 3x3 convs")
    ax.bar(layers + 0.2, [a[2] for a in answers], width=0.4, label="one conv with the same receptive field")
    ax.set_xticks(layers, [f"n={n}\nRF {a[0]}x{a[0]}" for n, a in zip(layers, answers)])
    ax.set_ylabel("weights (64 -> 64 channels)")
    ax.legend()
    plt.show()
except NotImplementedError as e:
    print(f"no picture yet: {e}")
"""),
    md(r"""
## GoogLeNet: the Inception module and its 1x1 bottlenecks

The naive module runs a 1x1, a 3x3 and a 5x5 conv and a 3x3 max pool side by side and
concatenates their outputs along the channels; the pool keeps all its input channels, so the
depth only grows.  GoogLeNet puts 1x1 convs before the 3x3 and 5x5 convs and after the pool
to shrink the depth first.  A conv's multiply-adds: $OH \cdot OW \cdot F \cdot K \cdot K \cdot C$.
"""),
    exercise("inception_naive", "inception_bottleneck"),
    check("inception_naive", "inception_bottleneck"),
    question(r"""
A 1x1 conv looks at a single pixel.  What does it compute across the channels, and why does
putting it in front of a 5x5 conv save operations without shrinking the output?
"""),
    md(r"""
## ResNet, global average pooling, MobileNet, SE and DenseNet

- a residual block adds its input to its output (`+ x`), so the block only learns a residual;
  the bottleneck block wraps its 3x3 conv in two 1x1 convs (C -> C/4 -> C);
- global average pooling replaces the big first fc layer by one mean per channel;
- MobileNet splits a 3x3 conv into a depthwise 3x3 conv (one filter per channel) and a 1x1
  conv that mixes the channels;
- a squeeze-and-excitation block rescales each channel by a weight computed from the
  channel means by two small fc layers;
- a dense block concatenates every layer's output to its input: the depth grows by
  `growth_rate` per layer.
"""),
    exercise("residual_params", "gap_vs_fc", "depthwise_separable_cost", "se_params", "dense_block"),
    check("residual_params", "gap_vs_fc", "depthwise_separable_cost", "se_params", "dense_block"),
    code(r"""
# Where the operations go: your answers for the lecture's Inception case and a MobileNet-sized conv.
try:
    naive = inception_naive((256, 28, 28), 128, 192, 96)[1]
    bottleneck = inception_bottleneck((256, 28, 28), 128, 64, 192, 64, 96, 64)[1]
    standard, separable = depthwise_separable_cost((256, 28, 28), 256, 1)
    labels = ["Inception naive", "Inception 1x1 bottlenecks", "3x3 conv 256->256", "depthwise separable"]
    plt.figure(figsize=(6, 2.8))
    plt.barh(labels, np.array([naive, bottleneck, standard, separable]) / 1e6)
    plt.xlabel("M multiply-adds, input (256, 28, 28)")
    plt.show()
except NotImplementedError as e:
    print(f"no picture yet: {e}")
"""),
    question(r"""
ResNet-50 (3.8 G multiply-adds) is deeper than VGG-16 (15.5 G) yet costs four times less.
Which of the designs above account for the difference?
"""),
    md(r"""
## Build the blocks

Now wire them, from minicnn's layers (`nn.Conv2d`, `nn.ReLU`, `nn.MaxPool2d`, `nn.Linear`,
`nn.GlobalAvgPool2d`, `nn.Sigmoid`, `nn.BatchNorm2d`, ...): the point is the wiring --
concatenation, addition, the 1x1 bottleneck, the channel scaling.  Write `forward(x)` and
`backward(dout)` yourself: `backward` returns `dx` and lets each layer's own backward fill
its parameters' `.grad`.  A layer caches its input, so use a separate instance for every
place a layer is used; where one tensor feeds two paths (a shortcut, the branches of an
Inception module, a dense block's concatenation) the gradients of the paths **add**.
The check compares your parameter count with minicnn's own block, your forward with
minicnn's computation from your layers' weights, and every gradient with numeric gradients;
minicnn's own blocks (`nn.Inception`, `nn.Bottleneck`, ...) are refused: they are the answers.
"""),
    exercise("InceptionModule"),
    check("InceptionModule"),
    exercise("BottleneckBlock", "DepthwiseSeparableBlock"),
    check("BottleneckBlock", "DepthwiseSeparableBlock"),
    exercise("SEBlock", "DenseBlock"),
    check("SEBlock", "DenseBlock"),
    question(r"""
In your `BottleneckBlock.backward`, the gradient reaching `x` is the sum of two terms.
Where does each come from, and why does the shortcut's term keep a 50-layer network trainable?
"""),
    md(r"""
## Everything at once

As `minicnn exercise check my_architectures.py architecture blocks` on a file
(`minicnn exercise new architecture --out my_architectures.py` and `... new blocks` write
the same skeletons).
"""),
    check("architecture", "blocks"),
]
