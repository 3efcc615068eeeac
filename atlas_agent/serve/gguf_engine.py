"""The llama.cpp engine for `atlas serve`: a GGUF model on the CPU (the bundled SmolLM2, or any file).

A thin adapter: the model, its chat template and the tool prompt are the in-process CPU backend's
(models/local.py, models/chat_template.py), so a served model sees exactly what an in-process one
does. One stream at a time: llama.cpp on the CPU has one KV cache.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

from atlas_agent.models.base import Message, ModelError, ToolCall, ToolSpec
from atlas_agent.models.chat_template import chat_turns, render_prompt
from atlas_agent.models.local import STOP, LoadedModel, bundled_gguf, load_engine
from atlas_agent.serve.engine import Finish


class GGUFEngine:
    max_concurrency = 1

    def __init__(self, loaded: LoadedModel, model_name: str) -> None:
        self.loaded = loaded
        self.model_name = model_name
        self.context_window = loaded.n_ctx

    def count_tokens(self, text: str) -> int:
        return len(self.loaded.tokenize(text))

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        turns = chat_turns([_message(m) for m in messages], [_tool(t) for t in tools or []])
        return render_prompt(
            self.loaded.template, turns, bos_token=self.loaded.bos_token, eos_token=self.loaded.eos_token
        )

    def generate(
        self, prompt: str, *, max_tokens: int, temperature: float | None, stop: list[str]
    ) -> Generator[str, None, Finish]:
        tokens = self.loaded.tokenize(prompt)
        produced, reason = 0, "stop"
        with self.loaded.lock:
            self.loaded.owner = None  # the served conversation is not one of the in-process ones
            stream = self.loaded.llm.create_completion(
                prompt=tokens,
                max_tokens=max_tokens,
                temperature=temperature or 0.0,
                stop=[*stop, *STOP],
                stream=True,
            )
            try:
                for chunk in stream:
                    choice = chunk["choices"][0]
                    if choice.get("text"):
                        produced += 1
                        yield choice["text"]
                    if choice.get("finish_reason"):
                        reason = "length" if choice["finish_reason"] == "length" else "stop"
            finally:
                stream.close()
        return Finish(reason=reason, completion_tokens=produced)  # type: ignore[arg-type]


def _message(raw: dict[str, Any]) -> Message:
    calls = [
        ToolCall(id=c.get("id", ""), name=c["function"]["name"], arguments=_arguments(c["function"].get("arguments")))
        for c in raw.get("tool_calls") or []
    ]
    return Message(
        role=raw["role"], content=raw.get("content") or "", tool_calls=calls, tool_call_id=raw.get("tool_call_id")
    )


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        decoded = json.loads(value or "{}")
        return decoded if isinstance(decoded, dict) else {}
    return dict(value or {})


def _tool(raw: dict[str, Any]) -> ToolSpec:
    function = raw.get("function", raw)
    return ToolSpec(
        name=function["name"], description=function.get("description", ""), parameters=function.get("parameters", {})
    )


def open_engine(spec: str) -> GGUFEngine:
    """`local:NAME` (a bundled model) or `gguf:PATH` → a loaded engine named as clients will ask for it."""
    kind, _, rest = spec.partition(":")
    if kind not in ("local", "gguf") or not rest:
        raise ModelError(f"cannot serve {spec!r}: use local:smollm2 or gguf:PATH (EXL2 directories need the GPU build)")
    path = bundled_gguf(rest) if kind == "local" else Path(rest).expanduser()
    name = rest if kind == "local" else path.stem
    return GGUFEngine(load_engine(path), name)
