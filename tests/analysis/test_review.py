"""Review sessions: blind mixing and shuffling, scoring, save/reload beside the direction set."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_latentdirs.analysis.review import LABEL_PRESETS, ReviewSession, score
from napari_latentdirs.directions.set import DirectionSet


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


def test_entangled_and_no_effect_are_not_interpretable(dirset):
    ds, path = dirset
    s = ReviewSession.create(ds, path, blind=True, n_random=3, seed=2)
    # the case: a reader labelling everything "entangled" judged nothing interpretable
    for it in s.items:
        s.record(it.position, "entangled", 4)
    sc = score(s)
    assert sc["interpretable_discovered"] == 0.0 and sc["interpretable_random"] == 0.0
    assert sc["specificity"] == 1.0 and sc["sensitivity"] == 0.0
    for it in s.items:
        s.record(it.position, "No effect", 3)
    assert score(s)["interpretable_discovered"] == 0.0
    # the vocabulary is the automatic labeller's, older spellings map onto it
    from napari_latentdirs.analysis.labelling import ENTANGLED, NO_EFFECT
    from napari_latentdirs.analysis.review import RATING_ANCHORS
    from napari_latentdirs.probes.factors import PROBE_NAMES

    assert set(PROBE_NAMES) | {ENTANGLED, NO_EFFECT} <= set(LABEL_PRESETS)
    assert s.record(0, "z-position", 5).label == "z_level"
    assert sorted(RATING_ANCHORS) == [1, 2, 3, 4, 5]


def test_reader_study_reports_accuracy_specificity_and_kappa(dirset):
    from napari_latentdirs.analysis.review import cohen_kappa, reader_study

    ds, path = dirset
    a = ReviewSession.create(ds, path, reader="a", blind=True, n_random=4, seed=1)
    b = ReviewSession.create(ds, path, reader="b", blind=True, n_random=4, seed=1)
    for it in a.items:  # reader a: perfect
        a.record(it.position, "width" if it.source == "discovered" else "entangled", 4)
    calls_b = {}
    for it in b.items:  # reader b: calls one random item interpretable, one discovered not
        yes = it.source == "discovered"
        if it.source == "random" and it.index == 0:
            yes = True
        if it.source == "discovered" and it.index == 0:
            yes = False
        calls_b[(it.source, it.index)] = yes
        b.record(it.position, "height" if yes else "no effect", 4)
    st = reader_study([a, b])
    ra, rb = st["readers"]
    assert (ra["accuracy"], ra["specificity"], ra["sensitivity"]) == (1.0, 1.0, 1.0)
    assert rb["accuracy"] == 6 / 8 and rb["specificity"] == 3 / 4 and rb["sensitivity"] == 3 / 4
    # kappa by hand: a says yes on the 4 discovered; b agrees on 6 of 8, says yes on 4 of 8
    po, pe = 6 / 8, 0.5 * 0.5 + 0.5 * 0.5
    [pair] = st["pairs"]
    assert pair["n"] == 8 and pair["kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert st["mean_kappa"] == pytest.approx(0.5) and st["mean_specificity"] == pytest.approx(7 / 8)
    assert cohen_kappa([True, False], [True, False]) == 1.0
    assert np.isnan(cohen_kappa([True, True], [True, True]))  # one answer throughout: undefined


def _write_review(path, mutate):
    import json

    ds = DirectionSet(np.eye(8, 4, dtype=np.float32), "unit")
    dpath = ds.save(path / "d.safetensors")
    s = ReviewSession.create(ds, dpath, reader="r", blind=True, n_random=2, seed=0)
    s.record(0, "width", 4)
    js, _ = s.save()
    doc = json.loads(js.read_text())
    mutate(doc)
    js.write_text(json.dumps(doc))
    return ds, js


BAD_REVIEWS = {
    "index 999": lambda d: d["items"][0].update(source="discovered", index=999),
    "index -1": lambda d: d["items"][0].update(source="discovered", index=-1),
    "rating 99": lambda d: d["items"][0].update(rating=99),
    "rating true": lambda d: d["items"][0].update(rating=True),
    "extra item key": lambda d: d["items"][0].update(extra="x"),
    "extra top key": lambda d: d.update(evil="<script>"),
    "position as text": lambda d: d["items"][0].update(position="<script>alert(1)</script>"),
    "index as text": lambda d: d["items"][0].update(index="<b>0</b>"),
    "label as list": lambda d: d["items"][0].update(label=["a"]),
    "unknown source": lambda d: d["items"][0].update(source="<img>"),
    "position out of order": lambda d: d["items"][0].update(position=3),
    "random index past the bank": lambda d: d["items"][0].update(source="random", index=7),
    "items not a list": lambda d: d.update(items={"a": 1}),
    "bank with NaN": lambda d: d.update(random_bank=[[float("nan")] * 8] * 2),
    "blind as text": lambda d: d.update(blind="yes"),
    "reader as number": lambda d: d.update(reader=5),
}


@pytest.mark.parametrize("case", list(BAD_REVIEWS))
def test_loader_refuses_malformed_review_files(tmp_path, case):
    from napari_latentdirs.analysis.review import ReviewFormatError

    ds, js = _write_review(tmp_path, BAD_REVIEWS[case])
    with pytest.raises(ReviewFormatError, match=js.name):
        ReviewSession.load(js, directions=ds)
    assert issubclass(ReviewFormatError, ValueError)  # the report lists it as "could not read"


def test_loader_refuses_non_json_and_non_objects(tmp_path):
    from napari_latentdirs.analysis.review import ReviewFormatError

    for text in ("not json", "[1, 2]", '"text"', "null"):
        p = tmp_path / "x.review-r.json"
        p.write_text(text)
        with pytest.raises(ReviewFormatError, match="x.review-r.json"):
            ReviewSession.load(p)
    p.write_bytes(b"\xff\xfe{")
    with pytest.raises(ReviewFormatError):
        ReviewSession.load(p)


def test_a_valid_review_still_loads_after_validation(tmp_path):
    ds, js = _write_review(tmp_path, lambda d: None)
    back = ReviewSession.load(js, directions=ds)
    assert back.items[0].label == "width" and back.items[0].rating == 4
