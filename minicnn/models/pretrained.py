"""Weights from a file into a zoo model: what ``models.create(name, weights=PATH)`` does.

    models.create("resnet18", weights="resnet18-f37072fd.pth")      # torchvision's file: its logits
    models.create("resnet18", num_classes=10, weights="resnet18-f37072fd.pth")
        # transfer learning: every weight but the classifier's (fc), which is drawn afresh

The steps:

1. read the file with ``minicnn.weights.load`` (``.pth``, ``.safetensors``, ``.npz``;
   nothing in a PyTorch pickle is run);
2. rename legacy keys, for a model that defines ``rename_legacy_keys`` (DenseNet's
   published checkpoints say ``norm.1`` where the model says ``norm1``);
3. the classifier (the layers in ``model.classifier_names``): if the file's differs from
   the model's in the number of classes only, then with ``num_classes`` given it is left
   out (a warning names its keys) and the model keeps a fresh one; without it, the model
   takes the file's number of classes;
4. compare every other key and shape with the model's state dict: keys the file lacks,
   keys the model lacks, and shapes that differ are reported together, each with its
   shape, in one ValueError -- the usual mistake (a ResNet-34 file for a ResNet-18) shows
   at once, not one key per attempt;
5. copy (``load_state_dict``; dtypes convert, float16 files included).
"""
import os
import warnings

from minicnn import weights as weights_io
from minicnn.nn.classifier import classifier_layers

SHOWN = 8   # entries listed per kind of mismatch; the rest are counted


def _model_shapes(model):
    shapes = {k: tuple(p.data.shape) for k, p in model.named_parameters()}
    shapes.update((k, tuple(b.shape)) for k, b in model.named_buffers())
    return shapes


def _head_keys(model):
    """{classifier layer name: [its state-dict keys]}, e.g. {"fc": ["fc.weight", "fc.bias"]}."""
    return {name: [f"{name}.{p}" for p, _ in layer.named_parameters()]
            for name, _, _, layer in classifier_layers(model, "models.create")}


def _file_classes(model_shapes, state, heads):
    """The file's number of classes if its classifier differs from the model's in that
    number only (first axis of every classifier entry), else None."""
    counts = set()
    for keys in heads.values():
        for key in keys:
            ours, theirs = model_shapes[key], getattr(state.get(key), "shape", None)
            if theirs is None or len(theirs) != len(ours) or tuple(theirs[1:]) != ours[1:]:
                return None
            counts.add(theirs[0])
    return counts.pop() if len(counts) == 1 else None


def _listing(entries):
    shown = ", ".join(entries[:SHOWN])
    return shown + (f", ... and {len(entries) - SHOWN} more" if len(entries) > SHOWN else "")


def mismatch_report(model_shapes, state):
    """Lines describing every difference between the model's {key: shape} and ``state``
    ({key: array}); an empty list when the file fits."""
    missing = [f"{k} {model_shapes[k]}" for k in model_shapes if k not in state]
    unexpected = [f"{k} {tuple(v.shape)}" for k, v in state.items() if k not in model_shapes]
    wrong = [f"{k}: model {shape}, file {tuple(state[k].shape)}" for k, shape in model_shapes.items()
             if k in state and tuple(state[k].shape) != shape]
    lines = []
    for title, entries in (("missing from the file", missing), ("not in the model", unexpected),
                           ("shape differs", wrong)):
        if entries:
            lines.append(f"  {title} ({len(entries)}): {_listing(entries)}")
    return lines


def load_weights(model, path, num_classes=None, rng=None, name=None):
    """Load the file at ``path`` into ``model`` (see the module docstring); returns model.

    ``num_classes``: what the caller asked for (None: not given, the file decides);
    ``rng``: draws a fresh classifier; ``name``: the model's name, for messages.
    """
    op = f"models.create({name!r}, weights={os.fspath(path)!r})"
    state = weights_io.load(path)
    rename = getattr(model, "rename_legacy_keys", None)
    if rename is not None:
        state = rename(state)
    shapes = _model_shapes(model)
    heads = _head_keys(model)
    file_classes = _file_classes(shapes, state, heads)
    left_out = {}   # classifier key -> the file's shape, when the file's head is not taken
    if file_classes is not None and any(shapes[k] != tuple(state[k].shape)
                                        for keys in heads.values() for k in keys):
        if num_classes is None:
            model.reset_classifier(file_classes, rng=rng)   # the file's classes
            shapes = _model_shapes(model)
        else:
            left_out = {k: tuple(state.pop(k).shape) for keys in heads.values() for k in keys}
    problems = mismatch_report({k: s for k, s in shapes.items() if k not in left_out}, state)
    if problems:
        raise ValueError(f"{op}: the file does not fit the model:\n" + "\n".join(problems) +
                         "\n  (minicnn.weights.match_models(path) lists the zoo models it fits)")
    model.load_state_dict(state, strict=not left_out)
    if left_out:
        model.reset_classifier(num_classes, rng=rng)
        warnings.warn(f"{op}: kept a fresh classifier of {num_classes} classes; left out of the "
                      f"file: {_listing([f'{k} {shape}' for k, shape in left_out.items()])}",
                      stacklevel=3)
    return model
