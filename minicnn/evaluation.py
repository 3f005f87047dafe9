"""Evaluation: a model's loss and accuracy on a data set, its predictions, ensembles.

    evaluate(model, x_test, y_test)      # {"loss": 1.31, "accuracy": 0.53, "top5": 0.94}
    predict(model, x_test)               # class probabilities (N, K)
    ensemble_predict([m1, "runs/a", "runs/b/last.npz"], x_test)
    extract_features(model, x_train)     # penultimate-layer embeddings (N, D), see Module.embed

Evaluation runs in eval mode (BatchNorm's running statistics, no dropout) and leaves the
model as it found it.  Images are normalised with the statistics the model was trained
with (``model.normalization``, set by ``fit`` and kept in its checkpoint).
"""
import os
import warnings

import numpy as np

from minicnn import backend, checkpoint, models
from minicnn.checks import check_xy
from minicnn.nn.grad_mode import no_grad
from minicnn.nn.probe import untouched
from minicnn.runs import checkpoint_path
from minicnn.sanity import eval_loader, normalization_stats


def _stats_for(model, x, mean, std, where):
    """The (mean, std) to normalise ``x`` with for ``model``, or (None, None) to use x as given."""
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ValueError(f"{where}: expected both mean and std, or neither")
        return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    stats = getattr(model, "normalization", None)
    if stats is not None:
        return np.asarray(stats[0], dtype=np.float64), np.asarray(stats[1], dtype=np.float64)
    if x.dtype == np.uint8:
        warnings.warn(f"{where}: the model has no normalisation statistics (it was not trained by "
                      "fit, and no mean/std were given); normalising with those of x itself",
                      UserWarning, stacklevel=3)
        return normalization_stats(x)
    return None, None


# ------------------------------------------------------------------ one model
def _log_softmax(scores):
    """Row-wise log-softmax in float64 (N, K) -> (N, K), stable for large scores."""
    s = scores.astype(np.float64)
    s -= s.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def _run_batches(model, loader, run):
    """``run(xb)`` for every batch of ``loader``, in eval mode, concatenated on the host.

    Under ``no_grad`` (nothing is kept for a backward pass, so each layer's output can be
    freed as soon as the next layer has read it) and inside ``untouched`` (the model's own
    caches are put back at the end): a pass over a whole data set leaves no trace.
    """
    param = next(model.parameters()).data
    out = []
    with untouched(model, training=False), no_grad():
        for xb, _ in loader:
            # Parameters may be float64 (gradient checks); feed them what they hold.
            xb = backend.to_backend(xb, backend.device_of(param)).astype(param.dtype, copy=False)
            out.append(backend.asnumpy(run(xb)))
    return np.concatenate(out)


def _run_scores(model, loader):
    """Scores (N, K) float64 on the host for every batch of ``loader``, in eval mode."""
    return _run_batches(model, loader, model).astype(np.float64)


def predict(model, x, batch_size=256, mean=None, std=None):
    """Class probabilities (N, K) float64 of ``model`` on images ``x`` (N, C, H, W), in eval mode.

    ``x``: uint8 images or floats; they are normalised with ``mean``/``std`` if given,
    else with the model's training statistics (``model.normalization``, set by ``fit``).
    """
    y = np.zeros(x.shape[0], dtype=np.int64)
    check_xy("predict", x, y)
    loader = eval_loader(x, y, batch_size, *_stats_for(model, x, mean, std, "predict"))
    return np.exp(_log_softmax(_run_scores(model, loader)))


def extract_features(model, x, batch_size=256, mean=None, std=None):
    """Penultimate-layer embeddings (N, D) of ``model`` on images ``x`` (N, C, H, W), in eval mode.

    ``model.embed`` batch by batch (VGG's FC7, ResNet's pooled vector; see
    minicnn/nn/classifier.py), on the host, in the model's dtype.  Images are normalised
    as in ``predict``.  What a classifier is then trained on when the network is a fixed
    feature extractor: ``minicnn.train.fit_linear(extract_features(model, x), y)``.
    """
    y = np.zeros(x.shape[0] if getattr(x, "ndim", 0) else 0, dtype=np.int64)
    check_xy("extract_features", x, y)
    loader = eval_loader(x, y, batch_size, *_stats_for(model, x, mean, std, "extract_features"))
    return _run_batches(model, loader, model.embed)


def feature_images(features):
    """Features (N, D) as the images (N, D, 1, 1) that fit, evaluate and predict read: each
    feature a channel, so that their per-channel normalisation standardises every feature."""
    if getattr(features, "ndim", None) != 2:
        raise ValueError(f"feature_images: expected features of shape (N, D), received "
                         f"{getattr(features, 'shape', type(features).__name__)}")
    return features.reshape(features.shape + (1, 1))


