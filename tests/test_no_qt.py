"""Headless installs: the core and the CLI work with no Qt binding importable, and the package
metadata does not force one, nor an exact torch build (issue 12, part 5)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs before anything else in the child: any Qt binding (and qtpy, which needs one) fails to import.
BLOCKER = """
import importlib.abc, sys
BLOCKED = ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip", "qtpy")
class NoQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: no Qt binding on this machine")
        return None
sys.meta_path.insert(0, NoQt())
"""


def _run(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code, *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_the_blocker_blocks():
    res = _run("import PyQt6")
    assert res.returncode != 0 and "blocked" in res.stderr


def test_every_core_module_imports_without_qt():
    code = """
import importlib, pkgutil, sys
import napari_latentdirs as pkg
names = [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".") if "._napari" not in m.name]
for name in names:
    importlib.import_module(name)
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PyQt6", "PyQt5", "PySide6", "PySide2", "qtpy", "napari"))
print(len(names), qt)
"""
    res = _run(code)
    assert res.returncode == 0, res.stderr[-3000:]
    n, qt = res.stdout.split(" ", 1)
    assert int(n) > 40 and qt.strip() == "[]"  # nothing of Qt or napari was even imported


def test_cli_runs_real_work_without_qt(tmp_path):
    cli = "import runpy, sys; sys.argv = ['latentdirs', *sys.argv[1:]]; runpy.run_module('napari_latentdirs.cli', run_name='__main__')"
    res = _run(cli, "--help")
    assert res.returncode == 0 and "directions" in res.stdout, res.stderr[-2000:]
    res = _run(cli, "directions", "--generator", "analytic", "--out", str(tmp_path / "dirs"), "--K", "2", "--steps", "2",
               "--batch-size", "4", "--eval-batches", "1", "--device", "cpu")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "dirs" / "directions.safetensors").is_file()
    res = _run(cli, "baseline", "--generator", "analytic", "--method", "random", "--out", str(tmp_path / "r.safetensors"))
    assert res.returncode == 0 and (tmp_path / "r.safetensors").is_file(), res.stderr[-3000:]
    res = _run(cli, "phantom", str(tmp_path / "tree"), "--patients", "1", "--seed", "0")
    assert res.returncode == 0 and list((tmp_path / "tree").rglob("*.dcm")), res.stderr[-3000:]


def _requirements() -> tuple[list[str], dict[str, list[str]]]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"], project["optional-dependencies"]


def test_metadata_leaves_torch_and_qt_to_the_user():
    deps, extras = _requirements()
    by_name = {re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0].lower(): d for d in deps}
    assert "==" not in by_name["torch"] and re.search(r">=\s*2\.\d", by_name["torch"])  # a supported range
    assert "[" not in by_name["napari"]  # napari without a Qt binding in the core dependencies
    assert not {"pyqt6", "pyqt5", "pyside6", "pyside2"} & set(by_name)
    assert any(re.search(r"pyqt6|pyside6", d, re.I) for d in extras["gui"])  # the binding, as an extra
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert "-c scripts/constraints-cpu.txt" in install and '.[gui,test]' in install
    assert re.search(r"^torch==\d", (ROOT / "scripts" / "constraints-cpu.txt").read_text(), re.M)
