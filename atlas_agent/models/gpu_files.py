"""What the GPU runtimes (exl2.py, exl3.py) read from model directories before they load anything: the
chat template, which library a directory's weights are for, the VRAM plan, and whether a draft model
can draft for a model. Pure file reading, no torch: the CPU tests exercise all of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from atlas_agent.errors import ModelError
from atlas_agent.modelfiles.vram import PAGE_SIZE, ModelShape, VramPlan, choose_plan, load_model_shape, plan_request
from atlas_agent.models.chat_template import CHATML_TEMPLATE, ChatFormat
from atlas_agent.models.options import Speculation

MAX_CONTEXT = 32768  # per conversation, unless the plan, the model or the caller allows less


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file; {} when the file is missing, one ModelError line when it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str:
    """tokenizer_config.json writes special tokens as strings or as AddedToken dicts."""
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return value if isinstance(value, str) else ""


def model_chat_format(model_dir: Path) -> ChatFormat:
    """The chat template a Hugging Face model directory ships: `chat_template.jinja` (how transformers
    saves it now), `chat_template.json`, or `tokenizer_config.json`'s `chat_template` (a string, or a list
    of named templates of which "default" is used). ChatML when there is none, as Qwen2.5 uses."""
    config = read_json(model_dir / "tokenizer_config.json")
    template: Any = None
    if (model_dir / "chat_template.jinja").is_file():
        template = (model_dir / "chat_template.jinja").read_text(encoding="utf-8")
    else:
        template = read_json(model_dir / "chat_template.json").get("chat_template") or config.get("chat_template")
    if isinstance(template, list):
        named = {str(t.get("name")): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return ChatFormat(
        template=template if isinstance(template, str) and template.strip() else CHATML_TEMPLATE,
        bos_token=_token_text(config.get("bos_token")),
        eos_token=_token_text(config.get("eos_token")),
    )


def directory_kind(model_dir: Path) -> Literal["exl2", "exl3"]:
    """The backend of a bare model directory: EXL3 when config.json's quantization_config says so
    (ExLlamaV3's converter writes `quant_method: exl3`), EXL2 otherwise, unquantized ones included."""
    quantization = read_json(model_dir / "config.json").get("quantization_config")
    method = quantization.get("quant_method") if isinstance(quantization, dict) else None
    return "exl3" if method == "exl3" else "exl2"


def _planned_shape(model_dir: Path) -> ModelShape:
    """The model's shape as the planner sizes it: plain FP16 safetensors count at 16 bits."""
    shape = load_model_shape(model_dir)
    return shape if shape.bpw is not None else shape.model_copy(update={"bpw": 16.0, "head_bits": 16})


def plan_cache(
    model_dir: Path,
    vram: int,
    agents: int,
    paged: bool,
    context: int | None = None,
    cache: str | None = None,
    draft: Path | None = None,
) -> VramPlan:
    """The VRAM plan for this GPU: unpaged generators hold one conversation at a time, so they plan
    one; a draft model's weights and cache (as long as the main one) come on top."""
    shape = _planned_shape(model_dir)
    request = plan_request(
        vram=vram,
        agents=agents if paged else 1,
        bpw=shape.bpw,
        head_bits=shape.head_bits,
        cache_type=cache,
        min_context=context,
        draft=None if draft is None else _planned_shape(draft),
    )
    return choose_plan(shape, request)


def fit_context(planned: int, asked: int | None, model_max: int | None = None) -> int:
    """Tokens per conversation: the plan's, within what was asked (MAX_CONTEXT by default) and what the
    model was trained for, in whole cache pages."""
    tokens = min(planned, MAX_CONTEXT if asked is None else asked, model_max or planned)
    return tokens - tokens % PAGE_SIZE


def draft_directory(model_dir: Path, speculation: Speculation, draft_model: Path | None) -> Path | None:
    """The draft model's directory when `speculation` is draft, checked before anything loads: it
    holds a model, and its tokenizer has the model's vocabulary (the generator hands the drafted
    token ids to the model unchanged). One ModelError line otherwise."""
    if speculation != "draft":
        if draft_model is not None:
            raise ModelError(f"a draft model ({draft_model}) needs speculation=draft, not {speculation}")
        return None
    if draft_model is None:
        raise ModelError("speculation=draft needs a draft model directory (draft_model=DIR, --draft-model DIR)")
    draft = draft_model.expanduser().resolve()
    if not (draft / "config.json").is_file():
        raise ModelError(f"draft model {draft} is no model directory (no config.json)")
    ours, theirs = _vocabulary(model_dir), _vocabulary(draft)
    if ours is not None and theirs is not None and ours != theirs:
        raise ModelError(
            f"draft model {draft.name} has another vocabulary than {model_dir.name}: a draft model must share "
            "the model's tokenizer (e.g. a smaller model of the same family)"
        )
    return draft


def _vocabulary(model_dir: Path) -> dict[str, Any] | None:
    """tokenizer.json's token → id table; None where the directory has none to compare."""
    model = read_json(model_dir / "tokenizer.json").get("model")
    vocab = model.get("vocab") if isinstance(model, dict) else None
    return vocab if isinstance(vocab, dict) and vocab else None
