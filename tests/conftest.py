"""Shared test configuration.

The paper's released data is read from ``../shared/data/plunkett2025`` beside
the repository (as CI lays it out), or from ``$SELFINTERP_SHARED_DATA``.
"""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "scenarios.csv").is_file():
        pytest.fail(f"the paper's released data is missing: expected it at {SHARED_DATA}")
    return SHARED_DATA
