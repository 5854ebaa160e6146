"""The one registry of direction methods: a method registered there reaches the CLI, the jobs
and ``compute_baseline`` (the dock: tests/napari/test_method_registry_dock.py)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from napari_latentdirs.cli import build_parser
from napari_latentdirs.directions import (
    METHODS,
    MethodSpec,
    closed_form_methods,
    register_method,
    unregister_method,
)
from napari_latentdirs.directions.baselines import compute_baseline
from napari_latentdirs.directions.set import DirectionSet
from napari_latentdirs.models.analytic import AnalyticEllipseGenerator


def toy_method(G, K=None, *, seed=0, generator="", **_):
    """The first K latent axes: a direction method in one function."""
    K = K or G.latent_dim
    return DirectionSet(A=np.eye(G.latent_dim, K, dtype=np.float32), method="toy-axes", generator=generator,
                        meta={"K": K, "seed": seed})


@pytest.fixture
def toy():
    register_method("toy-axes", MethodSpec(toy_method, learned=False, needs=(), description="the first K axes",
                                           label="toy axes"))
    yield "toy-axes"
    unregister_method("toy-axes")


def baseline_help() -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        build_parser().parse_args(["baseline", "--help"])
    return buf.getvalue()


def test_registry_holds_the_builtin_methods():
    assert set(METHODS) >= {"voynov", "random", "ganspace", "sefa", "pca-encoded"}
    assert METHODS["voynov"].learned and not METHODS["sefa"].learned
    assert "slices" in METHODS["pca-encoded"].needs
    assert "voynov" not in closed_form_methods()
    for name in closed_form_methods():  # every closed-form entry point resolves
        assert callable(METHODS[name].resolve())
    with pytest.raises(ValueError, match="needs"):
        MethodSpec(toy_method, False, ("a crystal ball",), "no")


def test_registered_method_reaches_cli_and_compute_baseline(toy, tmp_path, capsys):
    assert toy in baseline_help()
    args = build_parser().parse_args(["baseline", "--generator", "analytic", "--method", toy, "--K", "3",
                                      "--out", f"{tmp_path}/out/"])
    assert args.method == toy
    ds = compute_baseline(toy, AnalyticEllipseGenerator(), 3, generator="fp")
    assert ds.method == "toy-axes" and ds.K == 3 and ds.generator == "fp"
    assert args.func(args) == 0  # the CLI runs it end to end
    assert DirectionSet.load(tmp_path / "out" / f"{toy}.safetensors").K == 3


def test_unregistered_method_is_gone(toy):
    unregister_method(toy)
    assert toy not in baseline_help()
    with pytest.raises(ValueError, match="unknown baseline"):
        compute_baseline(toy, AnalyticEllipseGenerator(), 3)
    with pytest.raises(ValueError, match="unknown baseline"):
        compute_baseline("voynov", AnalyticEllipseGenerator(), 3)  # learned: not a one-call baseline


def test_baseline_job_runs_a_registered_method(toy, tmp_path):
    from napari_latentdirs.events import Finished
    from napari_latentdirs.jobs import baseline_job

    events = list(baseline_job(None, method=toy, spec="analytic", K=2, seed=0, run_dir=tmp_path))
    assert isinstance(events[-1], Finished)
    assert DirectionSet.load(events[-1].output).method == "toy-axes"
