"""The model registry: ``create(name, **kw)`` and ``names()``.

Each family file decorates its constructors with ``@register("name")``; the
package ``__init__`` imports every family file so that all names are known.
"""
_REGISTRY = {}


def register(name):
    """Decorator: make ``fn(num_classes=..., **kw) -> Module`` available as models.create(name)."""
    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn
    return deco


def names():
    """Sorted list of every registered model name."""
    return sorted(_REGISTRY)


def create(name, num_classes=None, **kw):
    """Build model ``name``; ``num_classes`` defaults to the model's own (1000 for ImageNet, 10 for CIFAR)."""
    if name not in _REGISTRY:
        raise ValueError(f"models.create: expected one of {', '.join(names())}, received {name!r}")
    if num_classes is not None:
        kw["num_classes"] = num_classes
    return _REGISTRY[name](**kw)
