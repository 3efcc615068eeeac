"""`atlas serve`: an OpenAI-compatible HTTP server in front of one local engine.

Endpoints: `POST /v1/chat/completions` (streaming or not), `GET /v1/models`, `GET /metrics`
(Prometheus text), `GET /health`. Tool calls the model writes as text are parsed here with Atlas's
shared parser and returned as native `tool_calls`; a call that cannot be read is returned as text,
so the client's parser turns it into a format error the model is shown.

The chat completions themselves are `chat.ChatService`'s.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from atlas_agent.models.engine import Engine
from atlas_agent.serve.chat import ChatService
from atlas_agent.serve.metrics import Metrics
from atlas_agent.serve.protocol import (
    ApiError,
)
from atlas_agent.serve.scheduler import EngineFailure, Scheduler


class EventStream(StreamingResponse):
    """Server-sent events whose generator is closed however the response ends. Starlette abandons
    it when the client disconnects, and the generation would run on until the garbage collector
    found it, holding the engine."""

    def __init__(self, events: AsyncGenerator[str, None]) -> None:
        super().__init__(events, media_type="text/event-stream")
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()


def build_app(engine: Engine, model_name: str) -> FastAPI:
    """The server's ASGI app; `model_name` is the id clients put in `model` (and `/v1/models` lists)."""
    metrics = Metrics(slots=engine.max_concurrency, model_name=model_name)
    scheduler = Scheduler(engine, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        scheduler.shutdown()

    app = FastAPI(title="atlas serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    _add_error_handlers(app, metrics)
    _add_info_routes(app, engine, metrics, model_name)
    chats = ChatService(engine, scheduler, metrics, model_name)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        chat = await chats.request(request)
        job = await chats.prepare(chat)
        if chat.stream:
            return EventStream(chats.events(job, chat))
        return await chats.reply(chat, job, request)

    return app


def _add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Every error in the OpenAI error shape, counted by status in /metrics."""

    def failed(error: ApiError) -> JSONResponse:
        metrics.errors[error.status] += 1
        return JSONResponse(error.payload(), status_code=error.status)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return failed(exc)

    @app.exception_handler(EngineFailure)
    async def engine_failure(_: Request, exc: EngineFailure) -> JSONResponse:
        return failed(ApiError(500, str(exc), "server_error"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # unknown paths and methods, in the error shape every other reply uses
        payload = ApiError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}").payload()
        return JSONResponse(payload, status_code=exc.status_code)


def _add_info_routes(app: FastAPI, engine: Engine, metrics: Metrics, model_name: str) -> None:
    started = int(time.time())

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        model = {
            "id": model_name,
            "object": "model",
            "created": started,
            "owned_by": "atlas",
            "max_model_len": engine.context_window,
        }
        return {"object": "list", "data": [model]}

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")


def serve(engine: Engine, host: str, port: int, model_name: str) -> None:
    """Serve `engine` until interrupted (Ctrl-C / SIGTERM finish the requests in flight first)."""
    uvicorn.run(build_app(engine, model_name), host=host, port=port, log_level="info")
