"""``latentdirs label``: a set that was never labelled gets its labels by measurement (issue 19, item 5)."""

from __future__ import annotations

import json

import numpy as np

from napari_latentdirs.analysis.label_set import label_set, labels_path_of
from napari_latentdirs.analysis.labelling import NO_EFFECT, LabelResult
from napari_latentdirs.cli import main
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.models.analytic import FACTOR_NAMES, analytic_generator


def _unlabelled_analytic_set(path, rca=None):
    """The analytic generator's six known directions plus a dead coordinate, saved without labels."""
    g = analytic_generator(size=32)
    A = np.concatenate([g.factor_directions().numpy(), np.eye(g.latent_dim)[:, [20]]], axis=1)
    metrics = {} if rca is None else {"rca": rca}
    DirectionSet(A, "voynov-unit", g.fingerprint, metrics=metrics, meta={"steps": 3}).save(path)
    return g


def test_label_command_names_the_analytic_generators_directions_in_the_set(tmp_path, capsys):
    path = tmp_path / "mine.safetensors"
    _unlabelled_analytic_set(path)
    assert DirectionSet.load(path).labels is None
    assert main(["label", str(path), "--generator", "analytic", "--latents", "16"]) == 0
    out = capsys.readouterr().out
    assert "ellipse probes" in out  # says which probes measured the images
    ds = DirectionSet.load(path)
    assert ds.labels == [*FACTOR_NAMES, NO_EFFECT]
    assert ds.meta["steps"] == 3  # the set's own metadata is kept
    assert ds.meta["labelling"]["probes"] == "ellipse" and ds.meta["labelling"]["n_latents"] == 16
    assert len(ds.meta["descriptions"]) == ds.K == len(ds.meta["selectivity"])
    assert ds.meta["descriptions"][-1] == NO_EFFECT and ds.meta["descriptions"][0].startswith(FACTOR_NAMES[0])
    res = LabelResult.load(labels_path_of(path))
    assert res.labels == ds.labels and res.probe_set == "ellipse"
    assert "6 selective, 0 entangled, 1 without effect" in out
    # --json: the label table, machine-readable
    assert main(["label", str(path), "--generator", "analytic", "--latents", "8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["probes"] == "ellipse" and len(doc["directions"]) == 7


def test_label_command_warns_first_about_a_set_that_did_not_learn(tmp_path, capsys):
    path = tmp_path / "run" / "directions.safetensors"
    path.parent.mkdir()
    _unlabelled_analytic_set(path, rca=0.033)
    assert main(["label", str(path.parent), "--generator", "analytic", "--latents", "8"]) == 0  # a run folder works too
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("warning: directions not learned") and "RCA 0.033" in lines[0]
    assert DirectionSet.load(path).labels is not None


def test_label_command_warns_about_a_set_made_for_another_generator(tmp_path, capsys):
    path = tmp_path / "theirs.safetensors"
    g = _unlabelled_analytic_set(path)
    ds = DirectionSet.load(path)
    DirectionSet(ds.A, ds.method, "f" * 64, meta=ds.meta).save(path)
    assert main(["label", str(path), "--generator", "analytic", "--latents", "8"]) == 0  # still labelled
    out = capsys.readouterr().out
    assert "warning: the direction set was made for another generator" in out
    assert "f" * 12 in out and g.fingerprint[:12] in out and "its labels describe this generator's images" in out
    assert DirectionSet.load(path).labels is not None


def test_label_command_refuses_a_set_of_another_latent_size(tmp_path, capsys):
    path = tmp_path / "small.safetensors"
    DirectionSet(np.eye(8)[:, :3], "random").save(path)
    before = path.read_bytes()
    assert main(["label", str(path), "--generator", "analytic"]) == 2
    assert "latent size 8" in capsys.readouterr().err
    assert path.read_bytes() == before  # untouched
    assert main(["label", str(tmp_path / "none.safetensors"), "--generator", "analytic"]) == 2


def test_a_ct_like_generator_is_labelled_with_the_phantom_probes(tmp_path):
    from napari_latentdirs.phantom.factor_generator import PhantomFactorGenerator

    g = PhantomFactorGenerator(size=64)
    path = tmp_path / "ct.safetensors"
    DirectionSet(np.eye(g.latent_dim)[:, [0, 9]], "test").save(path)  # width, and a coordinate that does nothing
    done = label_set(g, path, n_latents=6, alphas=(-2.0, 2.0))
    assert done.probes == "phantom" and "phantom probes" in done.summary_lines()[0]
    assert done.result.factors[0] == "width" and done.directions.labels == ["width", NO_EFFECT]
    assert DirectionSet.load(path).meta["labelling"]["probes"] == "phantom"
