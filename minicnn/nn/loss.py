"""Softmax cross-entropy, the loss every classifier here trains with."""
import minicnn.functional as F
from minicnn.nn.module import Module


class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy of class scores (logits) against integer labels.

        loss = -1/N * sum_i log softmax(scores_i)[y_i]

    - ``forward(scores, y)``: scores (N, K) float, y (N,) ints in [0, K) -> loss (a Python float)
    - ``backward(dout=1.0)``: -> dscores (N, K) = dout * (softmax(scores) - onehot(y)) / N,
      the gradient to feed into the model's backward.  ``dout`` scales it (e.g. the
      weight of this loss in a sum, as GoogLeNet's auxiliary classifiers use 0.3).

    Unlike the layers its backward takes no upstream gradient array: a loss is the end
    of the graph.
    """

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, scores, y):
        loss, dscores = F.softmax_cross_entropy(scores, y)
        self._cache = dscores
        return float(loss)

    def backward(self, dout=1.0):
        dscores = self._get_cache()
        try:
            dout = float(dout)
        except (TypeError, ValueError):
            raise ValueError(f"CrossEntropyLoss.backward: expected a number (the loss's weight), "
                             f"received {type(dout).__name__}") from None
        if dout == 1.0:
            return dscores.copy()  # a copy: the caller may update it in place
        return dscores * dscores.dtype.type(dout)
