"""The docks and a folder another process writes (issue 22, item 1).

Start always makes a new run folder, so the paths that can meet a busy folder are Resume and
"Resume from…": both are refused with a message naming the folder and the holding process, and
nothing is written. Once the holder dies its lock is taken over. The other way round, a dock's
running engine holds its folder, so a command-line job on it is refused, naming the dock's process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napari_latentdirs.events import Started
from napari_latentdirs.utils.folderlock import holder_of

sys.path.insert(0, str(Path(__file__).parent))
from _dock_runs import record, tiny_directions, tiny_training  # noqa: E402

HOLD = ("import sys, time\nfrom napari_latentdirs.utils.folderlock import hold_folder\n"
        "with hold_folder(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".latentdirs-lock"}


def _first_run(dock, name: str, tmp_path: Path, saved_model) -> Path:
    """A finished run of the dock's own, with a checkpoint Resume can continue."""
    if name == "Train generator":
        tiny_training(dock, tmp_path, steps=4)
    else:
        tiny_directions(dock, saved_model[0], tmp_path)
    dock.start()
    assert dock.state == "finished", dock.status.text()
    assert dock.resumable(dock.run_dir)
    return dock.run_dir


@pytest.mark.parametrize("name", ["Train generator", "Discover directions"])
def test_resume_and_resume_from_on_a_busy_folder_are_refused_naming_both(make_napari_viewer, sync_workers,
                                                                          tmp_path, saved_model, name):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", name)
    run = _first_run(dock, name, tmp_path / "runs", saved_model)
    before = _snapshot(run)
    events = record(dock)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for attempt in ("Resume", "Resume from"):
            if attempt == "Resume":
                dock.resume()
            else:
                assert dock.resume_from(run) is False
            text = dock.status.text()
            assert dock.state == "failed" and not dock.runner.running, (attempt, text)
            assert str(run) in text and f"process {holder.pid}" in text, (attempt, text)
            assert dock.resume_btn.isEnabled() or dock.start_btn.isEnabled()  # the dock is usable again
        assert not any(isinstance(e, Started) for e in events)  # no engine ran
        assert _snapshot(run) == before  # and nothing in the folder changed
    finally:
        holder.kill()
        holder.wait()
    assert holder_of(run) is None  # the holder died: its lock is taken over by the next writer
    dock.resume()
    assert dock.state == "finished", dock.status.text()
    assert any(isinstance(e, Started) for e in events) and dock.run_dir == run


@pytest.mark.parametrize("where", ["child process", "worker thread"])
def test_a_running_dock_holds_its_folder_so_a_cli_job_on_it_is_refused(make_napari_viewer, threaded_workers,
                                                                      tmp_path, qtbot, monkeypatch, where):
    monkeypatch.setenv("LATENTDIRS_ENGINE_IN_THREAD", "1" if where == "worker thread" else "0")
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Train generator")
    tiny_training(dock, tmp_path, steps=10_000)
    dock.epochs_spin.setValue(dock.epochs_spin.maximum())  # runs until stopped
    events = record(dock)
    dock.start()
    try:
        qtbot.waitUntil(lambda: any(isinstance(e, Started) for e in events), timeout=60000)
        run, engine_pid = dock.run_dir, dock.runner.child_pid if where == "child process" else os.getpid()
        assert engine_pid is not None
        cli = subprocess.run([sys.executable, "-m", "napari_latentdirs.cli", "train", "gan", "--data", "phantom:16",
                              "--out", str(run), "--preset", "tiny", "--batch", "4", "--max-steps", "2", "--no-fid",
                              "--device", "cpu"], capture_output=True, text=True, timeout=300)
        assert cli.returncode != 0, cli.stdout + cli.stderr
        msg = cli.stderr.strip().splitlines()[-1]
        assert str(run) in msg and f"process {engine_pid}" in msg, msg
        assert dock.state == "running"  # the dock's run goes on
    finally:
        dock.stop()
        qtbot.waitUntil(lambda: dock.state in ("stopped", "finished", "failed"), timeout=60000)
    assert dock.state == "stopped", dock.status.text()
    t0 = time.monotonic()
    while holder_of(run) is not None and time.monotonic() - t0 < 10:  # the child has exited by now
        time.sleep(0.1)
    assert holder_of(run) is None
