"""The architecture zoo, one file per family; ``create(name, num_classes=..., **kw)``, ``names()``;
``create_for(name, num_classes, in_channels)`` for a dataset; ``info(name)``,
``input_shape(name)`` and ``options(name)`` say what a model is (see registry.py)."""
import importlib
import pkgutil

from minicnn.models.registry import (ModelInfo, check_options, create, create_for, info,  # noqa: F401
                                     input_shape, kwargs_for, names, num_parameters, options,
                                     parameter_count, register, state_shapes, takes)

# Every family file registers its models on import.
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "registry" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
