"""Suite-wide settings. Sub-folders add their own fixtures."""

from __future__ import annotations

import os

# Widgets run their workers synchronously under this switch (see _napari/workers.py).
os.environ.setdefault("LATENTDIRS_SYNC_WORKERS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    np.random.seed(0)
    torch.manual_seed(0)
    yield
