"""The architecture zoo, one file per family; ``create(name, num_classes=..., **kw)``, ``names()``;
``create_for(name, num_classes, in_channels)`` for a dataset (see registry.py)."""
import importlib
import pkgutil

from minicnn.models.registry import (create, create_for, kwargs_for, names,  # noqa: F401
                                     num_parameters, register, state_shapes, takes)

# Every family file registers its models on import.
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "registry" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
