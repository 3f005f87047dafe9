"""The classifier of a network: the layer that outputs its class scores, and how to swap it.

Every zoo model names its classifier layers in ``classifier_names`` (dotted module names:
``"fc"`` for a ResNet, ``"classifier.6"`` for VGG, ``"classifier.1"`` -- a 1x1 conv --
for SqueezeNet; GoogLeNet with auxiliary heads has three).  Transfer learning keeps
everything else and puts a fresh classifier of another size in their place::

    model = models.create("resnet18", weights="resnet18-f37072fd.pth")   # 1000 ImageNet classes
    model.reset_classifier(10)                                          # now 10, fc drawn afresh

A fresh classifier is drawn as the zoo draws one: a Linear by ``final_linear`` (He init
scaled by 0.1, bias zero), a conv as a plain Conv2d of the same kernel.

The same names give every zoo model its *embedding* (``model.embed(x)``, ``embed`` below):
what the main classifier layer (the first of ``classifier_names``) receives -- the
features the network has learnt, one vector per image, that a new classifier can be
trained on (CS231n: a pretrained CNN "as a fixed feature extractor")::

    VGG, AlexNet, ZFNet   FC7 after its ReLU (and dropout, the identity in eval), 4096 values
    ResNet, ResNeXt, ...  the globally average-pooled last map: 512 (ResNet-18/34), 2048 (50+)
    DenseNet-121          the pooled 1024 channels after the final BatchNorm + ReLU
    GoogLeNet             the pooled 1024 channels (after dropout); the auxiliary heads are left out
    MobileNet v1 / v2     the pooled 1024 / 1280 channels; ShuffleNet v2: the pooled 1024
    LeNet-5               F6, 84 values; small_cnn: its pooled channels

SqueezeNet and NiN classify with a 1x1 conv, which reads a map, not a vector.  Their
embedding is that map averaged over its positions (SqueezeNet: 512 values, the last Fire
module's output; NiN: 192) -- the vector a Linear classifier would read after global
average pooling, and a size a new classifier can be trained on.  For
NiN the 1x1 conv and the average commute (both are linear), so the conv applied to the
embedding gives the scores; SqueezeNet puts a ReLU between its conv and its pooling, so
there the scores do not follow from the embedding exactly.
"""
from minicnn import backend
from minicnn.checks import as_generator, check_int
from minicnn.nn.hooks import forward_hook
from minicnn.nn.layers import Conv2d, Linear


def final_linear(in_features, num_classes, rng=None):
    """The last Linear layer of a zoo model (the classifier): He init scaled by 0.1.

    He init keeps activations at scale through the ReLUs of hidden layers, but the last
    layer feeds softmax: there it makes confident, random initial guesses -- a first loss
    of 3-4 instead of ln(10) = 2.30 on CIFAR-10, and 7 for ResNet-56, whose residual sums
    grow with depth.  10x smaller weights start every model near ln(num_classes), the
    sanity check `minicnn train` prints, and no early steps are spent undoing the guesses
    (Karpathy, "A Recipe for Training Neural Networks").  The numbers drawn from ``rng``
    are those of a plain Linear; the bias is zero.
    """
    layer = Linear(in_features, num_classes, rng=rng)
    layer.weight.data *= layer.weight.data.dtype.type(0.1)
    return layer


def fresh_classifier(layer, num_classes, rng=None):
    """A new layer like ``layer`` (a Linear or a Conv2d classifier) with ``num_classes``
    outputs, freshly drawn, in ``layer``'s dtype, backend and mode."""
    if isinstance(layer, Linear):
        new = final_linear(layer.in_features, num_classes, rng=rng)
    elif isinstance(layer, Conv2d) and layer.groups == 1:
        new = Conv2d(layer.in_channels, num_classes, layer.kernel_size, stride=layer.stride,
                     padding=layer.padding, bias=layer.bias is not None, rng=rng)
    else:
        raise ValueError(f"fresh_classifier: expected a Linear or an ungrouped Conv2d classifier, "
                         f"received {layer!r:.80}")
    new.to(layer.weight.data.dtype)
    if backend.device_of(layer.weight.data) != "numpy":
        new.to(backend.device_of(layer.weight.data))
    return new.train(layer.training)


def classifier_layers(model, op="classifier_layers"):
    """[(dotted name, parent module, attribute, layer)] of every layer in ``model.classifier_names``."""
    names = getattr(model, "classifier_names", ())
    if not names:
        raise ValueError(f"{op}: {type(model).__name__} names no classifier (expected "
                         "classifier_names, the dotted names of the layers that output the "
                         "class scores, as every zoo model has)")
    modules = dict(model.named_modules())
    found = []
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        if name not in modules or parent_name not in modules:
            raise ValueError(f"{op}: {type(model).__name__}.classifier_names lists {name!r}, "
                             "which is not one of its modules")
        found.append((name, modules[parent_name], attr, modules[name]))
    return found


def reset_classifier(model, num_classes, rng=None):
    """Replace every classifier layer of ``model`` by a fresh one with ``num_classes``
    outputs (see the module docstring); ``model.num_classes`` follows.  Returns model."""
    op = f"{type(model).__name__}.reset_classifier"
    num_classes = check_int(op, "num_classes", num_classes, 1)
    rng = as_generator(rng, op)
    for _, parent, attr, layer in classifier_layers(model, op):
        setattr(parent, attr, fresh_classifier(layer, num_classes, rng))
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model


def embed(model, x):
    """The penultimate-layer embedding of ``model`` on ``x``: (N, D), see the module docstring.

    Runs ``model(x)`` as it is (call ``model.eval()`` first for evaluation-mode features;
    ``minicnn.features.extract_features`` does, batch by batch) and keeps what the main
    classifier layer receives, by a forward hook: no model needs a method of its own, and
    the scores are computed as always.  A classifier input with positions (N, C, H, W) --
    a conv classifier -- is averaged over them to (N, C).
    """
    op = f"{type(model).__name__}.embed"
    layer = classifier_layers(model, op)[0][3]
    received = []

    def keep_input(module, inp, out):
        if module is layer:
            received.append(inp)

    with forward_hook(keep_input):
        model(x)
    if len(received) != 1:
        raise ValueError(f"{op}: expected the classifier layer {model.classifier_names[0]!r} to "
                         f"run once in a forward pass, it ran {len(received)} times")
    features = received[0]
    if features.ndim == 4:
        features = features.mean(axis=(2, 3))
    return features.reshape(features.shape[0], -1)
