"""The llama.cpp engine for `atlas serve`: a GGUF model on the CPU (the bundled SmolLM2, or any file).

A thin adapter: the model, its chat template and the tool prompt are the in-process CPU backend's
(models/gguf.py, models/chat_template.py), so a served model sees exactly what an in-process one
does. One stream at a time: llama.cpp on the CPU has one KV cache. Its threads are paced by the
machine's load, as in-process (cpu_threads.py). It speculates as in-process too (prompt lookup unless
`--speculation none`); each request's `Finish` says what speculation did, for `/metrics`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from atlas_agent.models.chat_template import ChatFormat
from atlas_agent.models.engine import Finish, atlas_messages, atlas_tools
from atlas_agent.models.gguf import STOP, LoadedModel, cpu_speculation
from atlas_agent.models.options import CPU_SPECULATION, Speculation


class GGUFEngine:
    max_concurrency = 1

    def __init__(self, loaded: LoadedModel, model_name: str, speculation: Speculation = CPU_SPECULATION) -> None:
        self.loaded = loaded
        self.model_name = model_name
        self.speculation = cpu_speculation(speculation)
        self.context_window = loaded.n_ctx
        self.chat = ChatFormat(loaded.template, loaded.bos_token, loaded.eos_token)

    def count_tokens(self, text: str) -> int:
        return len(self.loaded.tokenize(text))

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return self.chat.render(atlas_messages(messages), atlas_tools(tools))

    def generate(
        self, prompt: str, *, max_tokens: int, temperature: float | None, stop: list[str]
    ) -> Generator[str, None, Finish]:
        tokens = self.loaded.tokenize(prompt)
        produced, reason = 0, "stop"
        with self.loaded.lock:
            self.loaded.owner = None  # the served conversation is not one of the in-process ones
            self.loaded.pace()
            draft = self.loaded.draft_for(self.speculation)
            stream = self.loaded.llm.create_completion(
                prompt=tokens,
                max_tokens=max_tokens,
                temperature=temperature or 0.0,
                stop=[*stop, *STOP],
                stream=True,
            )
            try:
                for chunk in stream:
                    self.loaded.pace()  # between tokens: the machine's load changes while a reply is written
                    choice = chunk["choices"][0]
                    if choice.get("text"):
                        produced += 1
                        yield choice["text"]
                    if choice.get("finish_reason"):
                        reason = "length" if choice["finish_reason"] == "length" else "stop"
            finally:
                stream.close()
                if draft is not None:
                    self.loaded.speculation.add(draft.stats)
        stats = draft.stats if draft is not None else None
        return Finish(reason=reason, completion_tokens=produced, speculation=stats)  # type: ignore[arg-type]
