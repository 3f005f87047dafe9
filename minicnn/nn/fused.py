"""Fused pairs for the blocks (and the ResNets' stems): ``relu(bn(x))`` and ``relu(a + b)``,
each in one pass over memory.

A block could write ``self.relu1(self.bn1(h))`` and ``self.relu_out(out + identity)``,
and that is exactly what these helpers compute.  On the CPU the pair runs as one
Cython kernel instead (``F.batchnorm_relu_forward``, ``F.add_relu_forward``): the BN
output, or the sum, is never written to memory and read back (a few percent of a
ResNet-20 training step on a laptop CPU, where the convolutions dominate; more on ResNet-18's
stem, whose BN output is 100 MB at batch 32).  The block
still *owns* the BN and ReLU layers (their parameters, buffers, names and
hyper-parameters); only the arithmetic is fused.

The contract, CS231n style::

    out, cache = bn_relu(bn, relu, x)            # the block keeps ``cache`` in its own _cache
    dx = bn_relu_backward(bn, relu, dout, cache) # adds dgamma, dbeta into bn's .grad
    out, cache = add_relu(relu, a, b)
    d = add_relu_backward(relu, dout, cache)     # the gradient of a AND of b (they were summed)

Nothing here reads or writes another module's cache: the fused cache goes back to the
block that called.  This file is the only one that knows about fusion, and it decides,
in ``_fuse``, when not to fuse:

* the layers are exactly ``BatchNorm2d`` and ``ReLU`` (a subclass may compute something
  else in its forward, so it must run);
* no forward hook is active.  A hook (``minicnn.summary``'s layer table, ``minicnn.viz``'s
  feature maps, ``minicnn.nn.input_grad``'s search for the first conv) is promised a call
  for every module, and a fused kernel calls neither the BN nor the ReLU.  So while a
  hook watches, the helpers call ``relu(bn(x))`` as layers, which then keep their own
  caches.  Both ways give the same numbers (the same arithmetic in the same order; see
  tests/test_nn_fused.py), so hooks change what is reported, never what is computed --
  and training, which runs without hooks, takes the fused path.
"""
from minicnn.functional.activations import add_relu_forward, relu_backward
from minicnn.functional.batchnorm import batchnorm_relu_backward, batchnorm_relu_forward
from minicnn.nn import hooks
from minicnn.nn.layers import BatchNorm2d, ReLU


class _RanAsLayers:
    """The cache of a pair that ran as its two layers: each holds its own cache."""

    def __repr__(self):
        return "RAN_AS_LAYERS"


RAN_AS_LAYERS = _RanAsLayers()


def _fuse(relu, bn=None):
    """Whether to run the fused kernel for these layers: the module doc's two rules."""
    return not hooks.ACTIVE and type(relu) is ReLU and (bn is None or type(bn) is BatchNorm2d)


def bn_relu(bn, relu, x):
    """``relu(bn(x))`` for a BatchNorm2d and a ReLU layer -> (out, cache).

    - x: (N, C, H, W) -> out: the same shape.  In training the BN's running statistics
      are updated, as ``bn(x)`` would.
    """
    if not _fuse(relu, bn):
        return relu(bn(x)), RAN_AS_LAYERS
    bn.check_input(x)
    return batchnorm_relu_forward(x, bn.weight.data, bn.bias.data, bn.running_mean,
                                  bn.running_var, bn.training, bn.momentum, bn.eps)


def bn_relu_backward(bn, relu, dout, cache):
    """Backward of ``bn_relu``: ``bn.backward(relu.backward(dout))`` -> dx; adds bn's
    dgamma and dbeta into ``bn.weight.grad`` and ``bn.bias.grad``."""
    if cache is RAN_AS_LAYERS:
        return bn.backward(relu.backward(dout))
    dx, dgamma, dbeta = batchnorm_relu_backward(dout, cache)
    bn._accumulate(bn.weight, dgamma)   # as bn.backward does: nothing into a frozen parameter
    bn._accumulate(bn.bias, dbeta)
    return dx


def add_relu(relu, a, b):
    """``relu(a + b)`` for a ReLU layer -> (out, cache): a residual block's output, where ``a``
    is the branch and ``b`` the shortcut.  ``b=None`` (a block without a shortcut) is
    ``relu(a)``.

    - a, b: arrays of one shape and dtype -> out: that shape
    """
    if b is None:
        return relu(a), RAN_AS_LAYERS
    if not _fuse(relu) or a.shape != b.shape or a.dtype != b.dtype:
        return relu(a + b), RAN_AS_LAYERS
    return add_relu_forward(a, b)


def add_relu_backward(relu, dout, cache):
    """Backward of ``add_relu`` -> the gradient of the sum, which is that of ``a`` and of ``b``."""
    if cache is RAN_AS_LAYERS:
        return relu.backward(dout)
    return relu_backward(dout, cache)
