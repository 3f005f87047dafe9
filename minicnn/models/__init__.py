"""The architecture zoo, one file per family; ``create(name, num_classes=..., **kw)``, ``names()``."""
import importlib
import pkgutil

from minicnn.models.registry import create, names, register  # noqa: F401

# Every family file registers its models on import.
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "registry" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
