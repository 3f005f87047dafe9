FUNCTIONS = ("max_pool_forward", "max_pool_backward")

SOURCE = '''
def max_pool_forward(x, size, stride, pad=0):
    """Max pooling over (size x size) windows.

    Inputs:
    - x: (N, C, H, W)
    - size: int window side; stride: int >= 1 (stride < size: overlapping windows, as AlexNet)
    - pad: int, 0 <= pad <= size // 2, added on every side of H and W (GoogLeNet's 3x3,
      stride 1, pad 1 pool keeps the map size).  The padding must never win the max: pad
      with -inf, not 0 (a window of negative numbers would otherwise return 0).
    Returns (out, cache):
    - out: (N, C, OH, OW), OH = (H + 2*pad - size) // stride + 1, OW likewise
    """
    raise NotImplementedError("max_pool_forward: write me")


def max_pool_backward(dout, cache):
    """Backward of max pooling: each output's gradient goes to its window's maximum.

    On ties route it to the FIRST maximum of the window (row-major scan order), as
    minicnn, PyTorch and cuDNN do.  The padding receives no gradient (it is not an input).

    Inputs:
    - dout: (N, C, OH, OW); cache: from max_pool_forward
    Returns dx: (N, C, H, W)
    """
    raise NotImplementedError("max_pool_backward: write me")
'''
