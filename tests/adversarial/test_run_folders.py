"""Run folders (issue 14, items 10 and 11, the ``run`` side).

Item 10: a copied (or moved) run shows its own reviews, not the original's, and every path its
manifest and summary store resolves inside the copy. Item 11: ``latentdirs run --out`` refuses a
non-empty folder that is not one of ours and changes nothing there; our own folders resume.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from napari_latentdirs.cli import main as cli_main
from napari_latentdirs.runs.pipeline import (
    RunFolderError,
    check_run_folder,
    make_config,
    run_pipeline,
)
from napari_latentdirs.utils.paths import from_run


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The whole pipeline, as small as it goes (about a minute on two cores)."""
    out = tmp_path_factory.mktemp("runs") / "original"
    cfg = make_config(
        out, "tiny", patients=2, slices_per_patient=6, generators=("vae",), direction_seeds=(0,), quality_samples=0,
        reconstructors=("lenet",), cells=("unit32",), direction_steps={"vae": {"lenet": 2}}, direction_batch=4,
        direction_eval_batches=1, baselines=("random",), label_latents=2, label_boot=10, score_samples=30,
        memorization_samples=4, gifs=0, gif_frames=3, fig8_latents=2, interp_steps=2, inversion_restarts=1,
        inversion_steps=2, progress=False,
    )
    run_pipeline(cfg)
    return out


def _stored_paths(run: Path) -> list[str]:
    man = json.loads((run / "manifest.json").read_text())
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    paths = [man["cache"], man["data"]["root"]]
    paths += [g["path"] for g in man["generators"].values()] + [s["path"] for s in man["sets"].values()]
    paths += [s["path"] for s in summary["direction_sets"]] + [s["labels_path"] for s in summary["direction_sets"]]
    return paths


def _review(run: Path, reader: str, notes: str) -> None:
    from napari_latentdirs.analysis.review import ReviewSession
    from napari_latentdirs.directions.set import DirectionSet

    man = json.loads((run / "manifest.json").read_text())
    ds_path = from_run(run, man["sets"]["vae-lenet-unit32"]["path"])
    sess = ReviewSession.create(DirectionSet.load(ds_path), ds_path, reader=reader)
    sess.record(0, label="width", rating=4, notes=notes)
    sess.save()


def test_copied_and_moved_runs_read_their_own_files(small_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(small_run, copy)
    for p in _stored_paths(copy):
        assert not Path(p).is_absolute(), p
        assert from_run(copy, p).exists(), p
    _review(small_run, "dr_original", "seen in the original")
    _review(copy, "dr_copy", "seen in the copy")
    assert cli_main(["report", str(copy)]) == 0
    html = (copy / "report" / "index.html").read_text()
    assert "dr_copy" in html and "seen in the copy" in html
    assert "dr_original" not in html  # the copy does not read the original's files
    # Moved away from where it was made, with the original gone: still complete.
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(copy, moved)
    shutil.rmtree(copy)
    assert cli_main(["report", str(moved)]) == 0
    assert "seen in the copy" in (moved / "report" / "index.html").read_text()
    check_run_folder(moved)  # still recognised as a run of ours: it resumes


def test_our_run_folders_resume_old_and_new(small_run, tmp_path):
    check_run_folder(small_run)
    legacy = tmp_path / "legacy"
    shutil.copytree(small_run, legacy)
    man = json.loads((legacy / "manifest.json").read_text())
    del man["format"]  # a run written before the format key
    (legacy / "manifest.json").write_text(json.dumps(man))
    check_run_folder(legacy)
    check_run_folder(tmp_path / "new")  # absent
    (tmp_path / "empty").mkdir()
    check_run_folder(tmp_path / "empty")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("files", "message"), [
    ({"manifest.json": b'{"project": "thesis", "files": ["a.csv"]}', "a.csv": b"1,2\n"}, "manifest.json that latentdirs did not write"),
    ({"manifest.json": b"not json at all"}, "manifest.json that latentdirs did not write"),
    ({"notes.txt": b"mine", "cache": None}, "is not empty .* not a latentdirs run folder"),
])
def test_run_refuses_a_folder_that_is_not_ours(tmp_path, capsys, files, message):
    out = tmp_path / "theirs"
    out.mkdir()
    for name, data in files.items():
        if data is None:
            (out / name).mkdir()
        else:
            (out / name).write_bytes(data)
    before = _snapshot(out)
    # --data points nowhere: were the folder accepted, the run would fail right after touching it.
    with pytest.raises(SystemExit, match=f"error: --out .*{message}.*nothing was changed"):
        cli_main(["run", "--out", str(out), "--data", str(tmp_path / "nowhere"), "--no-progress"])
    with pytest.raises(RunFolderError):
        run_pipeline(make_config(out, "tiny", data=str(tmp_path / "nowhere"), progress=False))
    assert _snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted(files)
