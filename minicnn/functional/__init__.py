"""The ops: each a pair of plain functions, ``forward(...) -> (out, cache)`` and
``backward(dout, cache) -> grads``, in the style of CS231n's layers.py.

Every forward validates its inputs and raises ``ValueError`` naming the op, what it
expected and what it received.  Every op runs in float32 and float64 (and keeps the
input's dtype), with NumPy or CuPy arrays (see ``minicnn.backend``).

    import minicnn.functional as F
    out, cache = F.conv2d_forward(x, w, b, stride=1, pad=1)
    dx, dw, db = F.conv2d_backward(dout, cache)
"""
from minicnn.functional.activations import (relu6_backward, relu6_forward, relu_backward, relu_forward,
                                           sigmoid_backward, sigmoid_forward)
from minicnn.functional.batchnorm import batchnorm_backward, batchnorm_forward
from minicnn.functional.conv import (conv2d_backward, conv2d_backward_naive, conv2d_forward,
                                     conv2d_forward_naive)
from minicnn.functional.dropout import dropout_backward, dropout_forward
from minicnn.functional.im2col import col2im, im2col
from minicnn.functional.linear import linear_backward, linear_forward
from minicnn.functional.loss import softmax_cross_entropy
from minicnn.functional.lrn import lrn_backward, lrn_forward
from minicnn.functional.pool import (adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward,
                                     avg_pool2d_backward, avg_pool2d_forward, global_avg_pool_backward,
                                     global_avg_pool_forward, max_pool2d_backward, max_pool2d_forward)
from minicnn.functional.shuffle import channel_shuffle_backward, channel_shuffle_forward

__all__ = [
    "conv2d_forward", "conv2d_backward", "conv2d_forward_naive", "conv2d_backward_naive",
    "im2col", "col2im",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
    "global_avg_pool_forward", "global_avg_pool_backward",
    "relu_forward", "relu_backward", "relu6_forward", "relu6_backward", "sigmoid_forward", "sigmoid_backward",
    "channel_shuffle_forward", "channel_shuffle_backward",
    "linear_forward", "linear_backward", "lrn_forward", "lrn_backward",
    "batchnorm_forward", "batchnorm_backward", "dropout_forward", "dropout_backward",
    "softmax_cross_entropy",
]
