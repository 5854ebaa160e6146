"""Stored script injection in the HTML report (issue 14, item 2).

A run folder can come from someone else (a copied run, a shared review file). Every field the
report shows -- from summary.json, the label files and the review files -- carries a payload
that would run script if it reached the page as markup. The page must show it as text, whatever
the field's type, and contain nothing but the report's own tags and attributes.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from napari_latentdirs.analysis import report
from napari_latentdirs.analysis.labelling import LabelResult

PAYLOAD = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)><a href=javascript:alert(3)>"

ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code", "b", "ul", "li",
                "table", "tr", "th", "td", "sup", "sub", "span", "figure", "img", "figcaption", "div", "i", "br",
                "a", "details", "summary"}
ALLOWED_ATTRS = {"lang", "charset", "class", "colspan", "rowspan", "src", "alt", "id", "href"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def _assert_inert(doc: str, out_dir: Path) -> str:
    """Only the report's own markup; returns the page's text."""
    page = _Page()
    page.feed(doc)
    page.close()
    for tag, attrs in page.tags:
        assert tag in ALLOWED_TAGS, f"injected <{tag}>"
        for name, value in attrs:
            assert name in ALLOWED_ATTRS, f"injected attribute {name}={value!r} on <{tag}>"
            if name == "href":  # the contents line: links within the page only
                assert tag == "a" and value and value.startswith("#") and value[1:].isidentifier(), value
            if name == "id":
                assert value and value.isidentifier(), value
            if tag == "img" and name == "src":
                assert value and "/" not in value and ":" not in value and (out_dir / value).is_file(), value
    return "".join(page.text)


def _labels(path: Path) -> Path:
    res = LabelResult(
        factors=[PAYLOAD, "width"], probe_set=PAYLOAD, method=PAYLOAD,
        effects=np.full((2, 2), 0.7), signed=np.full((2, 2), 0.7), ci_low=np.full((2, 2), 0.1), ci_high=np.full((2, 2), 0.9),
        significant=np.full((2, 2), 0.6), selectivity=np.array([0.8, 0.2]), consistency=np.array([1.0, 0.5]),
        image_change=np.array([0.1, 0.1]), labels=[PAYLOAD, "entangled"], top_factor=[PAYLOAD, "width"],
        score=np.array([1.0, 0.5]), rank=np.array([1, 2]), groups=[[0, 1]], factor_sd=np.ones(2), config={"x": PAYLOAD},
        valid_fraction=1.0,
    )
    res.save(path)
    return path


def _summary(run: Path, hostile_numbers: bool) -> dict[str, Any]:
    """Every section the report renders; string leaves hostile, numbers too if asked."""
    x = PAYLOAD
    n = (lambda v: PAYLOAD) if hostile_numbers else (lambda v: v)
    for name in ("samples.png", "fig2.png", "g.gif", "fig8.png", "fig11.png"):
        (run / "report").mkdir(parents=True, exist_ok=True)
        (run / "report" / name).write_bytes(b"\x89PNG")
    (run / "directions").mkdir(parents=True, exist_ok=True)
    (run / "directions" / "evil.safetensors").write_bytes(b"")
    labels = _labels(run / "analysis" / "labels.json")
    return {
        "created": x, "preset": x, "data": {"description": x}, "warnings": [x, x],
        "generators": {x: {"fingerprint": x, "fid": n(12.5), "train_slices": n(100), "seconds": n(3.0)}},
        "figures": {"samples": "samples.png", "fig2_vae": x, "fig2_gan": "../../../../etc/passwd",
                    "gifs": [{"file": "g.gif", "caption": x}, {"file": "javascript:alert(1)", "caption": x}],
                    "fig9": "http://example.org/x.png", "fig10": x, "fig8": "fig8.png"},
        "table1": [{"generator": "vae", "reconstructor": "lenet", "config": "unit32", "rca": n(0.9), "ls": n(0.1)},
                   {"generator": x, "reconstructor": x, "config": x, "rca": x, "ls": x}],
        "table1_note": x,
        "factors_found": {x: {"width": {"direction": n(3), "selectivity": n(0.7)}, "size": {"direction": x, "selectivity": x}}},
        "z_position": {"set": x, "direction": n(1), "effect": n(1.5), "ci": [n(1.0), n(2.0)], "consistency": n(0.9),
                       "selectivity": n(0.8), "label": x, "random_effect": n(0.2)},
        "labelling_note": x, "disentanglement_note": x,
        "direction_sets": [{"name": x, "path": "directions/evil.safetensors", "labels_path": str(labels.relative_to(run)),
                            "method": x, "K": n(2), "mig": n(0.1), "dci_d": n(0.2), "dci_c": n(0.3), "dci_i": n(0.4),
                            "selectivity": n(0.5), "n_found": n(1), "table_rows": n(40)}],
        "interpolation": {x: {"figure": "fig11.png", "method": x, "mse": [n(0.1), n(0.2)], "smoothness": n(1.2)}},
        "memorization": {x: {"generated_median": n(0.3), "heldout_median": n(0.4), "ratio": n(0.75), "copies": n(0.0)}},
        "timings": {x: n(1.0)}, "cpu_seconds": {x: n(2.0)},
        "quality": {x: {"n": n(10), "reference": x, "spaces": {x: {
            "generated": {"precision": n(0.5), "recall": n(0.4), "diversity": n(0.9)},
            "ceiling": {"precision": n(0.9), "recall": n(0.9), "diversity": n(1.0)}, "fid": n(20.0), "fid_ceiling": n(5.0)}}}},
        "comparison": {x: {"discovered": [x], "random": [x], "not_learned": [x], "n_discovered": n(1), "n_random": n(1),
                           "beats_random": [x], "below_random": [x],
                           "rows": [{"factor": x, "discovered": n(0.5), "random": n(0.4), "difference": n(0.1),
                                     "ci": [n(0.0), n(0.2)], "found_discovered": n(1), "found_random": n(0)}]}},
        "comparison_note": x,
    }


def _review_file(path: Path, **item: Any) -> None:
    base = {"position": 0, "source": "discovered", "index": 0, "label": PAYLOAD, "rating": 3, "notes": PAYLOAD, "time": PAYLOAD}
    doc = {"format": "napari-latentdirs/review/1", "directions": PAYLOAD, "generator": PAYLOAD, "reader": PAYLOAD,
           "blind": False, "seed": 0, "random_bank": None, "items": [{**base, **item}], "score": None}
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("hostile_numbers", [False, True], ids=["hostile-text", "hostile-everything"])
def test_report_shows_hostile_fields_as_text(tmp_path, hostile_numbers):
    run = tmp_path / "run"
    (run / "analysis").mkdir(parents=True)
    summary = _summary(run, hostile_numbers)
    (run / "analysis" / "summary.json").write_text(json.dumps(summary))
    # The issue's review: script in position, index and rating (and every text field).
    _review_file(run / "directions" / "evil.review-a.json", position=PAYLOAD, index=PAYLOAD, rating=PAYLOAD)
    _review_file(run / "directions" / "evil.review-b.json", position=PAYLOAD, index=PAYLOAD)
    _review_file(run / "directions" / "evil.review-c.json", rating=99, extra=PAYLOAD)
    path = report.render(run)
    doc = path.read_text()
    text = _assert_inert(doc, run / "report")
    assert "<script" not in doc.lower() and "<img src=x" not in doc.lower()
    # The payload reached the page -- as text, many times (the test is not vacuous).
    assert text.count(PAYLOAD) >= 15
    for heading in ("Findings", "Generators", "Table 1", "Discovered versus random", "Automatic labels", "Review", "Timings"):
        assert heading in text
    # Images only by plain names that exist beside the page (checked on every <img> above); the rest is text.
    for bad in ("../../../../etc/passwd", "http://example.org/x.png", "javascript:alert(1)"):
        assert f"({bad} was not produced)" in text


def test_hostile_review_object_renders_as_text(tmp_path):
    """Whatever a review loader lets through (types included), the report's own block is inert."""
    item = SimpleNamespace(position=PAYLOAD, source=PAYLOAD, index=PAYLOAD, label=PAYLOAD, rating=PAYLOAD, notes=PAYLOAD)
    disc = SimpleNamespace(position=[PAYLOAD], source="discovered", index=0, label=PAYLOAD, rating={"x": PAYLOAD}, notes=None)
    sess = SimpleNamespace(reader=PAYLOAD, blind=PAYLOAD, items=[item, disc])
    block = report.review_block(PAYLOAD, sess, {PAYLOAD: PAYLOAD, "accuracy": 0.5}, {0: PAYLOAD})
    text = _assert_inert(f"<html><body>{block}</body></html>", tmp_path)
    assert text.count(PAYLOAD) >= 9


