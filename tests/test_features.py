"""Penultimate-layer embeddings (Module.embed), extract_features and the linear probe fit_linear.

For every zoo model in eval mode: the embedding has the size of the classifier's input and,
fed through the classifier layer, gives the model's scores -- except SqueezeNet, whose
ReLU sits between its 1x1 conv classifier and the pooling; there the embedding is checked
against the last Fire module's output averaged over positions.
"""
import numpy as np
import pytest

from minicnn import models, train
from minicnn.evaluation import extract_features, feature_images
from minicnn.nn import Conv2d, Linear, ReLU, Sequential
from minicnn.nn.classifier import classifier_layers
from minicnn.nn.probe import generator_states

# Built for 32x32 inputs (cifar=True: FC6 reads a 1x1 map), the head being vgg11's.
BIG = {"vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"}
# Their classifier reads the map of the designed input; the others pool globally.
FULL_SIZE = ("vgg", "alexnet", "zfnet")
EMBEDDING_SIZE = {"alexnet": 4096, "vgg16": 4096, "resnet18": 512, "resnet50": 2048,
                  "densenet121": 1024, "googlenet": 1024, "mobilenet_v2": 1280,
                  "shufflenet_v2_x1_0": 1024, "squeezenet1_0": 512, "lenet5": 84, "nin": 192}


def _input(name, batch=2, seed=0, **options):
    c, h, _ = models.input_shape(name, **options)
    side = h if name.startswith(FULL_SIZE) else min(h, 64)
    return np.random.default_rng(seed).standard_normal((batch, c, side, side)).astype(np.float32)


@pytest.mark.parametrize("name", models.names())
def test_embedding_fed_through_the_classifier_gives_the_scores(name):
    options = {"cifar": True} if name in BIG else {}
    model = models.create(name, rng=0, **options).eval()
    x = _input(name, **options)
    scores = model(x)
    features = model.embed(x)
    layer = classifier_layers(model)[0][3]
    in_size = layer.in_features if isinstance(layer, Linear) else layer.in_channels
    assert features.shape == (x.shape[0], in_size)
    if name in EMBEDDING_SIZE:
        assert in_size == EMBEDDING_SIZE[name]
    if name == "squeezenet1_0":
        expected = model.features(x).mean(axis=(2, 3))     # dropout is the identity in eval
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
        return
    if isinstance(layer, Conv2d):                            # NiN: a 1x1 conv, then the average
        again = layer(features[:, :, None, None]).reshape(x.shape[0], -1)
    else:
        again = layer(features)
    np.testing.assert_allclose(again, scores, rtol=1e-5, atol=1e-5 * np.abs(scores).max())


def test_vgg_embedding_is_fc7_after_its_relu():
    model = models.create("vgg11", cifar=True, rng=0).eval()
    x = _input("vgg11", cifar=True)
    fc7 = model.classifier[:6](model.flatten(model.features(x)))               # FC6, ReLU, dropout, FC7, ReLU, dropout
    np.testing.assert_allclose(model.embed(x), fc7, rtol=1e-6)
    assert fc7.shape == (2, 4096) and (fc7 >= 0).all()


def test_resnet_embedding_is_the_pooled_last_stage():
    model = models.create("resnet18", rng=0).eval()
    x = _input("resnet18")
    trunk = Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1,
                       model.layer2, model.layer3, model.layer4)
    np.testing.assert_allclose(model.embed(x), trunk(x).mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)


def test_embed_needs_a_named_classifier():
    with pytest.raises(ValueError, match="names no classifier"):
        Sequential(Linear(4, 3), ReLU()).embed(np.zeros((1, 4), np.float32))


def test_embed_refuses_a_classifier_that_does_not_run_once():
    head = Linear(4, 4)
    model = Sequential(head, ReLU(), head)             # the same layer twice
    model.classifier_names = ("0",)
    with pytest.raises(ValueError, match="ran 2 times"):
        model.embed(np.zeros((1, 4), np.float32))


# ------------------------------------------------------------------ extract_features
def test_extract_features_runs_in_eval_mode_batch_by_batch_and_leaves_no_trace():
    model = models.create("small_cnn", num_classes=10, rng=0)      # training mode, dropout on
    x = np.random.default_rng(1).integers(0, 256, (10, 3, 32, 32), dtype=np.uint8)
    mean, std = np.full(3, 120.0), np.full(3, 60.0)
    states = generator_states(model)
    buffers = {k: v.copy() for k, v in model.named_buffers()}
    features = extract_features(model, x, batch_size=3, mean=mean, std=std)
    assert model.training
    assert generator_states(model) == states
    for k, v in model.named_buffers():
        np.testing.assert_array_equal(v, buffers[k])
    model.eval()
    expected = model.embed(((x - mean[:, None, None]) / std[:, None, None]).astype(np.float32))
    assert features.shape == (10, 128) and features.dtype == np.float32
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_extract_features_refuses_what_is_not_images():
    model = models.create("small_cnn", rng=0)
    with pytest.raises(ValueError, match=r"extract_features: expected images x of shape \(N, C, H, W\)"):
        extract_features(model, np.zeros((4, 32, 32), np.float32))


# ------------------------------------------------------------------------ fit_linear
def _blobs(n, d=6, k=3, seed=0):
    """k well-separated Gaussian clusters in d dimensions, far from zero mean / unit scale."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * 4
    y = rng.integers(0, k, n)
    return (50 + 10 * (centres[y] + rng.standard_normal((n, d)) * 0.3)).astype(np.float32), y


def test_fit_linear_learns_separable_features_through_fit():
    train_set, test_set = _blobs(300), _blobs(100, seed=0)
    test_set = (test_set[0][:100], test_set[1][:100])
    head, history = train.fit_linear(train_set, val=test_set, epochs=5, lr=0.1, batch_size=32)
    assert isinstance(head[1], Linear) and head[1].weight.shape == (3, 6)
    assert len(history) == 5 and history[-1]["val_accuracy"] == 1.0
    # fit standardised each feature with the training set's statistics, kept for evaluate.
    np.testing.assert_allclose(head.normalization[0], train_set[0].mean(axis=0), rtol=1e-4)
    result = train.evaluate(head, feature_images(test_set[0]), test_set[1])
    assert result["accuracy"] == 1.0


def test_fit_linear_takes_num_classes_and_refuses_bad_pairs():
    feats, y = _blobs(40)
    head, _ = train.fit_linear((feats, y), epochs=1, num_classes=5)
    assert head[1].weight.shape == (5, 6)
    with pytest.raises(ValueError, match=r"feature_images: expected features of shape \(N, D\)"):
        train.fit_linear((feats[:, :, None], y), epochs=1)
    with pytest.raises(ValueError, match="fit_linear: expected val as a"):
        train.fit_linear((feats, y), val=feats, epochs=1)
    with pytest.raises(ValueError, match=r"fit_linear: train: expected labels y of shape \(40,\)"):
        train.fit_linear((feats, y[:10]), epochs=1)
