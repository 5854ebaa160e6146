"""Kill a checkpoint save at every line of the save machinery, with a real SIGKILL.

Run as a script: ``python _kill_harness.py MODE FOLDER``. The harness saves a
first checkpoint (generation 1), then for every point k of a second save
(generation 2) forks a child that SIGKILLs itself when the save reaches its
k-th line in ``utils/atomic.py`` or ``utils/weights.py``. After each kill the
harness loads the folder as a resume would and prints one JSON line:
``{"k": k, "outcome": "gen1" | "gen2" | "<error text>", "temps": [temp files the kill left]}``.
The last line is ``{"done": true, "points": L, "temps_after_clean_save": [...]}``.

MODE ``rundir``: a bare ``RunDir`` checkpoint of a small module.
MODE ``gan``: a real ``GANTrainer`` (tiny preset) saving its ``last`` checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)  # no OpenMP pool in the parent: forking after one is unsafe

from napari_latentdirs.training.state import RunDir  # noqa: E402
from napari_latentdirs.utils import atomic as atomic_mod  # noqa: E402
from napari_latentdirs.utils import weights as weights_mod  # noqa: E402

TRACED = {os.path.abspath(atomic_mod.__file__), os.path.abspath(weights_mod.__file__)}
SKIP_CODE = {"<dictcomp>", "<listcomp>", "<setcomp>", "<genexpr>"}


class LineCounter:
    """A sys.settrace hook counting line events in the save machinery; kills at ``kill_at``."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.count = 0
        self.kill_at = kill_at

    def __call__(self, frame, event, arg):  # global tracer: pick the frames to follow
        code = frame.f_code
        if os.path.abspath(code.co_filename) in TRACED and code.co_name not in SKIP_CODE:
            return self.local
        return None

    def local(self, frame, event, arg):
        if event == "line":
            self.count += 1
            if self.kill_at is not None and self.count == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return self.local


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


class RunDirCase:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.run = RunDir(folder)
        self.module = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64), torch.nn.Linear(64, 8))

    def set_generation(self, g: int) -> None:
        with torch.no_grad():
            for p in self.module.parameters():
                p.fill_(float(g))

    def save(self, g: int) -> None:
        self.set_generation(g)
        self.run.save("last", {"m": self.module}, meta={"generation": g})

    def load(self) -> str:
        fresh = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64), torch.nn.Linear(64, 8))
        meta = RunDir(self.folder).load("last", {"m": fresh}, restore_rngs=False)
        g = meta["generation"]
        if not all(torch.all(p == float(g)) for p in fresh.parameters()):
            return f"generation {g} in the metadata but other tensors"
        return f"gen{g}"


class GANCase:
    def __init__(self, folder: Path) -> None:
        from napari_latentdirs.training.config import config_from_dict
        from napari_latentdirs.training.data import TensorSlices, synthetic_ellipses

        self.data = TensorSlices(synthetic_ellipses(16, 0), name="ellipses16")
        self.cfg = config_from_dict("gan", {"preset": "tiny", "batch_size": 4, "epochs": 2, "fid": False,
                                            "sample_every": 0, "device": "cpu"})
        self.folder = folder
        from napari_latentdirs.training.gan import GANTrainer

        self.cls = GANTrainer
        self.trainer = GANTrainer(self.cfg, self.data, folder)

    def save(self, g: int) -> None:
        self.trainer.step = g
        with torch.no_grad():
            self.trainer.modules["G"].first_layer.weight.fill_(float(g))
        self.trainer.save()

    def load(self) -> str:
        fresh = self.cls(self.cfg, self.data, self.folder)
        if not fresh.try_resume():
            return "no checkpoint found"
        w = fresh.modules["G"].first_layer.weight
        if not torch.all(w == float(fresh.step)):
            return f"step {fresh.step} but other weights"
        return f"gen{fresh.step}"


def main() -> None:
    mode, folder = sys.argv[1], Path(sys.argv[2])
    case = RunDirCase(folder) if mode == "rundir" else GANCase(folder)
    case.save(1)
    counter = LineCounter()
    sys.settrace(counter)
    case.save(2)
    sys.settrace(None)
    points = counter.count
    for k in range(1, points + 1):
        case.save(1)  # a clean save after the previous kill: also what cleans its debris
        pid = os.fork()
        if pid == 0:  # the child: save generation 2 and die at point k
            sys.settrace(LineCounter(kill_at=k))
            case.save(2)
            os._exit(3)  # not reached unless k is past the end
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        left = temps(folder)  # what the kill left, before loading (a new trainer cleans them up)
        try:
            outcome = case.load()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            outcome = f"{type(exc).__name__}: {exc}"
        print(json.dumps({"k": k, "killed": killed, "outcome": outcome, "temps": left}), flush=True)
    case.save(1)
    print(json.dumps({"done": True, "points": points, "temps_after_clean_save": temps(folder)}), flush=True)


if __name__ == "__main__":
    main()
