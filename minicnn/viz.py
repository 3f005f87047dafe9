"""Pictures of a run: training curves, first-layer filters, feature maps, confusion matrix.

matplotlib is an optional dependency (``pip install 'minicnn[plot]'``); it is imported
only when a plot is drawn, and a clear error says how to install it if it is missing.
Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so plotting never
changes the backend of an interactive session, and each PNG is written atomically
(temporary file + ``os.replace``), like every other file minicnn writes.

    from minicnn import viz
    viz.plot_history(history, "curves.png")                # loss and accuracy per epoch
    viz.plot_filters(model_first_conv.weight.data, "filters.png")
    viz.plot_feature_maps(viz.feature_maps(model, image), "maps.png", image=image_uint8)
    viz.plot_confusion(cm, class_names, "confusion.png")
    viz.plot_run(model, x_test, y_test, "runs/demo", history=history)   # all five, as `minicnn plot`

What to look for (CS231n, "Visualizing what ConvNets learn"): first-layer filters of a
trained network are smooth oriented edges and colour blobs -- noisy filters mean too
few epochs or too high a learning rate; training loss far below validation loss means
overfitting; a confusion matrix shows which classes are mistaken for which (cat/dog,
automobile/truck on CIFAR-10).
"""
import os

import numpy as np

from minicnn import backend
from minicnn.checks import check_int
from minicnn.nn.probe import untouched


