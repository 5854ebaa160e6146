"""Training and direction docks: open as plugin docks, train in the background, stop, resume, fail cleanly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_latentdirs.events import Finished, Started, Step, Stopped

sys.path.insert(0, str(Path(__file__).parent))
from _dock_runs import record, tiny_directions, tiny_training  # noqa: E402

DOCKS = {
    "Train generator": "TrainingDock",
    "Discover directions": "DirectionsDock",
    "Latent navigator": "LatentNavigator",
    "Review directions": "ReviewWidget",
}


@pytest.mark.parametrize("name", list(DOCKS))
def test_every_dock_opens_through_the_manifest(make_napari_viewer, name):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-latentdirs", name)
    assert type(widget).__name__ == DOCKS[name]
    assert dock.isAncestorOf(widget)


@pytest.mark.parametrize("where", ["child process", "worker thread"])
def test_training_starts_reports_progress_stops_and_resumes(make_napari_viewer, threaded_workers, tmp_path, qtbot, monkeypatch, where):
    monkeypatch.setenv("LATENTDIRS_ENGINE_IN_THREAD", "1" if where == "worker thread" else "0")
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Train generator")
    tiny_training(dock, tmp_path, steps=60)  # long enough that the stop lands mid-run
    assert dock.runner.isolates(dock.make_engine(tmp_path / "probe", resume=False)) == (where == "child process")
    events = record(dock)
    dock.start()
    assert dock.state == "running" and not dock.start_btn.isEnabled()
    qtbot.waitUntil(lambda: any(isinstance(e, Step) and e.step >= 2 for e in events), timeout=60000)
    dock.stop()
    qtbot.waitUntil(lambda: dock.state in ("stopped", "finished", "failed"), timeout=60000)
    assert dock.state == "stopped", dock.status.text()
    stopped = [e for e in events if isinstance(e, Stopped)]
    assert stopped and stopped[0].checkpoint is not None and stopped[0].checkpoint.exists()
    assert 0 < dock.bar.value() < dock.bar.maximum() and "ETA" in dock.eta_label.text()
    assert len(dock.plot.series(next(iter(dock.plot._data)))[0]) >= 2  # the live plot got points
    assert dock.resume_btn.isEnabled() and not dock.runner.thread_alive
    run_dir = dock.run_dir
    dock.resume()
    qtbot.waitUntil(lambda: dock.state == "finished", timeout=120000)
    starts = [e for e in events if isinstance(e, Started)]
    assert len(starts) == 2 and starts[1].start_step == stopped[0].step > 0
    assert dock.run_dir == run_dir and isinstance(events[-1], Finished)
    assert dock.bar.value() == dock.bar.maximum()
    assert "training samples" in viewer.layers


def test_closing_the_viewer_stops_training_leaving_no_thread(make_napari_viewer, threaded_workers, tmp_path, qtbot):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Train generator")
    tiny_training(dock, tmp_path, steps=10_000)
    events = record(dock)
    dock.start()
    qtbot.waitUntil(lambda: any(isinstance(e, Step) for e in events), timeout=60000)
    runner, runner_run_dir = dock.runner, dock.run_dir
    assert runner.isolates(dock.make_engine(tmp_path / "probe", resume=False))
    pid = runner.child_pid
    assert pid is not None and Path(f"/proc/{pid}").exists()  # the engine runs in a child process ...
    viewer.close()
    assert not runner.thread_alive and runner.stop_requested
    assert not Path(f"/proc/{pid}").exists()  # ... which stopped (and was reaped) with the viewer
    # the engine checkpointed on its way out (its Stopped event is never delivered: the dock is gone)
    assert list(runner_run_dir.glob("checkpoints/*.safetensors")), sorted(runner_run_dir.rglob("*"))


def test_worker_exception_notifies_and_widget_recovers(make_napari_viewer, threaded_workers, tmp_path, saved_model, qtbot):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Discover directions")
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        bad = tmp_path / "broken.safetensors"
        bad.write_bytes(b"not a safetensors file")
        (tmp_path / "broken.json").write_text('{"kind": "dcgan", "config": {}}')
        dock.generator_edit.value = str(bad)
        dock.method_combo.setCurrentText("SeFa")
        dock.out_edit.value = str(tmp_path / "runs")
        dock.start()  # fails inside the worker thread, while loading the generator
        qtbot.waitUntil(lambda: dock.state == "failed", timeout=30000)
        assert dock.start_btn.isEnabled() and not dock.runner.thread_alive
        assert any("broken" in str(n.message) or "safetensors" in str(n.message) for n in seen)
        # recovers: the next run with a good generator goes through
        dock.generator_edit.value = str(saved_model[0])
        dock.k_spin.setValue(4)
        dock.start()
        qtbot.waitUntil(lambda: dock.state == "finished", timeout=30000)
        assert dock.output is not None and dock.output.exists()
    finally:
        notification_manager.notification_ready.disconnect(seen.append)


def test_directions_dock_shows_rca_and_ls_live(make_napari_viewer, sync_workers, tmp_path, saved_model):
    from napari_latentdirs.directions.set import DirectionSet

    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Discover directions")
    events = record(dock)
    tiny_directions(dock, saved_model[0], tmp_path)
    dock.start()
    assert dock.state == "finished", dock.status.text()
    steps = [e for e in events if isinstance(e, Step)]
    assert len(steps) == 4 and "RCA" in dock.metrics_label.text() and "L_s" in dock.metrics_label.text()
    assert np.array_equal(dock.plot.series("batch accuracy")[0], [1, 2, 3, 4])
    # one L_s everywhere: the paper's gamma * mean|alpha_hat - alpha|, in the plot, the live line,
    # the final line and the status; the raw L1 is labelled as such
    np.testing.assert_allclose(dock.plot.series("L_s")[1], [e.losses["shift_loss"] for e in steps])
    ds = DirectionSet.load(dock.output)
    ls, l1, rca = ds.metrics["shift_loss"], ds.metrics["shift_l1"], ds.metrics["rca"]
    assert ls == pytest.approx(0.25 * l1)
    final = dock.metrics_label.text()
    assert f"RCA {rca:.3f}" in final and f"L_s {ls:.4f}" in final and f"raw L1 {l1:.4f}" in final
    assert f"L_s = γ·mean|α̂−α| = {ls:.4g}" in dock.status.text() and f"RCA = {rca:.4g}" in dock.status.text()
    assert ds.K == 3 and "direction samples" in viewer.layers
    # Four steps learn nothing a K = 3 reconstructor could not guess half the time; the flag
    # follows the measured RCA either way.
    from napari_latentdirs.directions.set import LEARNED_RCA, NOT_LEARNED

    assert (NOT_LEARNED in final) == (rca < LEARNED_RCA)
