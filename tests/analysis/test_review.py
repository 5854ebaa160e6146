"""Review sessions: blind mixing and shuffling, scoring, save/reload beside the direction set."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_latentdirs.analysis.review import LABEL_PRESETS, ReviewSession, score
from napari_latentdirs.models.direction_set import DirectionSet


@pytest.fixture
def dirset(tmp_path):
    A = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32) * 3.0
    ds = DirectionSet(A, method="unit", labels=["width", "height", "size", "rotation"], generator="abc")
    path = ds.save(tmp_path / "dirs.safetensors")
    return ds, path


def test_blind_session_mixes_shuffles_and_hides(dirset):
    ds, path = dirset
    s = ReviewSession.create(ds, path, blind=True, n_random=3, seed=5)
    sources = [it.source for it in s.items]
    assert sources.count("discovered") == 4 and sources.count("random") == 3
    assert sources != sorted(sources, reverse=True) or sources != sorted(sources)  # not grouped by source
    assert all("direction" not in s.title(it, ds) and "width" not in s.title(it, ds) for it in s.items)
    again = ReviewSession.create(ds, path, blind=True, n_random=3, seed=5)
    assert [(i.source, i.index) for i in again.items] == [(i.source, i.index) for i in s.items]
    other = ReviewSession.create(ds, path, blind=True, n_random=3, seed=6)
    assert [(i.source, i.index) for i in other.items] != [(i.source, i.index) for i in s.items]
    # random directions have the discovered directions' mean norm
    norms = np.linalg.norm(s.random_bank, axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(ds.A, axis=0).mean(), rtol=1e-5)
    open_ = ReviewSession.create(ds, path, blind=False)
    assert "width" in open_.title(open_.items[0], ds)


def test_score_separates_a_perfect_and_a_guessing_reader(dirset):
    ds, path = dirset
    s = ReviewSession.create(ds, path, blind=True, n_random=4, seed=1)
    for it in s.items:
        if it.source == "discovered":
            s.record(it.position, LABEL_PRESETS[it.index], 5)
        else:
            s.record(it.position, "not interpretable", 1)
    sc = score(s)
    assert sc["accuracy"] == 1.0 and sc["auc"] == 1.0
    assert sc["interpretable_discovered"] == 1.0 and sc["interpretable_random"] == 0.0
    for it in s.items:
        s.record(it.position, "other", 3)
    sc = score(s)
    assert sc["auc"] == 0.5 and sc["accuracy"] == 0.5
    with pytest.raises(ValueError):
        s.record(0, "width", 7)


def test_save_and_reload_beside_direction_set(dirset):
    ds, path = dirset
    s = ReviewSession.create(ds, path, reader="dr who", blind=True, n_random=2, seed=3)
    s.record(2, "rotation", 4, "clear, slight entanglement with size")
    js, cs = s.save()
    assert js.parent == path.parent and js.name == "dirs.review-dr_who.json" and cs.suffix == ".csv"
    back = ReviewSession.load(js)
    assert back.blind and back.seed == 3 and back.reader == "dr who"
    assert [(i.source, i.index, i.label, i.rating, i.notes) for i in back.items] == [
        (i.source, i.index, i.label, i.rating, i.notes) for i in s.items
    ]
    np.testing.assert_array_equal(back.random_bank, s.random_bank)
    it = back.items[0]
    np.testing.assert_array_equal(back.vector(it, ds), s.vector(it, ds))
    rows = list(csv.DictReader(cs.open()))
    assert len(rows) == len(s.items) and rows[2]["label"] == "rotation" and rows[2]["rating"] == "4"
