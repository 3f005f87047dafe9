FUNCTIONS = ("relu_forward", "relu_backward")

SOURCE = '''
def relu_forward(x):
    """ReLU, max(0, x), elementwise.

    Inputs:
    - x: array of any shape
    Returns (out, cache): out has x's shape; cache for relu_backward.
    """
    raise NotImplementedError("relu_forward: write me")


def relu_backward(dout, cache):
    """Backward of ReLU: dout where x > 0, else 0.

    (At exactly x == 0 ReLU has no derivative; 0 and 1 are both valid choices.)

    Inputs:
    - dout: upstream gradient, x's shape
    - cache: from relu_forward
    Returns dx: x's shape.
    """
    raise NotImplementedError("relu_backward: write me")
'''
