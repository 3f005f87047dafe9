FUNCTIONS = ("softmax_cross_entropy",)

SOURCE = '''
def softmax_cross_entropy(scores, y):
    """Mean softmax cross-entropy over the batch, and its gradient.

        loss = mean_n [ -log softmax(scores_n)[y_n] ],   softmax(s)_k = exp(s_k) / sum_j exp(s_j)

    It must work for scores as large as 1e4 (exp(1e4) overflows a float64).

    Inputs:
    - scores: (N, K) class scores
    - y: (N,) integer labels in [0, K)
    Returns (loss, dscores): loss a float; dscores (N, K), the gradient of loss.
    """
    raise NotImplementedError("softmax_cross_entropy: write me")
'''
