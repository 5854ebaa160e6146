"""Hostile files and generators (issue 22, items 7-10).

7: giant headers: a direction set with a million extra zero-size tensors is refused as soon as its
   header is read; a generator file whose header lies between safetensors' limit and ours is refused
   without writing anything (no sidecar).
8: ``--generator sys:exit`` (and ``os:abort``) is an error with rc 2 and a message.
9: a set whose column norms overflow float32 is refused; a review that could not be loaded is never
   saved; the report lists a review naming a direction outside K under "Could not read review".
10: read-only and full disks give one line naming the path; a legacy sidecar claiming width 1e9 names its file.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_latentdirs.cli import main as cli_main
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.utils.weights import WeightsFormatError

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_runs import ENV, PY  # noqa: E402


def _rewrite_header(path: Path, header: dict, pad_to: int | None = None) -> None:
    """Replace a safetensors file's header (the data stays)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    data = raw[8 + n:]
    head = json.dumps(header, separators=(",", ":")).encode()
    if pad_to is not None:
        head += b" " * (pad_to - len(head))
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + data)


def _header(path: Path) -> dict:
    raw = path.read_bytes()
    return json.loads(raw[8: 8 + int.from_bytes(raw[:8], "little")])


# -- item 7 -----------------------------------------------------------------------------------------

def test_a_direction_set_with_many_unexpected_tensors_is_refused_at_its_header(tmp_path):
    path = tmp_path / "set.safetensors"
    DirectionSet(np.eye(8, 4, dtype=np.float32), "random").save(path)
    header = _header(path)
    end = header["A"]["data_offsets"][1]
    for i in range(200_000):  # the file had 1.5 million; the check does not depend on the count
        header[f"x{i}"] = {"dtype": "F32", "shape": [0], "data_offsets": [end, end]}
    _rewrite_header(path, header)
    path.with_suffix(".json").unlink()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="unexpected tensor"):
        DirectionSet.load(path)
    assert time.perf_counter() - t0 < 10
    assert not path.with_suffix(".json").exists()  # a refused read writes nothing


