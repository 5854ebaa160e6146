"""Nothing written outside the run (issue 22, item 3).

A hostile (shared, copied, hand-edited) run folder: a set named ``../../../../x`` made
``latentdirs report --reanalyse`` write ``x.json`` outside the run, and a set path given as an
absolute path in manifest.json had that file rewritten. Every name and path read from a run folder
is now confined to it; anything else is an error naming the entry, before anything is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_latentdirs.analysis.demo import require_demo
from napari_latentdirs.cli import main as cli_main
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.runs.config import make_config
from napari_latentdirs.runs.folder import RUN_FORMAT


def _hostile_run(root: Path, sets: dict[str, str]) -> Path:
    """A run folder of ours (the bundled demo VAE, one small random set per entry of ``sets``)."""
    run = root / "shared" / "lab" / "run"
    (run / "vae").mkdir(parents=True)
    demo = require_demo("vae")
    shutil.copyfile(demo.generator, run / "vae" / "generator.safetensors")
    shutil.copyfile(demo.generator.with_suffix(".json"), run / "vae" / "generator.json")
    cfg = make_config(run, "tiny", quality_samples=0, label_latents=2, label_boot=10, score_samples=30,
                      memorization_samples=4, gifs=0, gif_frames=3, fig8_latents=2, interp_steps=2,
                      inversion_restarts=1, inversion_steps=2, progress=False, generators=("vae",))
    man = {"format": RUN_FORMAT, "config": cfg.to_dict(), "data": {}, "timings": {},
           "generators": {"vae": {"path": "vae/generator.safetensors", "fingerprint": "x"}}, "sets": {}}
    for name, path in sets.items():
        target = Path(path) if Path(path).is_absolute() else run / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            DirectionSet(np.eye(32, 4, dtype=np.float32), "random").save(target)
        man["sets"][name] = {"name": name, "path": path, "generator": "vae", "kind": "baseline", "method": "random"}
    (run / "manifest.json").write_text(json.dumps(man))
    return run


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_set_name_that_climbs_out_of_the_run_is_an_error_naming_it(tmp_path):
    run = _hostile_run(tmp_path, {"../../../../x": "directions/a.safetensors"})
    outside = {k: v for k, v in _files(tmp_path).items() if not k.startswith("shared/lab/run/")}
    with pytest.raises(SystemExit) as exc:
        cli_main(["report", str(run), "--reanalyse"])
    assert "../../../../x" in str(exc.value.code) and "manifest.json" in str(exc.value.code)
    after = {k: v for k, v in _files(tmp_path).items() if not k.startswith("shared/lab/run/")}
    assert after == outside  # no x.json (or anything else) outside the run
    assert not list(tmp_path.rglob("x.json"))


def test_an_absolute_path_outside_the_run_is_an_error_and_the_file_is_left_alone(tmp_path):
    victim = tmp_path / "elsewhere" / "victim.safetensors"
    victim.parent.mkdir()
    DirectionSet(np.eye(32, 4, dtype=np.float32), "random").save(victim)
    before = _files(victim.parent)
    run = _hostile_run(tmp_path, {"vae-random": str(victim)})
    with pytest.raises(SystemExit) as exc:
        cli_main(["report", str(run)])  # no summary.json: the analysis runs first
    assert str(victim) in str(exc.value.code) and "vae-random" in str(exc.value.code)
    assert _files(victim.parent) == before


def test_a_summary_path_outside_the_run_is_refused_by_the_report(tmp_path):
    from napari_latentdirs.analysis.report import ReportInputError, render

    secret = tmp_path / "secret"
    secret.mkdir()
    DirectionSet(np.eye(32, 4, dtype=np.float32), "random").save(secret / "s.safetensors")
    (secret / "s.review-x.json").write_text("{}")
    run = tmp_path / "run"
    (run / "analysis").mkdir(parents=True)
    (run / "analysis" / "summary.json").write_text(json.dumps(
        {"direction_sets": [{"name": "s", "path": str(secret / "s.safetensors"), "K": 4}]}))
    with pytest.raises(ReportInputError, match="outside the run folder"):
        render(run)
