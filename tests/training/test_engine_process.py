"""Engines in a child process: the relay changes nothing an engine's consumer can see."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from napari_latentdirs.engine_process import (
    EngineJob,
    EngineProcessError,
    RemoteTraceback,
    run_in_process,
)
from napari_latentdirs.events import Finished, Started, Step, Stopped


def _drain(gen):
    """(events, return value) of an event generator."""
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as end:
            return events, end.value


def _job(name: str, **kwargs) -> EngineJob:
    return EngineJob(f"_process_jobs:{name}", kwargs)


def _gone(pid: int) -> bool:
    """The child has exited and been reaped (Linux: no /proc entry, not even a zombie)."""
    return not Path(f"/proc/{pid}").exists()


def test_events_and_return_value_cross_the_process_boundary():
    pids = []
    events, value = _drain(run_in_process(_job("counting", n=4, result="all four"), threading.Event(), on_start=pids.append))
    assert [e.step for e in events] == [0, 1, 2, 3] and value == "all four"
    assert {e.losses["pid"] for e in events} == {float(pids[0])} != {float(os.getpid())}  # it really ran elsewhere
    assert _gone(pids[0])


def test_stop_request_reaches_the_engine_which_returns_normally():
    stop, pids = threading.Event(), []
    gen = run_in_process(_job("endless"), stop, on_start=pids.append)
    seen = []
    for ev in gen:
        seen.append(ev)
        if len(seen) == 3:
            stop.set()
    assert isinstance(seen[-1], Stopped) and seen[-1].step >= 3
    assert _gone(pids[0])


def test_engine_exception_is_reraised_with_the_childs_traceback():
    pids = []
    gen = run_in_process(_job("failing", message="bad slice 17"), threading.Event(), on_start=pids.append)
    assert isinstance(next(gen), Step)
    with pytest.raises(ValueError, match="bad slice 17") as info:
        next(gen)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback) and "_process_jobs.py" in str(cause) and "failing" in str(cause)
    assert _gone(pids[0])


def test_exception_that_cannot_be_rebuilt_still_names_its_type_and_message():
    with pytest.raises(EngineProcessError, match="TwoArgError: odd failure"):
        _drain(run_in_process(_job("failing_oddly"), threading.Event()))


def test_a_child_that_dies_gives_a_clear_error_not_a_hang():
    pids = []
    with pytest.raises(EngineProcessError, match="exit code 3"):
        _drain(run_in_process(_job("dying", code=3), threading.Event(), on_start=pids.append))
    assert _gone(pids[0])


def test_closing_the_relay_early_stops_or_terminates_the_child():
    pids = []
    gen = run_in_process(_job("endless"), threading.Event(), on_start=pids.append)
    next(gen)
    gen.close()  # a consumer that goes away asks the engine to stop
    assert _gone(pids[0])
    gen = run_in_process(_job("ignoring_stop"), threading.Event(), stop_timeout_s=1.0, on_start=pids.append)
    next(gen)
    gen.close()  # one that ignores the request is killed after the timeout
    assert _gone(pids[1])


def test_prints_in_the_engine_do_not_corrupt_the_channel(capfd):
    events, value = _drain(run_in_process(_job("chatty"), threading.Event()))
    assert [e.step for e in events] == [0, 1] and value == "quiet now"
    err = capfd.readouterr().err  # the child's stdout went to its stderr, which is ours
    assert "python print to stdout" in err and "C-level write to fd 1" in err


def test_bad_target_is_a_clear_error():
    with pytest.raises(ValueError, match="module:function"):
        EngineJob("no_colon_here").resolve()


def test_tiny_gan_trains_identically_in_a_child_process(tmp_path):
    from napari_latentdirs.training.config import config_from_dict

    cfg = config_from_dict("gan", preset="tiny", epochs=10, batch_size=4, device="cpu", fid=False, max_steps=3,
                           log_every=1, sample_every=100, n_samples=2)
    kwargs = {"kind": "gan", "cfg": cfg, "source": "synthetic phantom", "path": "", "n_phantom": 12, "seed": 0}
    local, _ = _drain(EngineJob("napari_latentdirs.jobs:generator_job", {**kwargs, "run_dir": str(tmp_path / "a")})(threading.Event()))
    job = EngineJob("napari_latentdirs.jobs:generator_job", {**kwargs, "run_dir": str(tmp_path / "b")})
    remote, _ = _drain(run_in_process(job, threading.Event(), threads=torch.get_num_threads()))
    steps = [[e.losses for e in evs if isinstance(e, Step)] for evs in (local, remote)]
    assert len(steps[0]) == 3 and steps[0] == steps[1]
    assert isinstance(remote[0], type(local[0])) and any(isinstance(e, Started) for e in remote)
    assert isinstance(remote[-1], Finished) and remote[-1].output is not None and remote[-1].output.exists()