def test_a_generator_header_beyond_the_safetensors_limit_is_refused_writing_nothing(tmp_path):
    from napari_latentdirs.models.dcgan import DCGANConfig, Generator
    from napari_latentdirs.models.registry import load_generator, save_generator

    path = tmp_path / "g.safetensors"
    save_generator(path, Generator(DCGANConfig(latent_dim=8, g_width=4, d_width=4)))
    path.with_suffix(".json").unlink()  # a sidecar a kill left missing: a load would rewrite it
    _rewrite_header(path, _header(path), pad_to=100_000_000 + 16)  # over safetensors' 100,000,000, under 100 MiB
    with pytest.raises(Exception, match=str(path.name)):
        load_generator(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors"]


# -- item 8 -----------------------------------------------------------------------------------------

def test_a_factory_that_exits_is_an_error_with_rc_2(tmp_path, capsys):
    rc = cli_main(["directions", "--generator", "sys:exit", "--out", str(tmp_path / "d")])
    assert rc == 2
    assert "sys:exit" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_an_abort_like_factory_is_refused_without_being_called(tmp_path):
    res = subprocess.run([PY, "-m", "napari_latentdirs.cli", "baseline", "--generator", "os:abort", "--method",
                          "random", "--out", str(tmp_path / "b")], capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "os:abort" in res.stderr and "nn.Module" in res.stderr


# -- item 9 -----------------------------------------------------------------------------------------

def test_a_set_whose_norms_overflow_float32_is_refused(tmp_path):
    A = np.full((16, 3), 7e29 / 4, dtype=np.float32)  # finite entries, column norms 7e29: |A|^2 overflows
    with pytest.raises(ValueError, match="norm"):
        DirectionSet(A, "random")
    path = tmp_path / "big.safetensors"
    from napari_latentdirs.utils.weights import save_weights

    save_weights(path, {"A": torch.from_numpy(A)}, {"format": "napari-latentdirs/direction-set/1", "method": "x"})
    with pytest.raises(ValueError, match=f"{path.name}.*norm"):
        DirectionSet.load(path)


def test_a_review_that_could_not_be_loaded_is_never_saved(tmp_path):
    from napari_latentdirs.analysis.review import ReviewSession

    ds = DirectionSet(np.eye(8, 4, dtype=np.float32), "random")
    sess = ReviewSession.create(ds, tmp_path / "set.safetensors", reader="dr", blind=True, seed=0)
    sess.random_bank[0, 0] = np.nan
    with pytest.raises(ValueError, match="random_bank"):
        sess.save()
    assert list(tmp_path.iterdir()) == []


def test_the_report_lists_a_review_with_an_index_beyond_K_as_unreadable(tmp_path):
    from napari_latentdirs.analysis.report import render
    from napari_latentdirs.analysis.review import ReviewSession

    run = tmp_path / "run"
    (run / "analysis").mkdir(parents=True)
    ds_path = run / "directions" / "s.safetensors"
    ds = DirectionSet(np.eye(8, 4, dtype=np.float32), "random")
    ds.save(ds_path)
    sess = ReviewSession.create(ds, ds_path, reader="dr")
    sess.record(0, label="width", rating=5)
    json_path, _ = sess.save()
    doc = json.loads(json_path.read_text())
    doc["items"][0]["index"] = 999
    json_path.write_text(json.dumps(doc))
    (run / "analysis" / "summary.json").write_text(json.dumps(
        {"direction_sets": [{"name": "s", "path": "directions/s.safetensors", "K": 4}]}))
    html = render(run).read_text()
    assert "Could not read review" in html and json_path.name in html
    assert "reader dr" not in html  # not shown, not scored


# -- item 10 ----------------------------------------------------------------------------------------

def _in_small_fs(tmp_path: Path, mode: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``latentdirs ARGV`` with a tmpfs mounted at ``tmp_path/mnt``: ``full`` (no space left)
    or ``ro`` (read-only), in a private user and mount namespace (no privileges needed)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    setup = f"mount -t tmpfs -o size=64k none {mnt}"
    if mode == "full":
        setup += f" && mkdir {mnt}/run && (dd if=/dev/zero of={mnt}/fill bs=4k count=64 2>/dev/null; true)"
    else:
        setup += f" && mkdir {mnt}/run && mount -o remount,ro {mnt}"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", setup], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no user namespaces here: {probe.stderr.strip()}")
    cmd = " ".join(["exec", PY, "-m", "napari_latentdirs.cli", *argv])
    return subprocess.run(["unshare", "-rm", "sh", "-c", f"{setup} && {cmd}"], capture_output=True, text=True,
                          env=ENV, timeout=300)


@pytest.mark.parametrize("mode", ["full", "ro"])
def test_full_and_read_only_disks_give_one_line_naming_the_path(tmp_path, mode):
    target = tmp_path / "mnt" / "run" / "random.safetensors"
    res = _in_small_fs(tmp_path, mode, ["baseline", "--generator", "analytic:32", "--method", "random",
                                        "--K", "2000", "--out", str(target)])
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip() and not ln.startswith(("INFO ", "WARNING "))]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr[-3000:]
    assert str(target) in lines[0] or str(target.parent) in lines[0], lines[0]
    assert ("No space left" in lines[0]) if mode == "full" else ("Read-only" in lines[0])


def test_a_legacy_sidecar_claiming_a_huge_width_names_its_file(tmp_path):
    from safetensors.torch import save_file

    from napari_latentdirs.models.dcgan import DCGANConfig, Generator
    from napari_latentdirs.models.registry import load_generator

    g = Generator(DCGANConfig(latent_dim=8, g_width=4, d_width=4))
    path = tmp_path / "legacy.safetensors"
    save_file(dict(g.state_dict()), str(path))  # an older file: metadata only in the sidecar
    cfg = {**g.cfg.to_dict(), "g_width": 1_000_000_000}
    path.with_suffix(".json").write_text(json.dumps({"kind": "dcgan", "config": cfg, "latent_dim": 8}))
    with pytest.raises(WeightsFormatError, match=path.name):
        load_generator(path)
