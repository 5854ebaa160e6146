"""Toy engines for the child-process relay tests (importable by the spawned child)."""

from __future__ import annotations

import os
import time

from napari_latentdirs.events import Step, Stopped


def counting(stop, n: int = 5, result: str = "done"):
    for i in range(n):
        yield Step(step=i, total_steps=n, losses={"x": float(i), "pid": float(os.getpid())})
    return result


def endless(stop):
    i = 0
    while not stop.is_set():
        yield Step(step=i, total_steps=10**9, losses={"x": float(i)})
        time.sleep(0.01)
        i += 1
    yield Stopped(step=i)
    return "stopped"


def failing(stop, message: str):
    yield Step(step=0, total_steps=1)
    raise ValueError(message)


class TwoArgError(Exception):
    """Pickles but cannot be rebuilt: unpickling calls TwoArgError(message) with one argument."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def failing_oddly(stop):
    yield Step(step=0, total_steps=1)
    raise TwoArgError("odd failure", 7)


def dying(stop, code: int):
    yield Step(step=0, total_steps=1)
    os._exit(code)


def ignoring_stop(stop):
    while True:
        yield Step(step=0, total_steps=1)
        time.sleep(0.05)


def chatty(stop):
    print("python print to stdout")
    yield Step(step=0, total_steps=2)
    os.write(1, b"C-level write to fd 1\n")
    yield Step(step=1, total_steps=2)
    return "quiet now"
