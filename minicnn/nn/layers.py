"""The plain layers: each one a thin Module around a forward/backward pair in minicnn.functional.

A layer's ``forward(x)`` calls ``F.<op>_forward``, keeps the cache, and returns the
output; ``backward(dout)`` hands the cache to ``F.<op>_backward``, adds the parameter
gradients into ``.grad`` and returns dx.  The maths (and its shapes) is in functional/;
what lives here is the parameters, their initialisation and the hyper-parameters,
under PyTorch's attribute names (``kernel_size``, ``stride``, ``padding``, ...), which
``minicnn.summary`` reads.

Attribute forms (one per layer, so readers of attributes need no guessing):
``Conv2d.kernel_size`` is always a pair ``(KH, KW)``; pooling layers keep
``kernel_size`` as given (an int or a pair), as PyTorch does; ``stride`` and
``padding`` are always ints (the DESIGN's convention).

Gradients returned by ``backward`` may share memory with ``dout`` (Flatten and
Identity return views): treat gradients as read-only, as every backward here does.
"""
import numpy as np

import minicnn.functional as F
from minicnn.checks import as_generator, check_int, check_positive, check_prob
from minicnn.functional._validate import check_float_array, pair
from minicnn.nn import init
from minicnn.nn.module import Module, Parameter


def _check_dtype(op, dtype):
    dt = np.dtype(dtype) if dtype is not None else None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{op}: expected dtype float32 or float64, received {dtype!r}")
    return dt


def check_feature_map(op, x, channels):
    """``x`` must be a float (N, channels, H, W) array: the input check of the blocks, so that a
    wrong input is reported under the block's name rather than its first layer's."""
    check_float_array(op, "x", x)
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{op}: expected x of shape (N, {channels}, H, W), received "
                         f"{tuple(x.shape)}")


