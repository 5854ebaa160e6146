"""``latentdirs directions --recipe``: the named settings, under a config file and flags."""

from __future__ import annotations

import argparse

from napari_latentdirs.commands.directions import build_config as build
from napari_latentdirs.commands.directions import register
from napari_latentdirs.training.recipes import direction_recipe


def _parse(argv):
    ap = argparse.ArgumentParser()
    register(ap.add_subparsers())
    return ap.parse_args(["directions", "--generator", "analytic", "--out", "x", *argv])


def test_cpu_recipe_sets_its_values_and_flags_win(tmp_path):
    cfg = build(_parse(["--recipe", "cpu"]))
    for key, val in direction_recipe("cpu").items():
        assert getattr(cfg, key) == val, key
    assert build(_parse(["--recipe", "cpu", "--lr", "1e-4", "--reconstructor-input", "32"])).lr == 1e-4
    assert build(_parse(["--recipe", "cpu", "--reconstructor-input", "32"])).reconstructor_input == 32
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("steps: 77\n")
    from_file = build(_parse(["--recipe", "cpu", "--config", str(cfg_file)]))
    assert from_file.steps == 77 and from_file.lr == direction_recipe("cpu")["lr"]


def test_paper_is_the_default():
    cfg = build(_parse([]))
    assert cfg.lr == 1e-4 and cfg.batch_size == 128 and cfg.reconstructor_input is None
