"""Softmax cross-entropy, the loss every classifier here is trained with.

    loss = mean_n [ -log softmax(scores_n)[y_n] ],   softmax(s)_k = exp(s_k) / sum_j exp(s_j)

Shapes: scores (N, K) float; y (N,) integer labels in [0, K).
"""
from minicnn import backend
from minicnn.functional._validate import check_float_array


def softmax_cross_entropy(scores, y):
    """Mean softmax cross-entropy over the batch and its gradient.

    Subtracting each row's maximum before exponentiating changes nothing mathematically
    and keeps exp() from overflowing, so scores of +-1e4 are fine.

    Inputs: scores (N, K) float32/float64; y (N,) integers in [0, K).
    Returns (loss, dscores): loss a Python float; dscores (N, K) of scores' dtype,
    (softmax - onehot(y)) / N.
    """
    op = "softmax_cross_entropy"
    xp = backend.get_array_module(scores=scores, y=y, op=op)
    check_float_array(op, "scores", scores, ndim=2)
    n, k = scores.shape
    if not hasattr(y, "dtype") or y.dtype.kind not in "iu":
        raise ValueError(f"{op}: expected y to be an integer array of class labels, received "
                         f"{getattr(y, 'dtype', type(y).__name__)}")
    if tuple(y.shape) != (n,):
        raise ValueError(f"{op}: expected y of shape ({n},) for scores of shape {tuple(scores.shape)}, "
                         f"received {tuple(y.shape)}")
    if n == 0:
        raise ValueError(f"{op}: expected at least one example, received an empty batch")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= k:
        raise ValueError(f"{op}: expected labels in [0, {k - 1}], received labels in [{lo}, {hi}]")
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_sum = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_sum
    rows = xp.arange(n)
    loss = -float(log_probs[rows, y].mean())
    dscores = xp.exp(log_probs)
    dscores[rows, y] -= 1
    dscores /= n
    return loss, dscores
