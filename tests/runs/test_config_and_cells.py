"""The main job's settings refuse what they do not know, and its direction cells run in
parallel worker processes, with ``random_sets`` random sets matched in K to every cell."""

from __future__ import annotations

import numpy as np
import pytest

from napari_latentdirs.runs.config import PipelineConfig, make_config


def test_unknown_settings_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="gan_stepz"):
        make_config(tmp_path, "tiny", gan_stepz=10)
    with pytest.raises(ValueError, match="unit64"):
        make_config(tmp_path, "tiny", cells=("unit64",))
    with pytest.raises(ValueError, match="non-zero"):
        make_config(tmp_path, "tiny", label_alphas=(0.0, 3.0))
    with pytest.raises(ValueError, match="unknown main-job setting"):
        PipelineConfig.from_dict({"out": str(tmp_path), "bogus": 1})


def test_saved_config_round_trips(tmp_path):
    cfg = make_config(tmp_path, "paper")
    again = PipelineConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.cells == ("ortho32", "unit32", "unit100")


def test_direction_cells_in_two_worker_processes(tmp_path):
    from napari_latentdirs.analysis.demo import require_demo
    from napari_latentdirs.console import Progress
    from napari_latentdirs.directions.set import DirectionSet
    from napari_latentdirs.models.registry import generator_fingerprint
    from napari_latentdirs.runs.manifest import Manifest
    from napari_latentdirs.runs.stages import stage_directions
    from napari_latentdirs.utils.paths import from_run

    cfg = make_config(tmp_path, "tiny", device="cpu", generators=("vae",), direction_seeds=(0, 1), workers=2,
                      direction_steps={"vae": {"lenet": 3}}, direction_batch=4, direction_eval_batches=1,
                      baselines=("random",), random_sets=2, progress=False)
    gfile = require_demo("vae").generator
    man = Manifest(tmp_path)
    man.data["generators"]["vae"] = {"path": str(gfile), "fingerprint": generator_fingerprint(gfile)}
    stage_directions(cfg, {"vae": gfile}, man, Progress(False))

    sets = Manifest(tmp_path).data["sets"]
    assert set(sets) == {"vae-lenet-ortho32-s0", "vae-lenet-ortho32-s1", "vae-random-K32-s0", "vae-random-K32-s1"}
    found = {n: DirectionSet.load(from_run(tmp_path, s["path"])) for n, s in sets.items()}
    for seed in (0, 1):
        s = sets[f"vae-lenet-ortho32-s{seed}"]
        assert s["seed"] == seed and s["steps"] == 3 and 0.0 <= s["rca"] <= 1.0
        assert s["learned"] == (s["rca"] >= cfg.learned_rca)
        assert found[f"vae-random-K32-s{seed}"].K == found[f"vae-lenet-ortho32-s{seed}"].K == 32
    # Two seeds give two different inits, and the random twins differ from each other.
    assert not np.allclose(found["vae-lenet-ortho32-s0"].A, found["vae-lenet-ortho32-s1"].A)
    assert not np.allclose(found["vae-random-K32-s0"].A, found["vae-random-K32-s1"].A)


def test_random_sets_are_matched_in_K_to_every_cell(tmp_path):
    from napari_latentdirs.analysis.demo import require_demo
    from napari_latentdirs.console import Progress
    from napari_latentdirs.directions.set import DirectionSet
    from napari_latentdirs.models.registry import generator_fingerprint
    from napari_latentdirs.runs.manifest import Manifest
    from napari_latentdirs.runs.stages import stage_baselines
    from napari_latentdirs.utils.paths import from_run

    cfg = make_config(tmp_path, "tiny", generators=("vae",), cells=("unit32", "unit100"), baselines=("random",),
                      random_sets=3, progress=False)
    gfile = require_demo("vae").generator
    man = Manifest(tmp_path)
    man.data["generators"]["vae"] = {"path": str(gfile), "fingerprint": generator_fingerprint(gfile)}
    stage_baselines(cfg, {"vae": gfile}, man, Progress(False))
    sets = Manifest(tmp_path).data["sets"]
    assert set(sets) == {f"vae-random-K{K}-s{i}" for K in (32, 100) for i in range(3)}
    for name, s in sets.items():
        ds = DirectionSet.load(from_run(tmp_path, s["path"]))
        assert ds.K == s["K"] == int(name.split("-K")[1].split("-")[0])
    with pytest.raises(ValueError, match="random_sets"):
        make_config(tmp_path, "tiny", random_sets=0)
