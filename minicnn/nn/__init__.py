"""minicnn.nn: modules (layers, blocks, losses) with hand-written backward passes.

    import minicnn.nn as nn
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, rng=0), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 32 * 32, 10, rng=0))
    scores = model(x)                     # forward, caching what backward needs
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(scores, y)
    model.zero_grad()
    model.backward(loss_fn.backward())    # fills every param.grad

See module.py for the Module contract and init.py for weight initialisation.  One file per
idea: layers.py (the plain layers), residual.py (BasicBlock, Bottleneck), preact.py,
squeeze_excitation.py, stochastic_depth.py, shortcuts.py, blocks.py (Inception, Fire,
dense, depthwise-separable), fractal.py, inverted_residual.py (MobileNet v2),
shuffle.py (ShuffleNet v2); fused.py runs BN + ReLU and add + ReLU in one
pass for the blocks, hooks.py lets a caller watch every module call, classifier.py swaps a
model's classifier (``Module.reset_classifier``), grad_mode.py gives ``no_grad()`` (inference:
forward passes that keep no caches).
"""
from minicnn.nn import init  # noqa: F401
from minicnn.nn.grad_mode import is_grad_enabled, no_grad  # noqa: F401
from minicnn.nn.module import Module, Parameter, Sequential, forward_hook, forward_hooks  # noqa: F401
from minicnn.nn.layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten,  # noqa: F401
                               GlobalAvgPool2d, Identity, Linear, LocalResponseNorm, MaxPool2d, ReLU,
                               Sigmoid)
from minicnn.nn.loss import CrossEntropyLoss  # noqa: F401
from minicnn.nn.shortcuts import ZeroPadShortcut  # noqa: F401
from minicnn.nn.residual import BasicBlock, Bottleneck, SEBottleneck  # noqa: F401
from minicnn.nn.preact import PreActBlock  # noqa: F401
from minicnn.nn.squeeze_excitation import SqueezeExcitation  # noqa: F401
from minicnn.nn.stochastic_depth import Residual, StochasticDepth  # noqa: F401
from minicnn.nn.blocks import (DenseBlock, DenseLayer, DepthwiseSeparableConv, Fire,  # noqa: F401
                               FractalBlock, Inception, ParallelConcat, Transition)
from minicnn.nn.inverted_residual import InvertedResidual, ReLU6  # noqa: F401
from minicnn.nn.shuffle import ShuffleUnit  # noqa: F401