def metrics_from_log_probs(log_probs, y):
    """{"loss", "accuracy", "top5"} from log-probabilities (N, K) and labels y (N,).

    ``loss`` is the mean cross-entropy; accuracies are fractions in [0, 1].  Top-5
    counts an image as right when its label is among the 5 highest scores (with fewer
    than 5 classes, among all of them, so top5 = 1).
    """
    y = backend.asnumpy(y).astype(np.int64)
    n, k = log_probs.shape
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"evaluate: expected labels in [0, {k - 1}], received labels in "
                         f"[{y.min()}, {y.max()}]")
    rows = np.arange(n)
    loss = float(-log_probs[rows, y].mean())
    accuracy = float((log_probs.argmax(axis=1) == y).mean())
    return {"loss": loss, "accuracy": accuracy, "top5": topk_accuracy(log_probs, y, 5)}


def topk_accuracy(scores, y, k=5):
    """Fraction of rows of ``scores`` (N, K) whose label ``y`` is among the ``k`` largest.

    Ties at the k-th place count in the image's favour only as far as ``argpartition``
    picks them; with real-valued scores ties are vanishingly rare.
    """
    scores = np.asarray(scores)
    y = np.asarray(y)
    kk = min(int(k), scores.shape[1])
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    return float((top == y[:, None]).any(axis=1).mean())


def evaluate(model, x, y, batch_size=256, mean=None, std=None):
    """Loss and accuracy of ``model`` on ``(x, y)``, in eval mode (BatchNorm running stats,
    no dropout).

    x: images (N, C, H, W), uint8 or float, normalised as in ``predict``; y: int labels (N,).
    Returns ``{"loss": mean cross-entropy, "accuracy": top-1 fraction, "top5": top-5 fraction}``.
    """
    check_xy("evaluate", x, y)
    loader = eval_loader(x, y, batch_size, *_stats_for(model, x, mean, std, "evaluate"))
    return metrics_from_log_probs(_log_softmax(_run_scores(model, loader)), y)


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts (K, K) int64: row = true class, column = predicted class.

    The diagonal holds the correct predictions; ``cm.sum(1)`` is the number of images
    of each class.  ``num_classes`` defaults to 1 + the largest label seen.
    """
    y_true = np.asarray(backend.asnumpy(y_true)).astype(np.int64).ravel()
    y_pred = np.asarray(backend.asnumpy(y_pred)).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: expected y_true and y_pred of one shape, received "
                         f"{y_true.shape} and {y_pred.shape}")
    k = num_classes if num_classes is not None else int(max(y_true.max(initial=-1),
                                                            y_pred.max(initial=-1)) + 1)
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= k):
        raise ValueError(f"confusion_matrix: expected labels in [0, {k - 1}]")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


# ------------------------------------------------------------------- ensembles
def ensemble_predict(models, x, batch_size=256):
    """Average of the softmax probabilities of several models (N, K) float64.

    Krizhevsky et al. (2012) averaged five (then seven) CNNs to cut the top-5 error
    from 18.2% to 16.4%/15.3%: members make different mistakes, so their mean is
    right more often.  ``models``: Modules, checkpoint files or run directories; each
    member normalises the images with its own training statistics.
    """
    members = [load_model(m)[0] if isinstance(m, (str, os.PathLike)) else m for m in models]
    if not members:
        raise ValueError("ensemble_predict: expected at least one model, received none")
    total = None
    for m in members:
        p = predict(m, x, batch_size)
        if total is not None and p.shape != total.shape:
            raise ValueError(f"ensemble_predict: members disagree on the number of classes "
                             f"({total.shape[1]} and {p.shape[1]})")
        total = p if total is None else total + p
    return total / len(members)


def evaluate_ensemble(models, x, y, batch_size=256):
    """``evaluate`` for an ensemble: {"loss", "accuracy", "top5", "members"}."""
    check_xy("evaluate_ensemble", x, y)
    probs = ensemble_predict(models, x, batch_size)
    out = metrics_from_log_probs(np.log(np.maximum(probs, 1e-300)), y)
    out["members"] = len(models)
    return out


def load_model(path, rng=0):
    """Rebuild the model of a run from its checkpoint (a run directory or a .npz file).

    The model is created with ``minicnn.models.create(config["model"], **config["model_kwargs"])``
    and gets the saved weights and normalisation statistics.  Returns ``(model, checkpoint)``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = checkpoint_path(path)
    ckpt = checkpoint.load(path)
    name = ckpt.config.get("model")
    if not name:
        raise checkpoint.CheckpointError(
            f"checkpoint {path!r} does not name its model (config['model']); rebuild the model "
            "yourself and call checkpoint.load(path).restore(model)")
    model = models.create(name, rng=rng, **ckpt.config.get("model_kwargs", {}))
    ckpt.restore(model)
    if ckpt.config.get("mean") is not None:
        model.normalization = (np.asarray(ckpt.config["mean"]), np.asarray(ckpt.config["std"]))
    return model, ckpt
