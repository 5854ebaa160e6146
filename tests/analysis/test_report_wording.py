"""The report says nothing that contradicts itself (issue 19, item 6): a label and the number beside it
agree, Fig. 2's caption says what its rows are, "entangled" is defined where it first appears, the
interpolation error is explained beside a figure that agrees with the eye, and the review section speaks
in words and points to a menu that exists."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import numpy as np
import yaml

from napari_latentdirs.analysis import report
from napari_latentdirs.analysis.labelling import (
    ENTANGLED,
    NO_EFFECT,
    LabelConfig,
    LabelResult,
    direction_caption,
)
from napari_latentdirs.analysis.navigation import DirectionInfo
from napari_latentdirs.analysis.review import ReviewSession
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.runs.showcase import showcase

FACTORS = ["width", "height"]


def _result() -> LabelResult:
    """Four directions: height (selectivity 0.60), entangled only because the sign varies (0.60, consistency
    0.55), no effect (a selectivity of 0.60 over changes too small to count), and a second height direction."""
    sig = np.array([[0.1, 0.9], [0.4, 0.8], [0.05, 0.1], [0.1, 0.7]])
    return LabelResult(
        factors=FACTORS, probe_set="phantom", method="voynov-unit", effects=sig, signed=sig, ci_low=sig * 0.5,
        ci_high=sig * 1.5, significant=sig, selectivity=np.array([0.6, 0.6, 0.6, 0.65]),
        consistency=np.array([0.95, 0.55, 0.9, 0.9]), image_change=np.full(4, 0.1),
        labels=["height", ENTANGLED, NO_EFFECT, "height"], top_factor=["height"] * 4,
        score=np.array([0.9, 0.5, 0.1, 0.6]), rank=np.array([1, 3, 4, 2]), groups=[], factor_sd=np.ones(2),
        config={**LabelConfig().__dict__, "alphas": [-6.0, -3.0, 3.0, 6.0]}, valid_fraction=1.0,
    )


def _page_text(doc: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", doc)))


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "analysis" / "labels").mkdir(parents=True)
    (run / "directions").mkdir()
    (run / "report").mkdir()
    ds_path = run / "directions" / "vae-lenet-unit32.safetensors"
    DirectionSet(np.eye(8)[:, :4], "voynov-unit", labels=_result().labels).save(ds_path)
    _result().save(run / "analysis" / "labels" / "vae-lenet-unit32.json")
    (run / "report" / "fig2_vae.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (run / "report" / "fig11_vae.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    summary = {
        "direction_sets": [{"name": "vae-lenet-unit32", "path": "directions/vae-lenet-unit32.safetensors",
                            "labels_path": "analysis/labels/vae-lenet-unit32.json", "generator": "vae",
                            "kind": "discovered", "K": 4}],
        "figures": {"fig2_vae": "fig2_vae.png", "fig2_vae_rows": {"found": 1, "rows": 3}},
        "interpolation": {"vae": {"figure": "fig11_vae.png", "method": "encoder", "mse": [0.0275, 0.0178],
                                  "smoothness": 1.4, "rms_hu": [249.0, 200.0], "checkerboard": 16.5}},
    }
    (run / "analysis" / "summary.json").write_text(json.dumps(summary))
    sess = ReviewSession.create(DirectionSet.load(ds_path), ds_path, reader="dr_a", blind=True, n_random=2, seed=0)
    for pos in range(len(sess.items)):
        sess.record(pos, label="height" if pos % 2 else "not interpretable", rating=1 + pos % 5)
    sess.save()
    return run


def test_labels_and_numbers_agree_and_entangled_is_defined_where_it_first_appears(tmp_path):
    doc = report.render(_run(tmp_path)).read_text()
    text = _page_text(doc)
    first = text.lower().index("entangled")
    definition = re.search(r"Entangled\s*:", text).start()
    assert definition - 20 <= first <= definition  # the first "entangled" on the page is its definition
    # the label table: one row per direction, read as text
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>\d+</td><td>(\d+)</td>.*?</tr>", doc)}
    assert set(rows) == {"0", "1", "2", "3"}
    assert "no effect" in rows["2"] and ">0.60<" not in rows["2"]  # no selectivity beside "no effect"
    assert "entangled (sign varies)" in rows["1"] and '<td class="bad">0.55</td>' in rows["1"]
    assert "height" in rows["0"] and ">0.60<" in rows["0"]


def test_fig2_caption_says_what_its_rows_are(tmp_path):
    text = _page_text(report.render(_run(tmp_path)).read_text())
    assert "best-ranked direction per factor" not in text
    assert "one row per factor found (1: its best direction, with its selectivity), then the 2 best-ranked" in text
    # the rows themselves: the best height direction, then the second height direction marked as such
    ks, labs = showcase(_result(), n=3)
    assert ks[:2] == [0, 3] and labs[0] == "#0 height (0.60)" and labs[1] == "#3 height, 2nd (0.65)"
    assert sum(lab.endswith(" height (0.65)") for lab in labs) == 0


def test_interpolation_error_is_explained_beside_the_texture_figure(tmp_path):
    text = _page_text(report.render(_run(tmp_path)).read_text())
    assert "RMS 249 and 200 HU" in text and "Checkerboard index of the frames: 16.5" in text
    assert "Reconstruction MSE is the mean squared pixel difference" in text and "hardly notices texture" in text


def test_review_section_speaks_in_words_and_names_a_menu_that_exists(tmp_path):
    run = _run(tmp_path)
    text = _page_text(report.render(run).read_text())
    assert "n_reviewed" not in text and "interpretable_discovered" not in text
    assert not re.search(r"\b\d+\.000\b", text)  # no "n_reviewed 10.000"
    assert "directions reviewed 6" in text and "of them random 2" in text
    # with no review, the pointer names the plugin and widget as napari.yaml registers them
    for f in run.glob("directions/*.review-*"):
        f.unlink()
    text = _page_text(report.render(run).read_text())
    manifest = yaml.safe_load((Path(report.__file__).parents[1] / "napari.yaml").read_text())
    review = next(w["display_name"] for w in manifest["contributions"]["widgets"] if "review" in w["command"])
    assert f"Plugins → {manifest['display_name']} → {review}" in text


def test_the_navigator_names_directions_the_same_way():
    info = DirectionInfo(["height", ENTANGLED, NO_EFFECT, ENTANGLED], [0.6, 0.6, 0.6, 0.45])
    assert [info.item_text(k) for k in range(4)] == [
        "#0 height (selectivity 0.60)", "#1 entangled (sign varies)", "#2 no effect", "#3 entangled (selectivity 0.45)"]
    assert direction_caption(5, "", 0.7) == "#5"


def test_the_main_job_records_the_error_in_hu_and_the_frames_texture():
    """``runs.analyse.texture_and_hu``: RMS in HU from the MSE under the generator's window, and a
    checkerboard index that is 1 for frames equal to the real slices and large for a grid pattern."""
    from types import SimpleNamespace

    from napari_latentdirs.analysis.inversion import Embedding
    from napari_latentdirs.models.analytic import analytic_generator
    from napari_latentdirs.runs.analyse import texture_and_hu

    G = analytic_generator(size=32)
    rng = np.random.default_rng(0)
    real = np.clip(rng.normal(0, 0.3, (2, 32, 32)), -1, 1).astype(np.float32)
    emb = Embedding(np.zeros((2, G.latent_dim)), np.array([0.01, 0.04]), "reverse-search")
    same = texture_and_hu(G, SimpleNamespace(embedding=emb, frames=real.copy(), originals=real))
    np.testing.assert_allclose(same["rms_hu"], [0.1 * 1500, 0.2 * 1500], rtol=1e-6)  # default window -1000..2000 HU: 1500 HU per model unit
    assert abs(same["checkerboard"] - 1.0) < 1e-6
    grid = np.where((np.indices((32, 32)).sum(0) % 2) == 0, 0.5, -0.5).astype(np.float32)
    textured = texture_and_hu(G, SimpleNamespace(embedding=emb, frames=real + grid[None], originals=real))
    assert textured["checkerboard"] > 5
