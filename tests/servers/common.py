"""What the API stand-ins share: the background server, the request handler, recording and scripts.

Each server keeps its own protocol (paths, validation, replies, error shapes, usage); this holds the
plumbing around it: a `ThreadingHTTPServer` on 127.0.0.1 from a daemon thread, JSON in and out,
every request recorded (and optionally logged as JSON lines), and the process entry point used by
the end-to-end tests (`--script FILE --port-file PATH [--requests-log FILE]`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Self

import yaml

CHARS_PER_TOKEN = 4


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


def load_script(path: Path) -> list[dict[str, Any]]:
    """A list of entries, or a mapping with a `turns` list (YAML, or JSON: `.json` files load fast,
    which replies of megabytes need)."""
    text = path.read_text()
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return list(raw["turns"] if isinstance(raw, dict) else raw)


def tokens(chars: int) -> int:
    return max(1, chars // CHARS_PER_TOKEN)


class ServedError(Exception, ABC):
    """An error reply: its status, extra headers, and the protocol's JSON body (`payload()`)."""

    status: int
    headers: dict[str, str]

    @abstractmethod
    def payload(self) -> dict[str, Any]:
        """The error body in the protocol's shape."""


class RequestHandler(BaseHTTPRequestHandler):
    """JSON over HTTP/1.1 for a `BackgroundServer` (`app`): `POST` bodies go to `app.handle`."""

    app: BackgroundServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_error(self.app.bad_request("body is not JSON"))
            return
        try:
            reply, delay_s = self.app.handle(self.path, headers, body)
        except ServedError as error:
            self._send_error(error)
            return
        time.sleep(delay_s)
        self._send(200, reply)

    def _send_error(self, error: ServedError) -> None:
        self._send(error.status, error.payload(), error.headers)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in {**self.app.reply_headers(), **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout) before a delayed reply was ready

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests`, not the access log."""


class BackgroundServer(ABC):
    """Serves on 127.0.0.1 (a free port) from a background thread; a context manager.

    It plays a script, one entry per request in order; a subclass supplies the protocol: `check`,
    `reply`, `entry_error` and `bad_request` (and any `reply_headers`).
    """

    handler_class: ClassVar[type[RequestHandler]] = RequestHandler

    def __init__(self, script: list[dict[str, Any]] | None = None, requests_log: Path | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[Recorded] = []
        self.requests_log = requests_log
        self.played = 0
        self.outage_errors = 0  # requests answered by an `outage:` entry
        self._outage_ends: float | None = None
        self._ids = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> Self:
        """Serve on `port` (0: a free one; a given one lets a test bring a server back where it was)."""
        handler = type("Handler", (self.handler_class,), {"app": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        """Keep a request in `requests`, and append it to the requests log if there is one."""
        self.requests.append(Recorded(path, headers, body))
        if self.requests_log is not None:
            with self.requests_log.open("a") as log:
                log.write(json.dumps({"path": path, "headers": headers, "body": body}) + "\n")

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """The reply to one request and how long to hold it back; raises a ServedError for error replies.

        Every request is recorded; one that `check` rejects gets its error without using up an entry.
        """
        with self._lock:
            self.record(path, headers, body)
            self.check(path, headers, body)
            entry = self._next_entry()
            if "error" in entry:
                raise self.entry_error(entry["error"])
            return self.reply(entry, body), float(entry.get("delay_s", 0))

    def _next_entry(self) -> dict[str, Any]:
        """The entry that answers this request. An `outage:` entry answers every request with its error
        for `seconds` from the first request it answers, then gives way to the entry after it."""
        while True:
            if self.played >= len(self.script):
                raise self.bad_request(f"test server script exhausted after {self.played} entries")
            entry = self.script[self.played]
            if "outage" not in entry:
                self.played += 1
                return entry
            if self._outage_ends is None:
                self._outage_ends = time.monotonic() + float(entry["outage"]["seconds"])
            if time.monotonic() < self._outage_ends:
                self.outage_errors += 1
                raise self.entry_error(entry["outage"])
            self.played, self._outage_ends = self.played + 1, None

    @abstractmethod
    def check(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        """Raise the error the real API would give this request, if any."""

    @abstractmethod
    def reply(self, entry: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The reply a script entry (not an error one) makes to a request."""

    @abstractmethod
    def entry_error(self, spec: dict[str, Any]) -> ServedError:
        """The error a script entry's `error:` mapping stands for."""

    @abstractmethod
    def bad_request(self, message: str) -> ServedError:
        """A 400 in the protocol's shape (a body that is not JSON, a script that has run out)."""

    def reply_headers(self) -> dict[str, str]:
        """Headers sent with every reply, before any of the reply's own."""
        return {}


def serve_from_command_line(
    description: str | None,
    factory: Callable[[argparse.Namespace, list[dict[str, Any]]], BackgroundServer],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    leave_with_parent: bool = False,
) -> None:
    """A server as a process: parse the options, serve the script, write the port, run until signalled.

    `factory` builds the server from the parsed options and the loaded script; `add_arguments` adds a
    server's own options. With `leave_with_parent`, the process also exits when its parent does.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", type=Path, required=True, help="YAML/JSON script of replies and errors")
    parser.add_argument("--port-file", type=Path, required=True, help="where to write the chosen port")
    parser.add_argument("--requests-log", type=Path, help="append every request (headers, body) as JSON lines")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with factory(args, load_script(args.script)) as server:
        # written whole via rename, so a poller never reads a half-written port
        partial = args.port_file.with_suffix(".partial")
        partial.write_text(str(server.port))
        partial.replace(args.port_file)
        if not leave_with_parent:
            stop.wait()
            return
        parent = os.getppid()
        # a test that dies without stopping us orphans this process: leave with it
        while not stop.wait(0.5) and os.getppid() == parent:
            pass
