FUNCTIONS = ("conv_forward_naive", "conv_backward_naive", "im2col", "col2im",
             "conv_forward_im2col", "conv_backward_im2col")

SOURCE = '''
def conv_forward_naive(x, w, b, stride=1, pad=0):
    """Convolution as its definition: loop over the output positions.

        out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xpad[n, c, i*stride + p, j*stride + q]

    (a cross-correlation, as every deep-learning library computes it: the kernel is not flipped).
    xpad is x with `pad` zeros added on each side of H and W.

    Inputs:
    - x: (N, C, H, W)
    - w: (F, C, KH, KW)
    - b: (F,)
    - stride, pad: ints (stride >= 1, pad >= 0)
    Returns (out, cache):
    - out: (N, F, OH, OW), OH = (H + 2*pad - KH) // stride + 1, OW = (W + 2*pad - KW) // stride + 1
    """
    raise NotImplementedError("conv_forward_naive: write me")


def conv_backward_naive(dout, cache):
    """Backward of conv_forward_naive, window by window.

    Inputs:
    - dout: (N, F, OH, OW)
    - cache: from conv_forward_naive
    Returns (dx, dw, db): (N, C, H, W), (F, C, KH, KW), (F,)
    """
    raise NotImplementedError("conv_backward_naive: write me")


def im2col(x, kh, kw, stride, pad):
    """Copy every (kh, kw) window of the zero-padded x into a column.

    Inputs:
    - x: (N, C, H, W); kh, kw: window size; stride, pad: ints
    Returns cols: (N, C*KH*KW, OH*OW).  Row r = (c*KH + p)*KW + q of image n's matrix holds
    tap (p, q) of channel c; column i*OW + j is the window of output (i, j).
    """
    raise NotImplementedError("im2col: write me")


def col2im(cols, x_shape, kh, kw, stride, pad):
    """The adjoint of im2col: add every column back onto the window it came from.

    Inputs:
    - cols: (N, C*KH*KW, OH*OW), laid out as im2col's output
    - x_shape: (N, C, H, W); kh, kw, stride, pad: as given to im2col
    Returns dx: (N, C, H, W); a pixel covered by several windows receives the sum.
    """
    raise NotImplementedError("col2im: write me")


def conv_forward_im2col(x, w, b, stride=1, pad=0):
    """Convolution as one matrix product per image: w as (F, C*KH*KW) times im2col(x).

    Same inputs and output as conv_forward_naive.
    Returns (out, cache): out (N, F, OH, OW).
    """
    raise NotImplementedError("conv_forward_im2col: write me")


def conv_backward_im2col(dout, cache):
    """Backward of conv_forward_im2col with matrix products and col2im.

    Inputs:
    - dout: (N, F, OH, OW); cache: from conv_forward_im2col
    Returns (dx, dw, db): (N, C, H, W), (F, C, KH, KW), (F,)
    """
    raise NotImplementedError("conv_backward_im2col: write me")
'''
