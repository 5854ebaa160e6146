"""The CLI spells out the feature spaces (so `latentdirs --help` does not import torch); they must
stay the analysis module's."""

from napari_latentdirs.analysis.quality import FEATURE_SPACES
from napari_latentdirs.commands.quality import SPACES


def test_cli_offers_every_feature_space():
    assert set(SPACES) == set(FEATURE_SPACES)
