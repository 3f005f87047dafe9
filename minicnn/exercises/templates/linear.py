FUNCTIONS = ("linear_forward", "linear_backward")

SOURCE = '''
def linear_forward(x, w, b):
    """Fully connected (affine) layer: out = x @ w.T + b.

    Inputs:
    - x: (N, D) or (N, d1, ..., dk) with d1*...*dk = D; each example is flattened to D values
    - w: (M, D) weights, (out, in) as in PyTorch
    - b: (M,) biases
    Returns (out, cache):
    - out: (N, M)
    - cache: whatever linear_backward needs (your choice)
    """
    raise NotImplementedError("linear_forward: write me")


def linear_backward(dout, cache):
    """Backward pass of linear_forward.

    Inputs:
    - dout: (N, M) upstream gradient
    - cache: from linear_forward
    Returns (dx, dw, db):
    - dx: the shape of the original x (N, d1, ..., dk)
    - dw: (M, D)
    - db: (M,)
    """
    raise NotImplementedError("linear_backward: write me")
'''
