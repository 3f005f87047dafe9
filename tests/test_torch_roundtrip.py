"""The round trip of docs/transfer.md: a model trained by minicnn, saved as .safetensors by
``minicnn.weights.save``, loaded into torchvision's model by PyTorch code, gives the same
logits.  Runs when torch and torchvision are importable (an oracle only; never a
dependency of minicnn)."""
import numpy as np
import pytest

from minicnn import models, optim, train, weights
from torchvision_oracle import import_torchvision


def _oracle():
    pytest.importorskip("torch")
    pytest.importorskip("safetensors.torch")
    try:
        return import_torchvision()
    except ImportError as e:
        pytest.skip(f"torchvision is not importable: {e}")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_minicnn_trained_weights_give_the_same_logits_in_torchvision(name, tmp_path):
    torch, torchvision = _oracle()
    from safetensors.torch import load_file
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 5, 32)
    model = models.create(name, num_classes=5, rng=0)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    # Training moves every weight and BatchNorm's running statistics off their initial values.
    train.fit(model, opt, (x, y), epochs=1, batch_size=16, normalize=False, log=None, progress=False)
    path = tmp_path / f"{name}.safetensors"
    weights.save(model.state_dict(), path)

    reference = getattr(torchvision.models, name)(weights=None, num_classes=5)
    missing, unexpected = reference.load_state_dict(load_file(str(path)), strict=False)
    assert unexpected == [] and all(k.endswith("num_batches_tracked") for k in missing)
    probe = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = reference.eval()(torch.from_numpy(probe)).numpy()
    got = model.eval()(probe)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
