FUNCTIONS = ("dropout_forward", "dropout_backward")

SOURCE = '''
def dropout_forward(x, p, training, rng):
    """Inverted dropout (Srivastava et al. 2014).

    In training zero each value with probability p (p is the probability of DROPPING)
    and scale the survivors by 1 / (1 - p), so that evaluation needs no rescaling and
    is the identity.

    Inputs:
    - x: any shape
    - p: float in [0, 1)
    - training: bool
    - rng: a numpy.random.Generator; draw the mask from it (e.g. rng.random(x.shape)),
      never from np.random's global state
    Returns (out, cache): out has x's shape.
    """
    raise NotImplementedError("dropout_forward: write me")


def dropout_backward(dout, cache):
    """Backward of dropout_forward: the same kept units and the same scale.

    Inputs:
    - dout: x's shape; cache: from dropout_forward
    Returns dx: x's shape.
    """
    raise NotImplementedError("dropout_backward: write me")
'''
