"""The docks refuse to start an engine in a folder another process is writing (issue 22, item 1)."""

from __future__ import annotations

import subprocess
import sys

HOLD = ("import sys, time\nfrom napari_latentdirs.utils.folderlock import hold_folder\n"
        "with hold_folder(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


def test_resume_on_a_folder_another_process_writes_is_refused_naming_both(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-latentdirs", "Train generator")
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        dock.run_dir = run
        dock._launch(run, resume=True)  # what Resume does on a stopped run
        text = dock.status.text()
        assert dock.state == "failed" and not dock.runner.running
        assert str(run) in text and f"process {holder.pid}" in text, text
    finally:
        holder.kill()
        holder.wait()
    from napari_latentdirs.utils.folderlock import holder_of

    assert holder_of(run) is None  # the holder is gone: the folder is free for the next Start
