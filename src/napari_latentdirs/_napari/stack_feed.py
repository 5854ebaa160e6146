"""Streams shifted stacks to a widget: newest request wins, frames land on the GUI thread.

Wraps :func:`napari_latentdirs.analysis.navigation.serve` in an
:class:`EngineRunner`: one long-lived worker thread per feed takes the newest
request from a one-slot mailbox and streams it chunk by chunk; chunks of
stale requests are dropped here, so the widget only ever sees current ones.
With ``LATENTDIRS_SYNC_WORKERS=1`` requests are computed inline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QWidget

from ..analysis.navigation import LatestRequest, StackChunk, StackRequest, StackStreamer, serve
from ..models.interface import LatentGenerator
from .workers import EngineRunner, sync_workers


class StackFeed:
    def __init__(
        self,
        owner: QWidget,
        on_chunk: Callable[[StackRequest, StackChunk], None],
        on_error: Callable[[BaseException], None] | None = None,
        viewer: Any = None,
        name: str = "stack feed",
    ) -> None:
        self.mailbox = LatestRequest()
        self.streamer: StackStreamer | None = None
        self.current: StackRequest | None = None
        self._on_chunk = on_chunk
        self._on_error = on_error
        self._runner = EngineRunner(owner, on_event=self._deliver, on_done=self._done, viewer=viewer, name=name)

    @property
    def thread_alive(self) -> bool:
        return self._runner.thread_alive

    def set_generator(self, generator: LatentGenerator, chunk_size: int = 20) -> None:
        """Switch models without stopping the worker: whatever it is generating for the old
        model goes stale now, and every later request carries the new model with it.
        (Stopping and restarting the worker here left the navigator stuck: the old
        worker's end is only processed by the event loop, after this call, so the
        restart never happened.)"""
        self.mailbox.cancel()
        self.current = None
        self.streamer = StackStreamer(generator, chunk_size=chunk_size)

    def submit(self, req: StackRequest) -> StackRequest:
        if self.streamer is None:
            raise RuntimeError("no generator set")
        streamer = self.streamer
        req = self.mailbox.submit(req, streamer)
        self.current = req
        if sync_workers():
            self.mailbox.take(0)
            for chunk in streamer.stream(req, lambda t=req.ticket: self.mailbox.is_current(t)):
                self._deliver(chunk)
        elif not self._runner.running:
            box = self.mailbox
            self._runner.start(lambda stop: serve(None, box, stop), "streaming shifted stacks")
        return req

    def is_current(self, ticket: int) -> bool:
        return self.current is not None and ticket == self.current.ticket and self.mailbox.is_current(ticket)

    def _deliver(self, chunk: StackChunk) -> None:
        if self.current is not None and self.is_current(chunk.ticket):
            self._on_chunk(self.current, chunk)

    def _done(self, error: BaseException | None) -> None:
        if error is not None and self._on_error is not None:
            self._on_error(error)

    def stop(self) -> None:
        self.mailbox.cancel()
        self._runner.stop_and_wait()

