FUNCTIONS = ("lrn_forward", "lrn_backward")

SOURCE = '''
def lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """Local response normalisation across channels (AlexNet, Sec. 3.3), Caffe/PyTorch form.

        out[n, c] = x[n, c] / (k + alpha / size * sum_{c' in window(c)} x[n, c']^2) ** beta

    window(c) holds the channels c - size//2 ... c + (size-1)//2 that exist (channels
    outside [0, C) count as zero).  Note alpha is divided by size here; the AlexNet
    paper writes the sum without 1/size.

    Inputs:
    - x: (N, C, H, W); size: int >= 1; alpha, beta, k: floats
    Returns (out, cache): out (N, C, H, W).
    """
    raise NotImplementedError("lrn_forward: write me")


def lrn_backward(dout, cache):
    """Backward of lrn_forward.

    Inputs:
    - dout: (N, C, H, W); cache: from lrn_forward
    Returns dx: (N, C, H, W)
    """
    raise NotImplementedError("lrn_backward: write me")
'''
