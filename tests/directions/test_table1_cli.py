"""Table 1 cells and the ``directions`` / ``baseline`` / ``table1`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_latentdirs.cli import main
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.directions.voynov import DirectionsConfig
from napari_latentdirs.runs.table1 import CELLS, PAPER, cell_config, cell_yaml, run_table

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "table1"


def test_twelve_cell_configs_mirror_the_code():
    assert len(CELLS) == 12 and sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(CELLS)
    for cell in CELLS:
        path = CONFIGS / f"{cell}.yaml"
        assert path.read_text() == cell_yaml(cell)
        assert DirectionsConfig.from_yaml(path) == cell_config(cell)
    assert cell_config("gan_lenet_unit100").total_steps == 250_000
    assert cell_config("vae_resnet_ortho32").variant == "ortho"
    assert cell_config("vae_lenet_unit100").K == 100


def test_scaled_table_runs_writes_markdown_and_reuses_finished_cells(tmp_path):
    cells = ["gan_lenet_unit32", "gan_resnet_ortho32"]
    kw = {"steps_scale": 1e-4, "cells": cells, "batch_size": 8, "eval_batches": 1, "device": "cpu"}
    rows = run_table({"gan": "analytic", "vae": None}, tmp_path, note="analytic test", **kw)
    assert [r["cell"] for r in rows] == cells
    assert rows[0]["steps"] == 2 and rows[0]["paper_steps"] == 25_000 and rows[1]["steps"] == 1
    md = (tmp_path / "table1.md").read_text()
    assert "steps scaled by 0.0001" in md and "analytic test" in md
    assert f"{rows[0]['rca']:.4f} / {PAPER['gan_lenet_unit32'][0]:.4f}" in md
    assert f"{rows[1]['shift_loss']:.4f} / {PAPER['gan_resnet_ortho32'][1]:.4f}" in md
    assert {r["cell"] for r in json.loads((tmp_path / "table1.json").read_text())["rows"]} == set(cells)
    out = tmp_path / cells[0] / "directions.safetensors"
    stamp = out.stat().st_mtime_ns
    again = run_table({"gan": "analytic"}, tmp_path, **kw)
    assert again[0]["rca"] == rows[0]["rca"] and out.stat().st_mtime_ns == stamp


def test_directions_command_refuses_to_overwrite_and_resumes(tmp_path, capsys):
    common = ["directions", "--generator", "analytic", "--out", str(tmp_path / "run"), "--batch-size", "4",
              "--eval-batches", "1", "--K", "5", "--device", "cpu", "--json"]
    args = [*common, "--steps", "2"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    ds = DirectionSet.load(result["output"])
    assert ds.K == 5 and ds.meta["steps"] == 2 and result["rca"] == ds.metrics["rca"]
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    # Resuming a finished run with more steps continues it.
    assert main([*common, "--steps", "3", "--resume"]) == 0
    assert DirectionSet.load(result["output"]).meta["steps"] == 3


def test_directions_command_reads_a_table1_config(tmp_path, capsys):
    cfg = CONFIGS / "vae_lenet_ortho32.yaml"
    assert main(["directions", "--generator", "analytic", "--out", str(tmp_path), "--config", str(cfg),
                 "--steps", "1", "--batch-size", "4", "--eval-batches", "1", "--device", "cpu", "--json"]) == 0
    ds = DirectionSet.load(json.loads(capsys.readouterr().out)["output"])
    assert ds.method == "voynov-ortho" and ds.K == 32 and ds.meta["lr"] == 1e-4


def test_baseline_and_table1_commands(tmp_path, capsys):
    assert main(["baseline", "--generator", "analytic", "--method", "sefa", "--K", "6",
                 "--out", str(tmp_path / "sefa")]) == 0
    assert DirectionSet.load(tmp_path / "sefa.safetensors").method == "sefa"
    assert main(["baseline", "--generator", "analytic", "--method", "pca-encoded", "--out", str(tmp_path / "p")]) == 2
    capsys.readouterr()
    assert main(["table1", "--cell", "vae_lenet_unit32", "--generator", "analytic", "--out", str(tmp_path / "t"),
                 "--steps-scale", "0.0001", "--batch-size", "4", "--eval-batches", "1", "--device", "cpu"]) == 0
    assert "vae_lenet_unit32" in (tmp_path / "t" / "table1.md").read_text()
    with pytest.raises(SystemExit):
        main(["table1", "--out", str(tmp_path), "--cell", "nope", "--generator", "analytic", "--bogus"])
