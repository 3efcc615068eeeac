"""Admission in front of the engine: requests wait for one of its `max_concurrency` slots, and each
admitted generation runs on a worker thread, so the event loop (and with it `/metrics`, `/health`
and new requests) never blocks on the model.

A slot is given back only when the engine's generator has actually stopped, not when the client
went away: a single-stream engine must never see two generations at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from atlas_agent.models.engine import Engine, Finish
from atlas_agent.serve.metrics import Metrics

_Item = str | Finish | BaseException


class EngineFailure(Exception):
    """The engine raised while generating; the server answers 500 (which clients retry)."""


@dataclass(frozen=True)
class Job:
    prompt: str
    prompt_tokens: int
    max_tokens: int
    temperature: float | None
    stop: list[str]


class Scheduler:
    def __init__(self, engine: Engine, metrics: Metrics) -> None:
        self._engine = engine
        self._metrics = metrics
        # created outside the event loop: asyncio primitives bind to the loop on first use
        self._slots = asyncio.Semaphore(engine.max_concurrency)
        self._threads = ThreadPoolExecutor(max_workers=engine.max_concurrency, thread_name_prefix="atlas-engine")

    async def stream(self, job: Job) -> AsyncGenerator[str | Finish, None]:
        """The completion's text pieces as they come, then its `Finish`.

        Closing the iterator early (a client that disconnected) stops the generation at the
        engine's next piece.
        """
        self._metrics.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._metrics.waiting -= 1
        self._metrics.running += 1
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[_Item] = asyncio.Queue()
        stop = threading.Event()
        try:
            worker = loop.run_in_executor(self._threads, self._drive, job, loop, items, stop)
        except BaseException:
            self._release()
            raise
        worker.add_done_callback(lambda _: self._release())
        first_piece_at: float | None = None
        try:
            while True:
                item = await items.get()
                if isinstance(item, BaseException):
                    raise EngineFailure(f"the engine failed: {type(item).__name__}: {item}") from item
                if isinstance(item, Finish):
                    decode_s = time.monotonic() - first_piece_at if first_piece_at is not None else 0.0
                    self._metrics.record(job.prompt_tokens, item, decode_s)
                    yield item
                    return
                if first_piece_at is None:
                    first_piece_at = time.monotonic()
                yield item
        finally:
            stop.set()

    def shutdown(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _release(self) -> None:
        self._metrics.running -= 1
        self._slots.release()

    def _drive(
        self, job: Job, loop: asyncio.AbstractEventLoop, items: asyncio.Queue[_Item], stop: threading.Event
    ) -> None:
        """Worker thread: pull pieces from the engine and hand them to the event loop."""

        def send(item: _Item) -> None:
            loop.call_soon_threadsafe(items.put_nowait, item)

        try:
            generation = self._engine.generate(
                job.prompt, max_tokens=job.max_tokens, temperature=job.temperature, stop=job.stop
            )
            with contextlib.closing(generation):
                while not stop.is_set():
                    try:
                        piece = next(generation)
                    except StopIteration as done:
                        finish = done.value
                        send(finish if isinstance(finish, Finish) else TypeError(f"generate returned {finish!r}"))
                        return
                    send(piece)
        except Exception as exc:
            # a closed loop (server shutting down) has nobody left to tell
            with contextlib.suppress(RuntimeError):
                send(exc)