def _figure(width, height):
    """A matplotlib Figure on the Agg canvas; RuntimeError with the install hint if matplotlib is absent."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise RuntimeError("minicnn.viz needs matplotlib, which is not installed: "
                           "pip install 'minicnn[plot]' (or pip install matplotlib)") from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    """Write ``fig`` as a PNG at ``path`` atomically; returns path."""
    from minicnn.checkpoint import atomic_write
    return atomic_write(path, lambda f: fig.savefig(f, format="png", bbox_inches="tight"))


def _grid(n):
    """Rows and columns of a near-square grid for n panels."""
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def plot_history(history, path):
    """Loss (left) and accuracy (right) per epoch, train and validation; writes a PNG.

    history: list of dicts with epoch, train_loss, train_accuracy and optionally
    val_loss, val_accuracy (None entries are skipped).
    """
    if not history:
        raise ValueError("plot_history: expected at least one epoch in the history, received none")
    fig = _figure(10, 4)
    epochs = [r["epoch"] for r in history]
    for i, (what, label) in enumerate((("loss", "cross-entropy loss"), ("accuracy", "accuracy"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for split, style in (("train", "o-"), ("val", "s-")):
            pts = [(e, r.get(f"{split}_{what}")) for e, r in zip(epochs, history)
                   if r.get(f"{split}_{what}") is not None]
            if pts:
                ax.plot(*zip(*pts), style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if what == "accuracy":
            ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("training curves")
    return _save(fig, path)


def plot_filters(weight, path, title="first-layer filters"):
    """The filters of a conv layer as small images; writes a PNG.

    weight: (F, C, KH, KW).  With C == 3 each filter is shown in colour (each filter
    rescaled to [0, 1] on its own, as CS231n does); otherwise its first input channel,
    in grey.
    """
    w = np.asarray(backend.asnumpy(weight), dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"plot_filters: expected a conv weight (F, C, KH, KW), received shape {w.shape}")
    rows, cols = _grid(w.shape[0])
    fig = _figure(cols * 0.8 + 0.5, rows * 0.8 + 0.7)
    for i, f in enumerate(w):
        ax = fig.add_subplot(rows, cols, i + 1)
        f = f - f.min()
        f = f / f.max() if f.max() > 0 else f
        if f.shape[0] == 3:
            ax.imshow(f.transpose(1, 2, 0), interpolation="nearest")
        else:
            ax.imshow(f[0], cmap="gray", interpolation="nearest")
        ax.axis("off")
    fig.suptitle(f"{title} ({w.shape[0]} x {w.shape[1]}x{w.shape[2]}x{w.shape[3]})")
    return _save(fig, path)


def feature_maps(model, x, kinds=("ReLU",)):
    """Outputs of the leaf modules of type ``kinds`` for the images ``x``, in eval mode.

    x: (N, C, H, W) float input as the model expects it (already normalised).
    Returns a list of (module name, array (N, C', H', W')) in forward order, 4-D outputs only.
    Uses ``minicnn.nn.module.forward_hook``, so any model works, however it is composed;
    the model is left as it was (modes, caches, buffers: ``nn.probe.untouched``).
    """
    from minicnn.nn.module import forward_hook
    names = {id(m): n for n, m in model.named_modules()}
    found = []

    def record(module, inp, out):
        if type(module).__name__ in kinds and getattr(out, "ndim", 0) == 4:
            found.append((names.get(id(module), type(module).__name__), backend.asnumpy(out).copy()))

    with untouched(model, training=False), forward_hook(record):
        model(x)
    return found


def plot_feature_maps(maps, path, image=None, max_channels=32):
    """Feature maps of one image, one row block per layer; writes a PNG.

    maps: list of (name, array (C, H, W) or (1, C, H, W)) as from ``feature_maps``
    (the first ``max_channels`` channels of each are shown); image: optional (3, H, W)
    uint8 or float image shown first.
    """
    if not maps:
        raise ValueError("plot_feature_maps: expected at least one feature map, received none")
    maps = [(n, np.asarray(m)[0] if np.ndim(m) == 4 else np.asarray(m)) for n, m in maps]
    cols = 8
    blocks = [(n, m[:max_channels]) for n, m in maps]
    rows = sum(int(np.ceil(len(m) / cols)) for _, m in blocks) + (1 if image is not None else 0)
    fig = _figure(cols * 1.1, rows * 1.2 + 0.5)
    r = 0
    if image is not None:
        img = np.asarray(backend.asnumpy(image), dtype=np.float64)
        img = (img - img.min()) / max(img.max() - img.min(), 1e-12)
        ax = fig.add_subplot(rows, cols, 1)
        if img.shape[0] == 3:
            ax.imshow(img.transpose(1, 2, 0))
        else:
            ax.imshow(img[0], cmap="gray")
        ax.set_title("input", fontsize=8)
        ax.axis("off")
        r = 1
    for name, m in blocks:
        for c, fmap in enumerate(m):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            ax.imshow(fmap, cmap="viridis", interpolation="nearest")
            ax.axis("off")
            if c == 0:
                ax.set_title(f"{name} ({fmap.shape[0]}x{fmap.shape[1]})", fontsize=8, loc="left")
        r += int(np.ceil(len(m) / cols))
    fig.suptitle("feature maps of one test image")
    return _save(fig, path)


def plot_confusion(cm, class_names, path, title="confusion matrix (test set)"):
    """The confusion matrix (rows: true class, columns: predicted) with counts; writes a PNG."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    if cm.ndim != 2 or cm.shape[1] != k:
        raise ValueError(f"plot_confusion: expected a square matrix, received shape {cm.shape}")
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"plot_confusion: expected {k} class names, received {len(names)}")
    fig = _figure(1.0 + 0.6 * k, 0.8 + 0.55 * k)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(k))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticks(range(k))
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = cm.max() if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > top / 2 else "black")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title}: accuracy {acc:.3f}")
    return _save(fig, path)


