"""Chat completions for one engine: a request becomes a prompt and a job for the scheduler; its
output becomes one OpenAI reply, or a stream of server-sent events.

With tools offered, a streamed reply is held back until the generation ends: whether the text is a
call is only known then, and a stream must assemble to exactly the non-streamed reply. The content
and the calls then arrive in one delta each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing

from fastapi import Request
from fastapi.responses import JSONResponse, Response

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


class ChatService:
    def __init__(self, engine: Engine, scheduler: Scheduler, metrics: Metrics, model_name: str) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.metrics = metrics
        self.model_name = model_name

    async def request(self, request: Request) -> ChatRequest:
        """The validated request body; ApiError for anything a client got wrong."""
        self.metrics.requests += 1
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "the request body is not JSON") from None
        chat = parse_request(body)
        if chat.model != self.model_name:
            raise ApiError(404, f"The model `{chat.model}` does not exist.", code="model_not_found")
        return chat

    async def prepare(self, chat: ChatRequest) -> Job:
        messages = chat.prompt_messages()

        def render() -> tuple[str, int]:
            prompt = self.engine.render_prompt(messages, chat.wire_tools())
            return prompt, self.engine.count_tokens(prompt)

        try:
            # templating and tokenizing a long conversation takes a while: off the event loop
            prompt, prompt_tokens = await asyncio.to_thread(render)
        except ValueError as exc:
            raise ApiError(400, f"the chat template cannot render these messages: {exc}") from None
        wanted = chat.max_completion_tokens or chat.max_tokens
        window = self.engine.context_window
        room = window - prompt_tokens
        if room <= 0:
            raise context_exceeded(window, prompt_tokens, wanted or 0)
        # like llama.cpp, not vLLM: a reply that would outgrow the window is cut ("length"), not refused
        return Job(prompt, prompt_tokens, min(wanted or room, room), chat.temperature, chat.stop_strings())

    async def reply(self, chat: ChatRequest, job: Job, request: Request) -> Response:
        """The whole completion as one JSON reply; 499 when the client left first."""
        result = await self._complete(job, request)
        if result is None:
            self.metrics.errors[CLIENT_CLOSED] += 1
            return Response(status_code=CLIENT_CLOSED)
        text, finish = result
        reply = make_reply(text, finish, chat.tool_names() if chat.tools_offered else None)
        return JSONResponse(Envelope(self.model_name).completion(reply, usage(job.prompt_tokens, finish)))

    async def events(self, job: Job, chat: ChatRequest) -> AsyncGenerator[str, None]:
        """The completion as server-sent events; an engine failure after the first chunk is an event."""
        envelope = Envelope(self.model_name)
        yield sse(envelope.chunk({"role": "assistant", "content": ""}))
        held: list[str] = []  # with tools offered, the text waits for the end (it may be a call)
        finish: Finish | None = None
        try:
            # closing `events` must close the generation too, not leave it to the garbage collector
            async with aclosing(self.scheduler.stream(job)) as items:
                async for item in items:
                    if isinstance(item, Finish):
                        finish = item
                    elif chat.tools_offered:
                        held.append(item)
                    else:
                        yield sse(envelope.chunk({"content": item}))
            if finish is None:
                raise EngineFailure("the generation ended without a finish")
        except EngineFailure as exc:
            # the status line went out with the first chunk: the error can only be an event now
            self.metrics.errors[500] += 1
            yield sse(ApiError(500, str(exc), "server_error").payload())
            yield sse("[DONE]")
            return
        reason: str = finish.reason
        if chat.tools_offered:
            reply = make_reply("".join(held), finish, chat.tool_names())
            if reply.content:
                yield sse(envelope.chunk({"content": reply.content}))
            if reply.tool_calls:
                yield sse(envelope.chunk({"tool_calls": tool_call_deltas(reply.tool_calls)}))
            reason = reply.finish_reason
        yield sse(envelope.chunk({}, reason))
        if chat.stream_options is not None and chat.stream_options.include_usage:
            yield sse(envelope.usage_chunk(usage(job.prompt_tokens, finish)))
        yield sse("[DONE]")

    async def _generate(self, job: Job) -> tuple[str, Finish]:
        pieces: list[str] = []
        async with aclosing(self.scheduler.stream(job)) as items:
            async for item in items:
                if isinstance(item, Finish):
                    return "".join(pieces), item
                pieces.append(item)
        raise EngineFailure("the generation ended without a finish")

    async def _complete(self, job: Job, request: Request) -> tuple[str, Finish] | None:
        """The whole completion, or None when the client left first (the generation is then stopped)."""
        task = asyncio.create_task(self._generate(job))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
                if done:
                    return task.result()
                if await request.is_disconnected():
                    return None
        finally:
            task.cancel()
