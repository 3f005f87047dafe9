FUNCTIONS = ("residual_block_forward", "residual_block_backward")

SOURCE = '''
def residual_block_forward(x, w1, b1, w2, b2):
    """A basic residual block (He et al. 2016), without batch norm:

        h   = relu(conv(x, w1, b1))          3x3 convolutions, stride 1, pad 1
        out = relu(x + conv(h, w2, b2))      the shortcut adds x itself

    You may use minicnn's ops for the pieces, e.g.
        import minicnn.functional as F
        a, conv1_cache = F.conv2d_forward(x, w1, b1, stride=1, pad=1)
        h, relu1_cache = F.relu_forward(a)
    (or your own conv and relu from the other exercises).

    Inputs:
    - x: (N, C, H, W)
    - w1, w2: (C, C, 3, 3); b1, b2: (C,)
    Returns (out, cache): out (N, C, H, W).
    """
    raise NotImplementedError("residual_block_forward: write me")


def residual_block_backward(dout, cache):
    """Backward of residual_block_forward.

    Inputs:
    - dout: (N, C, H, W); cache: from residual_block_forward
    Returns (dx, dw1, db1, dw2, db2): (N, C, H, W), (C, C, 3, 3), (C,), (C, C, 3, 3), (C,)
    """
    raise NotImplementedError("residual_block_backward: write me")
'''
