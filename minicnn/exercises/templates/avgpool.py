FUNCTIONS = ("avg_pool_forward", "avg_pool_backward")

SOURCE = '''
def avg_pool_forward(x, size, stride, pad=0):
    """Average pooling over (size x size) windows (the "subsampling" of LeNet-5; DenseNet's
    transitions; GoogLeNet's and ResNet's final pool is the window of the whole map).

    Zero padding counts in the average: every window is divided by size*size, padding
    included (PyTorch's count_include_pad=True, minicnn's avg_pool2d_forward).

    Inputs:
    - x: (N, C, H, W)
    - size: int window side; stride: int >= 1; pad: int, 0 <= pad <= size // 2 (zeros)
    Returns (out, cache):
    - out: (N, C, OH, OW), OH = (H + 2*pad - size) // stride + 1, OW likewise
    """
    raise NotImplementedError("avg_pool_forward: write me")


def avg_pool_backward(dout, cache):
    """Backward of average pooling: every input of a window gets dout / (size*size) of
    that window's output (overlapping windows add; the padding's share is dropped).

    Inputs:
    - dout: (N, C, OH, OW); cache: from avg_pool_forward
    Returns dx: (N, C, H, W)
    """
    raise NotImplementedError("avg_pool_backward: write me")
'''
