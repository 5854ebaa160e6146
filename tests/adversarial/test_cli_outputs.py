"""``--out`` of the baseline command (issue 14, item 15): a folder gets a file inside it."""

from __future__ import annotations

import json
import os

from napari_latentdirs.cli import main
from napari_latentdirs.directions.set import DirectionSet


def test_baseline_out_folder_gets_the_file_inside(tmp_path, capsys):
    folder = tmp_path / "sets"
    folder.mkdir()
    assert main(["baseline", "--generator", "analytic", "--method", "sefa", "--K", "4", "--out", str(folder)]) == 0
    written = json.loads(capsys.readouterr().out)["output"]
    assert written == str(folder / "sefa.safetensors")
    assert DirectionSet.load(folder / "sefa.safetensors").method == "sefa"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sets"]  # nothing beside the folder


def test_baseline_out_with_a_trailing_separator_is_a_new_folder(tmp_path, capsys):
    out = str(tmp_path / "new") + os.sep
    assert main(["baseline", "--generator", "analytic", "--method", "random", "--K", "3", "--out", out]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == str(tmp_path / "new" / "random.safetensors")
    assert DirectionSet.load(tmp_path / "new" / "random.safetensors").K == 3


def test_baseline_out_file_names_keep_working(tmp_path, capsys):
    assert main(["baseline", "--generator", "analytic", "--method", "sefa", "--K", "4", "--out", str(tmp_path / "a")]) == 0
    assert main(["baseline", "--generator", "analytic", "--method", "sefa", "--K", "4",
                 "--out", str(tmp_path / "b.safetensors")]) == 0
    capsys.readouterr()
    assert {p.name for p in tmp_path.glob("*.safetensors")} == {"a.safetensors", "b.safetensors"}