def plot_layer_table(summary, path, title=None, highlight=("Conv2d", "Linear")):
    """Render ``summary`` (a minicnn.summary.Summary) as a table image at ``path`` (PNG).

    One row per layer (name, type, output HxWxC, parameters, multiply-adds), then the
    totals; rows of the ``highlight`` layer types -- the ones with weights -- are shaded.
    """
    from minicnn.summary import _human

    def hwc(shape):  # (1, C, H, W) -> '55x55x96' as the lecture writes it; (1, D) -> 'D'
        if shape is None:
            return "-"
        if len(shape) == 4:
            return f"{shape[2]}x{shape[3]}x{shape[1]}"
        return "x".join(str(v) for v in shape[1:])

    header = ["layer", "type", "output", "parameters", "mult-adds"]
    cells, shade = [], []
    for r in summary.rows:
        cells.append([r.name, r.layer, hwc(r.output_shape), f"{r.params:,}", f"{r.mult_adds:,}"])
        shade.append(r.layer.split("(")[0] in highlight)
    cells.append(["total", "", "", f"{summary.total_params:,}", f"{summary.total_mult_adds:,}"])
    shade.append(False)
    fig = _figure(11, 0.4 + 0.2 * (len(cells) + 1))
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=header, loc="upper center", cellLoc="left",
                     colLoc="left", colWidths=[0.16, 0.36, 0.14, 0.14, 0.2])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#dddddd")
        if row == 0 or row == len(cells):
            cell.set_text_props(weight="bold")
        elif shade[row - 1]:
            cell.set_facecolor("#eef3fb")
        if col >= 3:
            cell.set_text_props(ha="right")
            cell._loc = "right"
    shape = "x".join(map(str, summary.input_shape[1:]))
    ax.set_title(title or f"{summary.model_name}, input {shape}: {summary.total_params:,} parameters, "
                          f"{_human(summary.total_mult_adds)} multiply-adds per image", fontsize=10)
    return _save(fig, path)


def _normalised(model, images):
    """``images`` (uint8) as the model saw its training data: cast, and normalised with
    ``model.normalization`` (the training statistics) when it has them."""
    from minicnn.data.loader import BatchLoader
    y = np.zeros(len(images), dtype=np.int64)
    stats = getattr(model, "normalization", None)
    if stats is None:
        loader = BatchLoader(images, y, len(images), shuffle=False, normalize=False)
    else:
        loader = BatchLoader(images, y, len(images), shuffle=False, mean=stats[0], std=stats[1])
    xb, _ = next(iter(loader))
    return xb.astype(next(model.parameters()).data.dtype)


def plot_run(model, x_test, y_test, out_dir, history=None, class_names=None, image=0, layers=2):
    """Every picture of a trained model, as ``minicnn plot RUN_DIR`` draws them; writes PNGs.

    curves.png (if ``history`` is given), filters.png (the first conv), feature_maps.png
    (the first ``layers`` ReLU outputs for test image number ``image``), confusion.png
    (on ``x_test``, ``y_test``; ``class_names`` label its axes) and layer_table.png.
    ``model`` is a trained model as ``train.load_model`` returns it (images are
    normalised with its ``normalization``).  Returns the list of paths written.
    """
    import minicnn
    from minicnn import nn, train
    image = check_int("plot_run", "image", image, 0)
    if image >= len(x_test):
        raise ValueError(f"plot_run: expected image as an index in 0..{len(x_test) - 1}, "
                         f"received {image}")
    written = []
    if history:
        written.append(plot_history(history, os.path.join(out_dir, "curves.png")))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if convs:
        written.append(plot_filters(convs[0].weight.data, os.path.join(out_dir, "filters.png")))
    maps = feature_maps(model, _normalised(model, x_test[image:image + 1]))
    if maps:
        written.append(plot_feature_maps(maps[:layers], os.path.join(out_dir, "feature_maps.png"),
                                         image=x_test[image]))
    probs = train.predict(model, x_test)
    cm = train.confusion_matrix(y_test, probs.argmax(1), num_classes=probs.shape[1])
    written.append(plot_confusion(cm, class_names, os.path.join(out_dir, "confusion.png")))
    table = minicnn.summary(model, tuple(int(v) for v in x_test.shape[1:]))
    written.append(plot_layer_table(table, os.path.join(out_dir, "layer_table.png")))
    return written
