"""One run folder, one writer (issue 22, items 1, 5 and 6).

Item 1: two ``latentdirs train`` on one ``--out`` (two real processes): the second is refused with a
message naming the folder and the first's pid; a lock left by a killed process is taken over. Every
other command that writes a folder (directions, baseline, table1, run, report) is refused the same way
while another process holds it. Item 5: ``table1 --out`` on a folder of the user's changes nothing.
Item 6: a run folder moved while training stops with a clear error and nothing is recreated at the old path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napari_latentdirs.cli import main as cli_main
from napari_latentdirs.utils.folderlock import LOCK_NAME, hold_folder, holder_of

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_runs import ENV, PY, ellipses, tiny  # noqa: E402

HOLD = ("import sys, time\nfrom napari_latentdirs.utils.folderlock import hold_folder\n"
        "with hold_folder(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


def _train_cmd(out: Path, steps: int) -> list[str]:
    return [PY, "-m", "napari_latentdirs.cli", "train", "gan", "--data", "phantom:32", "--out", str(out),
            "--preset", "tiny", "--batch", "4", "--epochs", "1000", "--max-steps", str(steps), "--no-fid",
            "--device", "cpu"]


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 120.0) -> list[str]:
    lines: list[str] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} from the process: {''.join(lines)[-2000:]}")


def test_a_second_train_on_a_busy_run_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(_train_cmd(out, 100_000), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=ENV, text=True)
    try:
        _wait_for_line(first, "starting at")
        second = subprocess.run(_train_cmd(out, 2), capture_output=True, text=True, env=ENV, timeout=300)
        assert first.poll() is None  # the first is still training
        assert second.returncode != 0, second.stdout + second.stderr
        msg = second.stderr.strip().splitlines()[-1]
        assert str(out) in msg and f"process {first.pid}" in msg, msg
    finally:
        first.kill()
        first.wait()
    # SIGKILL: the lock file stays, but no process holds it; the next writer takes it over.
    assert (out / LOCK_NAME).is_file() and holder_of(out) is None
    from napari_latentdirs.training.state import check_run_folder

    check_run_folder(out)  # the leftover lock file is ours: the run folder is still a run folder
    with hold_folder(out):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (out / LOCK_NAME).exists()  # released: removed


@pytest.fixture
def held(tmp_path):
    """A folder held by another (real) process."""
    folder = tmp_path / "busy"
    proc = subprocess.Popen([PY, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, env=ENV, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc.pid
    proc.kill()
    proc.wait()


def _commands(folder: Path) -> dict[str, list[str]]:
    return {
        "train": ["train", "gan", "--data", "phantom:16", "--out", str(folder), "--preset", "tiny", "--batch", "4",
                  "--max-steps", "1", "--no-fid", "--device", "cpu"],
        "directions": ["directions", "--generator", "analytic:32", "--out", str(folder), "--K", "2", "--steps", "1",
                       "--batch-size", "2", "--eval-batches", "1", "--device", "cpu"],
        "baseline": ["baseline", "--generator", "analytic:32", "--method", "random", "--K", "2",
                     "--out", str(folder / "random.safetensors")],
        "table1": ["table1", "--cell", "gan_lenet_unit32", "--generator", "analytic:32", "--out", str(folder),
                   "--steps-scale", "0.00001", "--batch-size", "2", "--eval-batches", "1", "--device", "cpu"],
        "run": ["run", "--out", str(folder), "--no-progress", "--patients", "1"],
        "report": ["report", str(folder)],
    }


def _cli(argv: list[str], capsys) -> tuple[object, str]:
    """(exit code, what the user read): commands return a code or raise SystemExit with a message."""
    try:
        rc = cli_main(argv)
    except SystemExit as exc:
        rc = exc.code
        return (2 if isinstance(rc, str) else rc), str(rc) + capsys.readouterr().err
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "directions", "baseline", "table1", "run", "report"])
def test_every_writing_command_is_refused_on_a_busy_folder(held, command, capsys):
    folder, pid = held
    if command == "report":  # a run folder of ours, so that only the lock can refuse it
        (folder / "manifest.json").write_text(json.dumps({"format": "napari-latentdirs/run/1", "config": {},
                                                          "generators": {}, "sets": {}, "timings": {}}))
    before = sorted(p.name for p in folder.iterdir())
    rc, text = _cli(_commands(folder)[command], capsys)
    assert rc == 2, text
    assert str(folder) in text and f"process {pid}" in text, text
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


# -- item 5: table1 --out on a folder of the user's ---------------------------------------------------

def test_table1_refuses_a_folder_of_the_users(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "table1.md").write_text("my own notes\n")
    (folder / "table1.json").write_text(json.dumps({"rows": [{"cell": "mine", "value": 1}]}))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    rc, text = _cli(["table1", "--cell", "gan_lenet_unit32", "--generator", "analytic:32", "--out", str(folder),
                     "--steps-scale", "0.00001", "--batch-size", "2", "--eval-batches", "1", "--device", "cpu"], capsys)
    assert rc == 2 and str(folder) in text and "nothing was changed" in text, text
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# -- item 6: a run folder moved while training ---------------------------------------------------------

def test_a_run_folder_moved_while_training_stops_cleanly_and_leaves_nothing_at_the_old_path(tmp_path):
    import threading

    from napari_latentdirs.events import Step
    from napari_latentdirs.training.gan import GANTrainer
    from napari_latentdirs.training.state import RunFolderMovedError

    old, new = tmp_path / "run", tmp_path / "moved" / "run"
    trainer = GANTrainer(tiny("gan", epochs=3), ellipses(16), old)  # 4 steps an epoch
    events = []
    with pytest.raises(RunFolderMovedError, match="moved or deleted") as exc:
        for ev in trainer.run(threading.Event()):
            events.append(ev)
            if isinstance(ev, Step) and ev.step == 6:  # mid-epoch 2, after the first checkpoint
                new.parent.mkdir()
                shutil.move(str(old), str(new))
    assert str(old) in str(exc.value)
    assert not old.exists()  # nothing recreated there
    # The moved copy resumes where its last checkpoint left it.
    again = GANTrainer(tiny("gan", epochs=3), ellipses(16), new)
    assert again.try_resume() and again.step == 4

