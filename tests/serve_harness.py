"""`atlas serve`'s app under uvicorn on a free loopback port, for tests that talk to it over real HTTP."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any

import httpx2
import uvicorn

from atlas_agent.models.engine import Engine
from atlas_agent.models.openai_client import OpenAIProvider
from atlas_agent.models.options import ModelOptions
from atlas_agent.models.retry import RetryPolicy
from atlas_agent.serve.app import build_app

MODEL = "scripted-coder"


class Server:
    """The real app under uvicorn on a free loopback port, in a background thread."""

    def __init__(self, engine: Engine, model: str = MODEL) -> None:
        self.engine = engine
        self.model = model
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(build_app(engine, model), log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def client(self, timeout_s: float = 30, max_output_tokens: int = 4096) -> OpenAIProvider:
        options = ModelOptions(
            timeout_s=timeout_s, max_output_tokens=max_output_tokens, retry=RetryPolicy(max_attempts=1)
        )
        return OpenAIProvider(f"{self.url}/v1", self.model, options)

    def metrics(self) -> dict[str, float]:
        text = httpx2.get(f"{self.url}/metrics", timeout=5).text
        return {m[1]: float(m[2]) for m in re.finditer(r"^(atlas_serve_\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}

    def post(self, body: dict[str, Any]) -> httpx2.Response:
        return httpx2.post(f"{self.url}/v1/chat/completions", json={"model": self.model, **body}, timeout=30)
