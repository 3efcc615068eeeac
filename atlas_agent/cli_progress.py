"""What a long command shows while it works (`atlas run`, `eval`, `validate`, `images build`).

On a terminal, a live display under the command's lines: done / running / errored of the total, the time
so far and an estimate of what is left, cost and tokens so far, and a row per running instance with its
step and the tool it used last. Elsewhere (a log file, CI, a pipe), timestamped lines: each start, each
finish. Either way each finished instance gets a line as it finishes, a failure with its cause on it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from atlas_agent.vocabulary import Usage

# a cause longer than this is cut: one line on the screen, the whole of it in status.json
SHOWN_CAUSE_CHARS = 240
REFRESHES_PER_SECOND = 4


def one_line(text: str, limit: int = SHOWN_CAUSE_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def clock(seconds: float) -> str:
    """`1:02:03`, or `2:03` under an hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def tokens(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count >= 1e6 else f"{count / 1e3:.1f}k" if count >= 1e3 else str(count)


@dataclass
class _Running:
    started: float = field(default_factory=time.monotonic)
    steps: int = 0
    last_tool: str = ""
    usage: Usage = field(default_factory=Usage)


class Progress:
    """Counts of one phase at a time (`phase` starts the next); safe to call from any thread."""

    def __init__(self, console: Console, title: str, total: int = 0, *, live: bool | None = None) -> None:
        """`live`: the live display (default: when the console is a terminal), else timestamped lines."""
        self.console = console
        self.title = title
        self.live = console.is_terminal if live is None else live
        self._lock = threading.Lock()
        self._display: Live | None = None
        self._spent = Usage()  # finished instances'
        self._reset("", total)

    def _reset(self, phase: str, total: int) -> None:
        self._phase, self.total = phase, total
        self._done = self._failed = self._skipped = 0
        self._running: dict[str, _Running] = {}
        self._counts_running = False  # whether this phase says when an item starts
        self._began = time.monotonic()

    def __enter__(self) -> Progress:
        if self.live:
            self._display = Live(
                self,
                console=self.console,
                refresh_per_second=REFRESHES_PER_SECOND,
                transient=True,
                redirect_stdout=False,
            )
            self._display.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None

    def phase(self, text: str, total: int = 0) -> None:
        with self._lock:
            self._reset(text, total)
        if not self.live:
            counted = f" ({total})" if total else ""
            self._say(f"{self.title}: {text}{counted}")

    def started(self, item: str) -> None:
        with self._lock:
            self._counts_running = True
            self._running[item] = _Running()
        if not self.live:
            self._say(f"start {item}")

    def stepped(self, item: str, steps: int, last_tool: str | None, usage: Usage) -> None:
        with self._lock:
            row = self._running.setdefault(item, _Running())
            row.steps, row.usage = steps, usage
            row.last_tool = last_tool or row.last_tool

    def finished(self, item: str, line: str | None, *, failed: bool = False, usage: Usage | None = None) -> None:
        with self._lock:
            self._running.pop(item, None)
            self._failed += failed
            self._done += not failed
            self._spent = self._spent + (usage or Usage())
            count = f"[{self._done + self._failed + self._skipped}/{self.total}]" if self.total else ""
        if line is not None:
            self._say(f"{count} {line}".strip(), style="red" if failed else None)

    def skipped(self, item: str) -> None:
        """`item` was left for later (a cost limit)."""
        with self._lock:
            self._running.pop(item, None)
            self._skipped += 1

    def _say(self, line: str, style: str | None = None) -> None:
        """A line that stays: above the live display, or a timestamped log line."""
        stamp = datetime.now().strftime("%H:%M:%S")
        self.console.print(f"{stamp} {escape(line)}", style=style, highlight=False)

    def __rich__(self) -> Group:
        """The live display, drawn a few times a second."""
        with self._lock:
            header = Text(self._header(), style="bold")
            rows = sorted(self._running.items(), key=lambda item: item[1].started)
            now = time.monotonic()
        if not rows:
            return Group(header)
        table = Table("running", "steps", "last tool", "time", box=None, padding=(0, 2, 0, 0))
        for item, row in rows:
            table.add_row(escape(item), str(row.steps), escape(row.last_tool), clock(now - row.started))
        return Group(header, table)

    def _header(self) -> str:
        """The phase's counts, time, estimate and spending, on one line (under the lock)."""
        finished = self._done + self._failed
        parts = [f"{self.title}: {self._phase}" if self._phase else self.title]
        if self.total:
            counts = f"{self._done} done" + (f", {len(self._running)} running" if self._counts_running else "")
            counts += f", {self._failed} errored" + (f", {self._skipped} not started" if self._skipped else "")
            parts.append(f"{counts} of {self.total}")
        elapsed = time.monotonic() - self._began
        left = self.total - finished - self._skipped
        estimate = clock(elapsed / finished * left) if finished and left > 0 else "-"
        parts.append(f"{clock(elapsed)} elapsed, ETA {estimate}")
        spent = self._spent
        for row in self._running.values():
            spent = spent + row.usage
        if spent.input_tokens or spent.output_tokens:
            read = spent.input_tokens + spent.cache_read_tokens + spent.cache_write_tokens
            parts.append(f"${spent.cost_usd:.4f}, {tokens(read)} in / {tokens(spent.output_tokens)} out tokens")
        return " | ".join(parts)
