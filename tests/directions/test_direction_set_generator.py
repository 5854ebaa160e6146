"""A direction set names the generator it was made for; every reader warns about another one the same way."""

from __future__ import annotations

import numpy as np

from napari_latentdirs.directions.set import DirectionSet

OURS, THEIRS = "a" * 20 + "1" * 44, "b" * 20 + "2" * 44


def test_made_for_another_names_both_generators_and_only_when_they_differ():
    ds = DirectionSet(np.eye(4)[:, :2], "random", OURS)
    assert ds.made_for_another(OURS) is None
    text = ds.made_for_another(THEIRS)
    assert text is not None and "another generator" in text
    assert OURS[:12] in text and THEIRS[:12] in text and OURS[:13] not in text  # short, but both named
    assert text.index(OURS[:12]) < text.index(THEIRS[:12])  # the set's first, then the one in hand


def test_an_unknown_fingerprint_on_either_side_is_not_a_mismatch():
    assert DirectionSet(np.eye(4)[:, :2], "random", "").made_for_another(THEIRS) is None  # an old set: not recorded
    assert DirectionSet(np.eye(4)[:, :2], "random", OURS).made_for_another("") is None  # a generator without one
