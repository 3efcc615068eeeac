"""`atlas serve`: an OpenAI-compatible HTTP server in front of one local engine.

Endpoints: `POST /v1/chat/completions` (streaming or not), `GET /v1/models`, `GET /metrics`
(Prometheus text), `GET /health`. Tool calls the model writes as text are parsed here with Atlas's
shared parser and returned as native `tool_calls`; a call that cannot be read is returned as text,
so the client's parser turns it into a format error the model is shown.

With tools offered, a streamed reply is held back until the generation ends: whether the text is a
call is only known then, and a stream must assemble to exactly the non-streamed reply. The content
and the calls then arrive in one delta each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from atlas_agent.models.engine import Engine, Finish
from atlas_agent.serve.metrics import Metrics
from atlas_agent.serve.protocol import (
    ApiError,
    ChatRequest,
    Envelope,
    context_exceeded,
    make_reply,
    parse_request,
    sse,
    tool_call_deltas,
    usage,
)
from atlas_agent.serve.scheduler import EngineFailure, Job, Scheduler

# how often a waiting non-streamed request checks that its client is still there: an agent whose
# call timed out retries, and the abandoned generation must not hold the engine meanwhile
DISCONNECT_POLL_S = 0.25
CLIENT_CLOSED = 499  # nginx's status for a request the client abandoned; only ever seen in /metrics


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
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        scheduler.shutdown()

    app = FastAPI(title="atlas serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

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

    async def prepare(chat: ChatRequest) -> Job:
        messages = chat.prompt_messages()

        def render() -> tuple[str, int]:
            prompt = engine.render_prompt(messages, chat.wire_tools())
            return prompt, engine.count_tokens(prompt)

        try:
            # templating and tokenizing a long conversation takes a while: off the event loop
            prompt, prompt_tokens = await asyncio.to_thread(render)
        except ValueError as exc:
            raise ApiError(400, f"the chat template cannot render these messages: {exc}") from None
        wanted = chat.max_completion_tokens or chat.max_tokens
        room = engine.context_window - prompt_tokens
        if room <= 0:
            raise context_exceeded(engine.context_window, prompt_tokens, wanted or 0)
        # like llama.cpp, not vLLM: a reply that would outgrow the window is cut ("length"), not refused
        return Job(prompt, prompt_tokens, min(wanted or room, room), chat.temperature, chat.stop_strings())

    async def generate(job: Job) -> tuple[str, Finish]:
        pieces: list[str] = []
        async with aclosing(scheduler.stream(job)) as items:
            async for item in items:
                if isinstance(item, Finish):
                    return "".join(pieces), item
                pieces.append(item)
        raise EngineFailure("the generation ended without a finish")

    async def complete(job: Job, request: Request) -> tuple[str, Finish] | None:
        """The whole completion, or None when the client left first (the generation is then stopped)."""
        task = asyncio.create_task(generate(job))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
                if done:
                    return task.result()
                if await request.is_disconnected():
                    return None
        finally:
            task.cancel()

    async def events(job: Job, chat: ChatRequest, envelope: Envelope) -> AsyncGenerator[str, None]:
        tool_names = chat.tool_names() if chat.tools_offered else None
        yield sse(envelope.chunk({"role": "assistant", "content": ""}))
        pieces: list[str] = []
        finish: Finish | None = None
        try:
            # closing `events` must close the generation too, not leave it to the garbage collector
            async with aclosing(scheduler.stream(job)) as items:
                async for item in items:
                    if isinstance(item, Finish):
                        finish = item
                    elif tool_names is None:
                        yield sse(envelope.chunk({"content": item}))
                    else:
                        pieces.append(item)
            if finish is None:
                raise EngineFailure("the generation ended without a finish")
        except EngineFailure as exc:
            # the status line went out with the first chunk: the error can only be an event now
            metrics.errors[500] += 1
            yield sse(ApiError(500, str(exc), "server_error").payload())
            yield sse("[DONE]")
            return
        reason: str = finish.reason
        if tool_names is not None:
            reply = make_reply("".join(pieces), finish, tool_names)
            if reply.content:
                yield sse(envelope.chunk({"content": reply.content}))
            if reply.tool_calls:
                yield sse(envelope.chunk({"tool_calls": tool_call_deltas(reply.tool_calls)}))
            reason = reply.finish_reason
        yield sse(envelope.chunk({}, reason))
        if chat.stream_options is not None and chat.stream_options.include_usage:
            yield sse(envelope.usage_chunk(usage(job.prompt_tokens, finish)))
        yield sse("[DONE]")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        metrics.requests += 1
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "the request body is not JSON") from None
        chat = parse_request(body)
        if chat.model != model_name:
            raise ApiError(404, f"The model `{chat.model}` does not exist.", code="model_not_found")
        job = await prepare(chat)
        envelope = Envelope(model_name)
        if chat.stream:
            return EventStream(events(job, chat, envelope))
        result = await complete(job, request)
        if result is None:
            metrics.errors[CLIENT_CLOSED] += 1
            return Response(status_code=CLIENT_CLOSED)
        text, finish = result
        reply = make_reply(text, finish, chat.tool_names() if chat.tools_offered else None)
        return JSONResponse(envelope.completion(reply, usage(job.prompt_tokens, finish)))

    return app


def serve(engine: Engine, host: str, port: int, model_name: str) -> None:
    """Serve `engine` until interrupted (Ctrl-C / SIGTERM finish the requests in flight first)."""
    uvicorn.run(build_app(engine, model_name), host=host, port=port, log_level="info")
