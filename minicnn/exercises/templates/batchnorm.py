FUNCTIONS = ("batchnorm_forward", "batchnorm_backward")

SOURCE = '''
def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Batch normalisation (Ioffe & Szegedy 2015), for (N, D) and (N, C, H, W) inputs.

        train: xhat = (x - mean_batch) / sqrt(var_batch + eps);  out = gamma * xhat + beta
        eval:  the same with running_mean and running_var

    For x of shape (N, C, H, W) the statistics are per channel, over N, H and W.
    In training, update the running statistics IN PLACE, with PyTorch's momentum
    (the weight of the new batch value):
        running_mean = (1 - momentum) * running_mean + momentum * mean_batch
        running_var  = (1 - momentum) * running_var  + momentum * var_batch_unbiased
    where var_batch_unbiased divides by m - 1 (m values per feature); xhat uses the
    biased variance (divide by m).

    Inputs:
    - x: (N, D) or (N, C, H, W)
    - gamma, beta: (D,) or (C,)
    - running_mean, running_var: (D,) or (C,), updated in place when training
    - training: bool; momentum: float in [0, 1]; eps: float > 0
    Returns (out, cache): out has x's shape.
    """
    raise NotImplementedError("batchnorm_forward: write me")


def batchnorm_backward(dout, cache):
    """Backward of batchnorm_forward (in training the batch mean and variance depend on x).

    Inputs:
    - dout: x's shape; cache: from batchnorm_forward
    Returns (dx, dgamma, dbeta): x's shape, (D,) or (C,), (D,) or (C,)
    """
    raise NotImplementedError("batchnorm_backward: write me")
'''
