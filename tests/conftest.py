import os

from hypothesis import HealthCheck, settings

# Derandomised in CI so that a run is reproducible; no deadline anywhere (2 shared cores).
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _gpu_unavailable_reason():
    """None if CuPy and a CUDA device are usable, else why not."""
    try:
        from minicnn import backend
        backend.module_for("cupy")
    except RuntimeError as e:
        return str(e)
    return None


def pytest_collection_modifyitems(config, items):
    import pytest
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    reason = _gpu_unavailable_reason()
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=f"needs a GPU: {reason}"))
