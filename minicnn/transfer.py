"""Transfer learning from the command line: ``minicnn train --pretrained FILE [--freeze ...]
[--lr-backbone X]``.

    minicnn train --model resnet18 --pretrained resnet18-f37072fd.pth --freeze backbone --out runs/r18
    minicnn train --model small_cnn --pretrained runs/old/last.npz --lr-backbone 0.005 --out runs/ft

What each flag calls (a Python user writes the same three lines):

- ``--pretrained FILE``: ``models.create(name, num_classes=K, weights=FILE)`` -- every weight
  of the file but a classifier of another size (K is the data's number of classes, or
  ``--num-classes``); a file that does not fit the model is one error listing every
  mismatch (minicnn/models/pretrained.py).  FILE may be a torchvision ``.pth``, a
  ``.safetensors`` or a minicnn run's ``last.npz``.
- ``--freeze backbone`` (everything but the classifier), ``--freeze PREFIX ...`` (those
  parameters) or ``--freeze none`` (the default): ``model.freeze(...)``.
- ``--lr-backbone X``: two parameter groups, the classifier at ``--lr`` and the rest at X
  (``param_groups.fine_tuning_groups``), so the new head learns fast while the pretrained
  layers move slowly.

The run's config.json records the three.  ``--resume`` builds the model without reading
FILE again (the checkpoint holds every weight) and freezes it as the run did: freezing is
not part of a state dict.
"""
import warnings


def add_train_arguments(parser):
    """The transfer-learning flags of ``minicnn train``."""
    group = parser.add_argument_group("transfer learning")
    group.add_argument("--pretrained", metavar="FILE",
                       help="start from these weights (.pth, .safetensors, or a run's last.npz); "
                       "a classifier of another size is drawn afresh")
    group.add_argument("--freeze", nargs="+", metavar="WHAT",
                       help="'backbone' (train only the classifier), 'none', or parameter-name "
                       "prefixes (layer1 conv1 ...)")
    group.add_argument("--lr-backbone", type=float, metavar="LR",
                       help="learning rate of everything but the classifier (--lr: the classifier's)")


def build_model(create, name, model_kwargs, pretrained=None, freeze=None, resuming=False,
                log=print):
    """The model of a ``minicnn train`` run: ``create(name, **model_kwargs)`` (``models.create``
    or a wrapper of it), with the weights of ``pretrained`` unless ``resuming``, frozen as
    ``freeze`` says."""
    if pretrained is None or resuming:
        model = create(name, **model_kwargs)
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = create(name, weights=pretrained, **model_kwargs)
        log(f"pretrained: loaded {pretrained}" + "".join(
            f"\n  {str(w.message).split(': ', 1)[-1]}" for w in caught))
    apply_freeze(model, freeze)
    return model


def apply_freeze(model, freeze):
    """``--freeze``: None / ["none"]: nothing; ["backbone"]: all but the classifier; else prefixes."""
    if not freeze or list(freeze) == ["none"]:
        return model
    if "none" in freeze or ("backbone" in freeze and len(freeze) > 1):
        raise ValueError(f"--freeze: expected 'backbone', 'none' or parameter-name prefixes, "
                         f"received {' '.join(freeze)}")
    if list(freeze) == ["backbone"]:
        if not model.classifier_names:
            raise ValueError(f"--freeze backbone: {type(model).__name__} names no classifier; "
                             "give the prefixes to freeze")
        return model.freeze(exclude=model.classifier_names)
    return model.freeze(tuple(freeze))


def optimizer_params(model, lr_backbone=None):
    """What the optimizer is given: every parameter, or with ``lr_backbone`` the two groups
    of ``fine_tuning_groups`` (the classifier at the optimizer's lr, the rest at lr_backbone)."""
    if lr_backbone is None:
        return model.parameters()
    from minicnn.param_groups import fine_tuning_groups
    if not model.classifier_names:
        raise ValueError(f"--lr-backbone: {type(model).__name__} names no classifier to train "
                         "at --lr")
    return fine_tuning_groups(model, head=model.classifier_names, backbone_lr=lr_backbone)


def describe(model, freeze, lr_backbone):
    """A line saying what trains, for the start of a run (empty when everything trains at --lr)."""
    trainable = sum(p.size for p in model.trainable_parameters())
    parts = []
    if freeze and list(freeze) != ["none"]:
        parts.append(f"frozen: {' '.join(freeze)} ({model.num_parameters() - trainable:,} "
                     f"parameters); training {trainable:,}")
    if lr_backbone is not None:
        parts.append(f"backbone lr {lr_backbone:g}")
    return "; ".join(parts)
