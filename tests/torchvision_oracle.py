"""torchvision as an oracle for the zoo's twins (tests/test_zoo_twins.py and the script
tests/fixtures/zoo/make_fixtures.py); never a dependency of minicnn.

``import_torchvision()`` imports torch and torchvision, or raises ImportError.  A CPU-only
torch build may lack the C operators torchvision registers "fake" (meta) kernels for --
torch 2.13 here refuses ``torchvision::nms`` and the import fails -- although the models
are plain Python.  So registering those kernels is made best-effort for the length of
the import, and torch is left as it was.

``torchvision_twin(name)`` builds torchvision's model for a zoo name (random init, eval
mode), with its BatchNorm statistics and affine parameters moved off their 0/1 defaults,
so that a twin that got BatchNorm wrong cannot pass.
"""
TORCHVISION_NAMES = {"alexnet_torchvision": "alexnet", "googlenet_torchvision": "googlenet"}


def import_torchvision():
    import torch

    register_fake = torch.library.register_fake

    def best_effort(*args, **kwargs):
        try:
            decorate = register_fake(*args, **kwargs)
        except RuntimeError:
            return lambda fn: fn
        if not callable(decorate):
            return decorate

        def apply(fn):
            try:
                return decorate(fn)
            except RuntimeError:   # "operator torchvision::nms does not exist"
                return fn
        return apply

    torch.library.register_fake = best_effort
    try:
        import torchvision
    finally:
        torch.library.register_fake = register_fake
    return torch, torchvision


def torchvision_twin(name, seed=0, **kw):
    """torchvision's model for the zoo's ``name``, seeded, in eval mode (see the module doc)."""
    torch, torchvision = import_torchvision()
    torch.manual_seed(seed)
    tv_name = TORCHVISION_NAMES.get(name, name)
    if tv_name == "googlenet":
        kw = dict(init_weights=True, aux_logits=True, **kw)   # as googlenet_torchvision's defaults
    model = getattr(torchvision.models, tv_name)(weights=None, **kw)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()
