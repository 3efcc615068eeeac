"""Which backend a `--model` spec names. Each backend is a config chosen by its kind (`kind:target`)
that opens its own provider, importing its SDK or engine only then: a new backend is one class and
one union member."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from atlas_agent.errors import ModelError
from atlas_agent.models.base import ModelProvider
from atlas_agent.models.options import CPU_SPECULATION, GPU_SPECULATION, ModelOptions, Speculation

if TYPE_CHECKING:
    from atlas_agent.models.engine import Engine

BUNDLED_REPLAYS = Path(__file__).parent / "replays"


@dataclass(frozen=True)
class EngineSizing:
    """How `atlas serve` sizes an engine: the GPU's KV cache for `agents` conversations of `context`."""

    agents: int = 1
    context: int | None = None
    cache: str | None = None
    speculation: Speculation | None = None  # None: the backend's default (options.py)
    draft_model: str | None = None  # the model directory `speculation: draft` drafts with

    def runtime_settings(self) -> dict[str, Any]:
        """What a GPU runtime is loaded with (exl2.py, exl3.py `load_runtime`)."""
        draft = Path(self.draft_model).expanduser() if self.draft_model else None
        return {
            "agents": self.agents,
            "context": self.context,
            "cache": self.cache,
            "speculation": self.speculation or GPU_SPECULATION,
            "draft_model": draft,
        }


class _Backend(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str  # each backend narrows it to the kinds of spec it serves
    target: str = Field(min_length=1)  # what follows `kind:` in the spec
    # `-M` items this backend starts from; the command's own come after them and win
    option_defaults: ClassVar[tuple[str, ...]] = ()
    speculates: ClassVar[bool] = False  # decodes in this process, so `-M speculation` applies

    def check_speculation(self, speculation: Speculation | None) -> None:
        """One ModelError line for a speculation this backend cannot do (None: its default)."""
        if speculation not in (None, "none") and not self.speculates:
            local = "local:, gguf:, exl2:, exl3:"
            raise ModelError(f"speculation={speculation} applies to in-process models ({local}), not {self.kind}: ones")

    def open_engine(self, sizing: EngineSizing) -> Engine:
        """The engine `atlas serve` puts behind its API; only in-process backends have one."""
        raise ModelError(f"cannot serve '{self.kind}:{self.target}': use {SERVABLE}")

    def address(self) -> str | None:
        """The server address the spec names, if any: only where the model is, not which model it is."""
        return None

    def without_address(self) -> str:
        """The spec less its server address: which model it is, whichever server serves it."""
        return f"{self.kind}:{self.target}"


class ReplayBackend(_Backend):
    """`replay:FILE.yaml`, or `replay:NAME` for a bundled script."""

    kind: Literal["replay"]

    def open(self, options: ModelOptions) -> ModelProvider:
        from atlas_agent.models.replay import ReplayProvider

        bundled = BUNDLED_REPLAYS / f"{self.target}.yaml"
        path = bundled if bundled.is_file() and not Path(self.target).exists() else Path(self.target)
        return ReplayProvider(path, options)


class ClaudeBackend(_Backend):
    """`anthropic:MODEL`, or a bare Claude id (`claude-sonnet-4-5`)."""

    kind: Literal["anthropic"]

    def open(self, options: ModelOptions) -> ModelProvider:
        from atlas_agent.models.claude import ClaudeProvider  # the SDK loads only when a Claude run needs it

        return ClaudeProvider(self.target, options)


class OpenAIBackend(_Backend):
    """`openai:BASE_URL/MODEL`: vLLM, llama.cpp, TabbyAPI, `atlas serve`."""

    kind: Literal["openai"]

    def open(self, options: ModelOptions) -> ModelProvider:
        from atlas_agent.models.openai_client import open_openai

        return open_openai(self.target, options)

    def address(self) -> str:
        from atlas_agent.models.openai_client import split_spec

        return split_spec(self.target)[0]

    def without_address(self) -> str:
        from atlas_agent.models.openai_client import split_spec

        return f"openai:{split_spec(self.target)[1]}"


class GGUFBackend(_Backend):
    """`local:NAME` (a bundled model) or `gguf:PATH`, on the CPU in this process."""

    kind: Literal["local", "gguf"]
    # a tiny CPU model rambles to the token limit: keep replies short unless asked otherwise
    option_defaults = ("max_output_tokens=256",)
    speculates = True

    def open(self, options: ModelOptions) -> ModelProvider:
        from atlas_agent.models.gguf import open_local  # llama.cpp loads only when a CPU run needs it

        return open_local(self.kind, self.target, options)

    def open_engine(self, sizing: EngineSizing) -> Engine:
        """llama.cpp on the CPU: one stream, the window the file was trained for."""
        from atlas_agent.modelfiles.bundled import bundled_gguf
        from atlas_agent.models.gguf import load_engine
        from atlas_agent.models.gguf_engine import GGUFEngine

        local = self.kind == "local"
        path = bundled_gguf(self.target) if local else Path(self.target).expanduser()
        speculation = sizing.speculation or CPU_SPECULATION
        return GGUFEngine(load_engine(path), self.target if local else path.stem, speculation)


class Exl2Backend(_Backend):
    """`exl2:MODEL_DIR`, on the GPU in this process with ExLlamaV2."""

    kind: Literal["exl2"]
    speculates = True

    def open(self, options: ModelOptions) -> ModelProvider:
        from atlas_agent.models.exl2 import Exl2Provider  # ExLlamaV2 and torch load only for GPU runs

        return Exl2Provider(Path(self.target).expanduser(), options)

    def open_engine(self, sizing: EngineSizing) -> Engine:
        """ExLlamaV2 on the GPU, its cache planned for `sizing` (see `atlas plan-vram`)."""
        from atlas_agent.models.exl2 import load_runtime

        return load_runtime(Path(self.target).expanduser(), **sizing.runtime_settings())


class Exl3Backend(_Backend):
    """`exl3:MODEL_DIR`, on the GPU in this process with ExLlamaV3."""

    kind: Literal["exl3"]
    speculates = True

    def open(self, options: ModelOptions) -> ModelProvider:
        from atlas_agent.models.exl3 import Exl3Provider  # ExLlamaV3 and torch load only for GPU runs

        return Exl3Provider(Path(self.target).expanduser(), options)

    def open_engine(self, sizing: EngineSizing) -> Engine:
        """ExLlamaV3 on the GPU, its cache planned for `sizing` (see `atlas plan-vram`)."""
        from atlas_agent.models.exl3 import load_runtime

        return load_runtime(Path(self.target).expanduser(), **sizing.runtime_settings())


BackendConfig = Annotated[
    ReplayBackend | ClaudeBackend | OpenAIBackend | GGUFBackend | Exl2Backend | Exl3Backend,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[BackendConfig] = TypeAdapter(BackendConfig)
SERVABLE = "local:smollm2, gguf:PATH, exl2:MODEL_DIR or exl3:MODEL_DIR"
USAGE = (
    "use a Claude id (claude-sonnet-4-5), openai:BASE_URL/MODEL, local:smollm2, gguf:PATH, exl2:MODEL_DIR, "
    "exl3:MODEL_DIR, or replay:FILE.yaml"
)


def backend_for(spec: str) -> BackendConfig:
    """The backend a spec names; one ModelError line when it names none."""
    kind, _, target = spec.partition(":")
    if spec.startswith("claude-"):
        kind, target = "anthropic", spec
    try:
        return _ADAPTER.validate_python({"kind": kind, "target": target})
    except ValueError:
        raise ModelError(f"unknown model {spec!r}: {USAGE}") from None
