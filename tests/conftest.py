from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from factory import example_registry  # noqa: E402


@pytest.fixture
def registry_frame():
    """A small valid registry (DataFrame, index patient_id)."""
    return example_registry()
