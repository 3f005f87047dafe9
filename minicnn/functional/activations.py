"""Elementwise nonlinearities.  Shapes: any; out and dx have the shape of x."""
from minicnn import backend, runtime
from minicnn.functional._validate import check_float_array, check_shape


def relu_forward(x):
    """ReLU, max(0, x) (Nair & Hinton 2010; AlexNet's reason it trained 6x faster than tanh).

    Inputs: x of any shape.  Returns (out, cache); out has x's shape and dtype.
    """
    op = "relu_forward"
    xp = backend.get_array_module(x=x, op=op)
    check_float_array(op, "x", x)
    kernels = backend.cython_kernels(xp, "activations")
    if kernels is not None:
        # One pass writing out and the mask (the semantics below, see _ext/activations.pyx),
        # into memory recycled from dead earlier outputs (runtime.empty_output says why).
        x = xp.ascontiguousarray(x)
        out = runtime.empty_output(x.shape, x.dtype)
        mask = runtime.empty_output(x.shape, bool)
        kernels.relu_forward(x.reshape(-1), out.reshape(-1), mask.reshape(-1).view(xp.uint8))
        return out, mask
    # maximum (not where(x > 0, x, 0)) keeps a NaN a NaN, so divergence stays visible.
    return xp.maximum(x, x.dtype.type(0)), x > 0


def add_relu_forward(a, b):
    """relu_forward(a + b): a residual block's relu(branch + shortcut), without storing the sum
    on the CPU kernel path (one pass instead of two).

    Inputs: a, b of one shape and dtype.  Returns (out, cache) exactly as relu_forward(a + b)
    does: relu_backward takes the cache.
    """
    op = "add_relu_forward"
    xp = backend.get_array_module(a=a, b=b, op=op)
    check_float_array(op, "a", a)
    check_float_array(op, "b", b, dtype=a.dtype)
    check_shape(op, "b", b, a.shape)
    kernels = backend.cython_kernels(xp, "activations")
    if kernels is None or not hasattr(kernels, "add_relu_forward"):
        return relu_forward(a + b)
    a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
    out = runtime.empty_output(a.shape, a.dtype)
    mask = runtime.empty_output(a.shape, bool)
    kernels.add_relu_forward(a.reshape(-1), b.reshape(-1), out.reshape(-1), mask.reshape(-1).view(xp.uint8))
    return out, mask


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0 (the kink at 0 gets gradient 0, as PyTorch).

    Inputs: dout of x's shape; cache from relu_forward.  Returns dx.
    """
    return _pass_where(dout, cache, "relu_backward")


def _pass_where(dout, mask, op):
    """dx = dout where ``mask`` (bool, dout's shape), else 0: the backward of ReLU and ReLU6."""
    xp = backend.get_array_module(dout=dout, op=op)
    check_float_array(op, "dout", dout)
    check_shape(op, "dout", dout, mask.shape)
    kernels = backend.cython_kernels(xp, "activations")
    if kernels is not None and mask.flags.c_contiguous:
        # where() branches on every element and a post-BN mask is a coin flip for the
        # branch predictor (16 ms for 8 MB here); the kernel selects without a branch.
        dx = runtime.empty_output(dout.shape, dout.dtype)
        kernels.relu_backward(xp.ascontiguousarray(dout).reshape(-1), mask.reshape(-1).view(xp.uint8),
                              dx.reshape(-1))
        return dx
    return xp.where(mask, dout, dout.dtype.type(0))


def sigmoid_forward(x):
    """Logistic sigmoid 1 / (1 + exp(-x)), computed without overflow for any x.

    Inputs: x of any shape.  Returns (out, cache); out in (0, 1), x's shape and dtype.
    """
    op = "sigmoid_forward"
    xp = backend.get_array_module(x=x, op=op)
    check_float_array(op, "x", x)
    # exp(-|x|) never overflows; pick the algebraically equal form for each sign.
    e = xp.exp(-xp.abs(x))
    out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    return out, out


def sigmoid_backward(dout, cache):
    """dx = dout * s * (1 - s), with s the forward output.

    Inputs: dout of x's shape; cache from sigmoid_forward.  Returns dx.
    """
    op = "sigmoid_backward"
    s = cache
    backend.get_array_module(dout=dout, s=s, op=op)
    check_float_array(op, "dout", dout, dtype=s.dtype)
    check_shape(op, "dout", dout, s.shape)
    return dout * s * (1 - s)


def relu6_forward(x):
    """ReLU6, min(max(0, x), 6) (Krizhevsky 2010; MobileNet v1/v2 use it so that activations
    stay in a range low-precision arithmetic represents well).

    Inputs: x of any shape.  Returns (out, cache); out has x's shape and dtype.
    """
    op = "relu6_forward"
    xp = backend.get_array_module(x=x, op=op)
    check_float_array(op, "x", x)
    # Gradient 1 on the open interval (0, 6) only: both kinks get 0, as PyTorch's hardtanh.
    mask = (x > 0) & (x < 6)
    return xp.minimum(xp.maximum(x, x.dtype.type(0)), x.dtype.type(6)), mask


def relu6_backward(dout, cache):
    """dx = dout where 0 < x < 6, else 0 (both kinks get gradient 0, as PyTorch).

    Inputs: dout of x's shape; cache from relu6_forward.  Returns dx.
    """
    # The cache is the mask of where the gradient passes, as ReLU's: the same backward.
    return _pass_where(dout, cache, "relu6_backward")
