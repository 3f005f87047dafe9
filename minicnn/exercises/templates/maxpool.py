FUNCTIONS = ("max_pool_forward", "max_pool_backward")

SOURCE = '''
def max_pool_forward(x, size, stride):
    """Max pooling over (size x size) windows, no padding.

    Inputs:
    - x: (N, C, H, W)
    - size: int window side; stride: int >= 1 (stride < size: overlapping windows, as AlexNet)
    Returns (out, cache):
    - out: (N, C, OH, OW), OH = (H - size) // stride + 1, OW = (W - size) // stride + 1
    """
    raise NotImplementedError("max_pool_forward: write me")


def max_pool_backward(dout, cache):
    """Backward of max pooling: each output's gradient goes to its window's maximum.

    On ties route it to the FIRST maximum of the window (row-major scan order), as
    minicnn, PyTorch and cuDNN do.

    Inputs:
    - dout: (N, C, OH, OW); cache: from max_pool_forward
    Returns dx: (N, C, H, W)
    """
    raise NotImplementedError("max_pool_backward: write me")
'''