@pytest.mark.parametrize("doc", [[], "text", {"generators": PAYLOAD}, {"direction_sets": [PAYLOAD]}])
def test_malformed_summary_is_a_clear_error(tmp_path, doc):
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "summary.json").write_text(json.dumps(doc))
    with pytest.raises(report.ReportInputError, match=r"summary\.json"):
        report.render(tmp_path)
    assert not (tmp_path / "report" / "index.html").exists()


def test_issue_reproduction_script_in_review_position_index_rating(tmp_path):
    """The issue's case exactly: a well-formed run, one review file with script in three fields."""
    run = tmp_path / "run"
    (run / "analysis").mkdir(parents=True)
    (run / "directions").mkdir()
    ds_path = run / "directions" / "vae.safetensors"
    ds_path.write_bytes(b"")
    summary = {"direction_sets": [{"name": "vae", "path": str(ds_path)}]}
    (run / "analysis" / "summary.json").write_text(json.dumps(summary))
    _review_file(run / "directions" / "vae.review-x.json", position="<script>alert(1)</script>",
                 index="<script>alert(2)</script>", rating="<script>alert(3)</script>", source="other", label="", notes="n",
                 time="")
    doc = report.render(run).read_text()
    _assert_inert(doc, run / "report")
    assert "<script" not in doc.lower()