class Conv2d(Module):
    """2-D convolution (cross-correlation), NCHW.

    - x: (N, in_channels, H, W) -> out: (N, out_channels, OH, OW),
      OH = (H + 2*padding - KH) // stride + 1, OW likewise
    - weight: (out_channels, in_channels // groups, KH, KW); bias: (out_channels,) or None
    - kernel_size: int or (KH, KW) (non-square allowed); stride, padding: ints
    - groups: in_channels and out_channels must both be divisible by it; groups ==
      in_channels is a depthwise convolution

    Initialisation: He (Kaiming) normal, ``weight ~ N(0, 2 / fan_in)`` with
    ``fan_in = in_channels // groups * KH * KW`` (He et al., 2015, "Delving Deep into
    Rectifiers"), the variance that keeps activations at a constant scale through
    ReLU layers; bias zeros.  (PyTorch's default is a smaller uniform init; models
    that need another scheme re-initialise ``weight.data`` with minicnn.nn.init.)

    ``input_grad``: True (the default) makes backward return dL/dx.  Set it False on a
    layer whose input is the data -- nothing upstream to train -- and backward skips dx
    (about half the backward of a first conv) and returns None.  ``minicnn.train.fit``
    does that for the duration of training (see ``minicnn.nn.input_grad``).  A frozen
    layer (``Module.freeze``) skips dw and db in the same way.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1,
                 bias=True, rng=None, dtype=np.float32):
        super().__init__()
        op = "Conv2d"
        self.in_channels = check_int(op, "in_channels", in_channels, 1)
        self.out_channels = check_int(op, "out_channels", out_channels, 1)
        self.kernel_size = pair(op, "kernel_size", kernel_size, 1)
        self.stride = check_int(op, "stride", stride, 1)
        self.padding = check_int(op, "padding", padding, 0)
        self.groups = check_int(op, "groups", groups, 1)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2d: expected in_channels ({self.in_channels}) and out_channels "
                             f"({self.out_channels}) divisible by groups, received groups={self.groups}")
        dtype = _check_dtype(op, dtype)
        rng = as_generator(rng, op)
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        self.weight = Parameter(init.he_normal(shape, self.in_channels // self.groups * kh * kw, rng, dtype))
        self.bias = Parameter(init.zeros((self.out_channels,), dtype)) if bias else None
        self.input_grad = True
        self._cache = None

    def forward(self, x):
        check_float_array("Conv2d", "x", x, ndim=4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d: expected x of shape (N, {self.in_channels}, H, W), "
                             f"received {tuple(x.shape)}")
        out, self._cache = F.conv2d_forward(x, self.weight.data,
                                            None if self.bias is None else self.bias.data,
                                            self.stride, self.padding, self.groups)
        return out

    def backward(self, dout):
        dx, dw, db = F.conv2d_backward(dout, self._get_cache(), need_dx=self.input_grad,
                                       need_dw=self._trains())
        self._accumulate(self.weight, dw)
        self._accumulate(self.bias, db)
        return dx

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding:
            s += f", padding={self.padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if not self.input_grad:
            s += ", input_grad=False"
        return s


class Linear(Module):
    """Fully connected layer: ``out = x @ weight.T + bias``.

    - x: (N, in_features) -> out: (N, out_features)
    - weight: (out_features, in_features) (PyTorch's layout); bias: (out_features,) or None

    Initialisation: He normal, ``weight ~ N(0, 2 / in_features)`` (He et al., 2015), as
    for Conv2d: in these networks a Linear layer is usually followed by a ReLU, and one
    rule for both keeps the code and its explanation short.  A final classifier layer
    feeds softmax, not a ReLU: the zoo's models scale its weights by 0.1
    (``minicnn.models._common.final_linear``) so that the untrained loss is ln(K).
    Bias zeros.  A frozen layer (``Module.freeze``) skips dw and db.
    """

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = check_int("Linear", "in_features", in_features, 1)
        self.out_features = check_int("Linear", "out_features", out_features, 1)
        dtype = _check_dtype("Linear", dtype)
        rng = as_generator(rng, "Linear")
        self.weight = Parameter(init.he_normal((self.out_features, self.in_features),
                                               self.in_features, rng, dtype))
        self.bias = Parameter(init.zeros((self.out_features,), dtype)) if bias else None
        self._cache = None

    def forward(self, x):
        check_float_array("Linear", "x", x, ndim=2)
        if x.shape[1] != self.in_features:
            raise ValueError(f"Linear: expected x of shape (N, {self.in_features}), received "
                             f"{tuple(x.shape)} (add a Flatten before it for feature maps)")
        out, self._cache = F.linear_forward(x, self.weight.data,
                                            None if self.bias is None else self.bias.data)
        return out

    def backward(self, dout):
        dx, dw, db = F.linear_backward(dout, self._get_cache(), need_dw=self._trains())
        self._accumulate(self.weight, dw)
        self._accumulate(self.bias, db)
        return dx

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class ReLU(Module):
    """max(0, x), elementwise; any shape -> the same shape.  (The kink at 0 gets gradient 0.)"""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        out, self._cache = F.relu_forward(x)
        return out

    def backward(self, dout):
        return F.relu_backward(dout, self._get_cache())


class Sigmoid(Module):
    """1 / (1 + exp(-x)), elementwise (LeNet-5's squashing, SE's gate); any shape."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        out, self._cache = F.sigmoid_forward(x)
        return out

    def backward(self, dout):
        return F.sigmoid_backward(dout, self._get_cache())


class _Pool2d(Module):
    """Shared hyper-parameter handling of MaxPool2d and AvgPool2d."""

    _name = "Pool2d"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        op = self._name
        kh, kw = pair(op, "kernel_size", kernel_size, 1)
        self.kernel_size = kh if isinstance(kernel_size, (int, np.integer)) else (kh, kw)
        if stride is None:
            if kh != kw:
                raise ValueError(f"{op}: stride=None means stride = kernel_size, which needs a "
                                 f"square kernel; received kernel_size={(kh, kw)}: pass stride")
            stride = kh
        self.stride = check_int(op, "stride", stride, 1)
        self.padding = check_int(op, "padding", padding, 0)
        if self.padding > min(kh, kw) // 2:
            raise ValueError(f"{op}: expected padding <= half the window ({min(kh, kw) // 2}), "
                             f"received padding={self.padding}")
        if not isinstance(ceil_mode, bool):
            raise ValueError(f"{op}: expected ceil_mode True or False, received {ceil_mode!r}")
        self.ceil_mode = ceil_mode
        self._cache = None

    def extra_repr(self):
        ceil = ", ceil_mode=True" if self.ceil_mode else ""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}{ceil}"


class MaxPool2d(_Pool2d):
    """Max pooling: (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2*padding - KH) // stride + 1.

    ``stride`` defaults to ``kernel_size``; padding is -inf and at most half the window.
    ``ceil_mode=True`` rounds OH, OW up, as PyTorch's (SqueezeNet, GoogLeNet; see
    minicnn.functional.pool).  The gradient of a window goes to its first maximum
    (argmax-first) on ties.
    """

    _name = "MaxPool2d"

    def forward(self, x):
        out, self._cache = F.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                                self.ceil_mode)
        return out

    def backward(self, dout):
        return F.max_pool2d_backward(dout, self._get_cache())


