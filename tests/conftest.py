"""Shared test configuration.

The paper's released data is read from ``../shared/data/plunkett2025`` beside
the repository (as CI lays it out), or from ``$SELFINTERP_SHARED_DATA``.
The CUDA backend is tested in numba's CUDA simulator (no GPU needed), or on
the GPU with ``SELFINTERP_TEST_GPU=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

# The CUDA backend's kernel runs in numba's CUDA simulator (set before numba is imported),
# unless SELFINTERP_TEST_GPU=1 asks for the real GPU
if os.environ.get("SELFINTERP_TEST_GPU") != "1":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    from numba.core import config as _numba_config  # numba-cuda's .pth may have loaded it

    _numba_config.reload_config()

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SELFINTERP_SHARED_DATA",
                                  REPO.parent / "shared" / "data" / "plunkett2025"))
MODEL = "gpt-4o-2024-08-06"

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
    max_examples=60,
)
settings.load_profile("ci")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``, the default here) the local
    backend's tests run in one worker, which loads SmolLM2 once."""
    for item in items:
        if Path(item.path).parent.name == "local" and Path(item.path).parent.parent.name == "llm":
            item.add_marker(pytest.mark.xdist_group("local"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "scenarios.csv").is_file():
        pytest.fail(f"the paper's released data is missing: expected it at {SHARED_DATA}")
    return SHARED_DATA
