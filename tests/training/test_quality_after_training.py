"""``latentdirs train`` ends with the generator's quality against the data it imitated."""

from __future__ import annotations

import subprocess
import sys


def test_cli_train_prints_quality_against_held_out_phantom_slices(tmp_path):
    res = subprocess.run([sys.executable, "-m", "napari_latentdirs.cli", "train", "vae", "--data", "phantom:32",
                          "--out", str(tmp_path / "run"), "--preset", "tiny", "--epochs", "1", "--batch", "8",
                          "--device", "cpu", "--no-fid"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    out = res.stdout
    assert "generator quality: 200 samples against two held-out phantom samples of 200" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("probes"))
    assert "precision" in line and "recall" in line and "diversity" in line
    assert out.index("generator quality") < out.index("finished at step")  # before the final line
    assert "checkerboard index" in out  # the grid check is printed with the other figures
    # The final line names the generator and nothing raw: no metric keys, no empty dict.
    final = next(ln for ln in out.splitlines() if ln.startswith("finished at step"))
    assert "quality/" not in final and "{}" not in final