class AvgPool2d(_Pool2d):
    """Average pooling: (N, C, H, W) -> (N, C, OH, OW); zero padding counts in the average
    (PyTorch's count_include_pad=True).  ``stride`` defaults to ``kernel_size``;
    ``ceil_mode`` as MaxPool2d (with PyTorch's divisor for the windows over the edge)."""

    _name = "AvgPool2d"

    def forward(self, x):
        out, self._cache = F.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                                self.ceil_mode)
        return out

    def backward(self, dout):
        return F.avg_pool2d_backward(dout, self._get_cache())


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size whatever the input's (PyTorch's):
    (N, C, H, W) -> (N, C, OH, OW).  torchvision's AlexNet pools to 6x6 so that its
    classifier reads 9216 values at any input size.  ``output_size``: int or (OH, OW)."""

    def __init__(self, output_size):
        super().__init__()
        oh, ow = pair("AdaptiveAvgPool2d", "output_size", output_size, 1)
        self.output_size = (oh, ow)
        self._cache = None

    def forward(self, x):
        out, self._cache = F.adaptive_avg_pool2d_forward(x, self.output_size)
        return out

    def backward(self, dout):
        return F.adaptive_avg_pool2d_backward(dout, self._get_cache())

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(Module):
    """The mean of each channel's whole map (NiN, GoogLeNet, ResNet): (N, C, H, W) -> (N, C).

    Unlike PyTorch's AdaptiveAvgPool2d(1) it also flattens, so a Linear can follow directly.
    """

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        out, self._cache = F.global_avg_pool_forward(x)
        return out

    def backward(self, dout):
        return F.global_avg_pool_backward(dout, self._get_cache())


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet, ZFNet, GoogLeNet), Caffe/PyTorch form:

        b_c = a_c / (k + alpha / n * sum_{c' in window of n channels centred on c} a_{c'}^2) ** beta

    (N, C, H, W) -> same shape.  The AlexNet paper writes the sum without ``1/n``: its
    n=5, alpha=1e-4, beta=0.75, k=2 is ``LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)``
    here.
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size = check_int("LocalResponseNorm", "size", size, 1)
        self.alpha = check_positive("LocalResponseNorm", "alpha", alpha)
        self.beta = check_positive("LocalResponseNorm", "beta", beta)
        self.k = check_positive("LocalResponseNorm", "k", k)
        self._cache = None

    def forward(self, x):
        out, self._cache = F.lrn_forward(x, self.size, self.alpha, self.beta, self.k)
        return out

    def backward(self, dout):
        return F.lrn_backward(dout, self._get_cache())

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class _BatchNorm(Module):
    """Batch normalisation (Ioffe & Szegedy, 2015): normalise each feature/channel with the
    batch's mean and variance in training, with running averages in evaluation, then
    scale by ``weight`` (gamma, init 1) and shift by ``bias`` (beta, init 0).

    Buffers ``running_mean`` (init 0) and ``running_var`` (init 1) are updated in place
    in training as

        running = (1 - momentum) * running + momentum * batch_statistic

    ``momentum`` is PyTorch's: the weight of the NEW batch statistic (default 0.1).
    CS231n's assignment writes ``momentum * running + (1 - momentum) * batch`` with
    momentum=0.9: the weight of the OLD value; the two agree for ours = 1 - theirs.
    As in PyTorch the running variance receives the unbiased batch variance
    (times m / (m - 1), m values per feature), while normalisation in training uses the
    biased one.

    torchvision's BatchNorm also saves a ``num_batches_tracked`` counter; minicnn does
    not keep it (it only matters for momentum=None), and ``load_state_dict`` ignores
    those keys so that torchvision weights load.

    Frozen: a BatchNorm whose ``weight`` and ``bias`` are both frozen (``Module.freeze``)
    is in evaluation mode whatever ``train()`` says -- it normalises with its running
    statistics and leaves them fixed -- so a frozen pretrained backbone stays the network
    it was.  (PyTorch users call ``bn.eval()`` by hand after every ``model.train()``, or
    swap in torchvision's FrozenBatchNorm2d.)  ``training`` reads the mode in effect;
    ``train()`` records the mode asked for, which comes back on ``unfreeze``.
    """

    _name = "BatchNorm"
    _ndim = 2

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__()
        op = self._name
        self.num_features = check_int(op, "num_features", num_features, 1)
        self.eps = check_positive(op, "eps", eps)
        # PyTorch's convention: the weight of the NEW batch statistic (see the class doc).
        self.momentum = check_prob(op, "momentum", momentum)
        dtype = _check_dtype(op, dtype)
        self.weight = Parameter(init.ones((self.num_features,), dtype))
        self.bias = Parameter(init.zeros((self.num_features,), dtype))
        self.register_buffer("running_mean", init.zeros((self.num_features,), dtype))
        self.register_buffer("running_var", init.ones((self.num_features,), dtype))
        self._cache = None

    @property
    def training(self):
        """The mode in effect: the one ``train()``/``eval()`` asked for, except that a frozen
        BatchNorm is always in evaluation mode (see the class doc)."""
        return self._asked_training and self._trains()

    @training.setter
    def training(self, mode):
        object.__setattr__(self, "_asked_training", mode)

    def check_input(self, x):
        """The checks of forward, also run by minicnn.nn.fused before its fused BN + ReLU."""
        op = self._name
        check_float_array(op, "x", x, ndim=self._ndim)
        if x.shape[1] != self.num_features:
            want = "(N, {})" if self._ndim == 2 else "(N, {}, H, W)"
            raise ValueError(f"{op}: expected x of shape {want.format(self.num_features)}, "
                             f"received {tuple(x.shape)}")
        if self.training and x.shape[0] * int(np.prod(x.shape[2:])) < 2:
            raise ValueError(f"{op}: expected more than one value per channel in training "
                             f"(the batch variance needs two), received x of shape {tuple(x.shape)}")

    def forward(self, x):
        self.check_input(x)
        out, self._cache = F.batchnorm_forward(x, self.weight.data, self.bias.data,
                                               self.running_mean, self.running_var,
                                               self.training, self.momentum, self.eps)
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = F.batchnorm_backward(dout, self._get_cache())
        self._accumulate(self.weight, dgamma)
        self._accumulate(self.bias, dbeta)
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, num_features) inputs, statistics over N.  See _BatchNorm."""

    __doc__ = __doc__ + "\n" + _BatchNorm.__doc__
    _name = "BatchNorm1d"
    _ndim = 2


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, one mean/variance per channel over (N, H, W).
    See _BatchNorm."""

    __doc__ = __doc__ + "\n" + _BatchNorm.__doc__
    _name = "BatchNorm2d"
    _ndim = 4


class Dropout(Module):
    """Inverted dropout (Srivastava et al., 2014): in training, zero each value with
    probability ``p`` and scale the survivors by 1 / (1 - p), so that evaluation is the
    identity.  Any shape -> the same shape.

    ``rng``: a numpy Generator, an int seed or None; the masks are drawn from it.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = check_prob("Dropout", "p", p)
        self.rng = as_generator(rng, "Dropout")
        self._cache = None

    def forward(self, x):
        out, mask = F.dropout_forward(x, self.p, self.training, self.rng)
        # Wrapped: F's cache is None in evaluation, and None here means "no forward yet".
        self._cache = (mask,)
        return out

    def backward(self, dout):
        (mask,) = self._get_cache()
        return F.dropout_backward(dout, mask)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...): feature maps to the vectors a Linear takes."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        if not hasattr(x, "shape") or x.ndim < 2:
            raise ValueError(f"Flatten: expected an array of rank >= 2 (N, ...), received "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        out = x.reshape(x.shape[0], -1)
        self._cache = x.shape, out.shape    # the flat shape too: np.prod per backward cost ~5 us
        return out

    def backward(self, dout):
        shape, flat = self._get_cache()
        if dout.shape != flat:
            raise ValueError(f"Flatten.backward: expected dout of shape {tuple(flat)}, received "
                             f"{tuple(dout.shape)}")
        return dout.reshape(shape)


class Identity(Module):
    """Returns its input (a no-op shortcut, or a placeholder where a layer is optional)."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        self._cache = x.shape
        return x

    def backward(self, dout):
        shape = self._get_cache()
        if tuple(dout.shape) != tuple(shape):
            raise ValueError(f"Identity.backward: expected dout of shape {tuple(shape)}, "
                             f"received {tuple(dout.shape)}")
        return dout
