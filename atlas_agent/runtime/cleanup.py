"""No task container outlives the process that made it, short of SIGKILL (for which there is `atlas gc`).

Live containers are registered here. `install_signal_handlers()` turns SIGTERM and SIGHUP into
`SystemExit(128 + signum)` in the main thread, so every `finally` and `with` block runs; an atexit
hook force-removes whatever is still registered. Once a stop is requested (a signal, a full disk),
no container may start: a worker that was about to begin an episode fails at once instead.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
from abc import ABC, abstractmethod
from types import FrameType, TracebackType
from typing import Protocol, Self

from atlas_agent.errors import RunStopping


class Removable(Protocol):
    def remove(self) -> None: ...


class Scoped(ABC):
    """Started on entering a `with` block, removed on leaving it, however it is left."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def remove(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()


# Reentrant: the signal handler runs in the main thread, possibly while that thread holds the lock.
_lock = threading.RLock()
_live: dict[int, Removable] = {}
_exiting = False
_stop_reason = ""


def request_stop(reason: str) -> None:
    """From now on nothing new starts; the first reason given is the one reported."""
    global _stop_reason
    with _lock:
        _stop_reason = _stop_reason or reason


def stop_reason() -> str:
    """Why the run is stopping; "" while it is not."""
    return _stop_reason


def register(container: Removable) -> None:
    """Tracks a container about to be created; RunStopping once a stop was requested."""
    with _lock:
        if _stop_reason:
            raise RunStopping(f"the run is stopping ({_stop_reason}): no new container starts")
        _live[id(container)] = container


def unregister(container: Removable) -> None:
    with _lock:
        _live.pop(id(container), None)


def live() -> list[Removable]:
    with _lock:
        return list(_live.values())


def remove_all() -> int:
    """Force-removes every registered container; best effort, as it runs while exiting."""
    removed = 0
    for container in live():
        with contextlib.suppress(Exception):  # what fails here is left to `atlas gc`
            container.remove()
            removed += 1
    return removed


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    global _exiting
    if _exiting:  # a second signal must not cut short the cleanup the first one started
        return
    _exiting = True
    request_stop(signal.Signals(signum).name)
    # Containers are removed before unwinding: worker threads blocked in a long command then fail at
    # once (their shell dies) instead of holding up the exit until their command times out.
    remove_all()
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP become SystemExit in the main thread; a no-op in other threads."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_IGN:  # e.g. under nohup: the user chose to survive it
            continue
        signal.signal(signum, _exit_on_signal)


atexit.register(remove_all)
