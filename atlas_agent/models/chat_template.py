"""Prompts for models that are given raw text, not a chat API: the conversation rendered with the
model's own chat template, tools described the way Qwen2.5 / Hermes models are trained to read them.

Many small chat models (SmolLM2, TinyLlama, plain ChatML fine-tunes) have no tool role and no tool
markup in their templates. So the conversation is first reduced to system / user / assistant turns
that every template renders: the tool schemas are appended to the system prompt as a `# Tools`
block with `<tools>` JSON, assistant calls are written back as `<tool_call>{json}</tool_call>`, and
tool results go back in a user turn as `<tool_response>` blocks, as Qwen2.5's template does. The
model's replies are then read by the shared text tool-call parser. Everything here is pure.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from atlas_agent.errors import ModelError
from atlas_agent.vocabulary import Message, ToolSpec

# Plain ChatML, for GGUF files without a `tokenizer.chat_template` (no invented default system line).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    'within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
    '"arguments": <args-json-object>}\n</tool_call>'
)


class ChatTemplateError(ModelError):
    """The model's chat template cannot render the conversation (a syntax error, or it refused a turn)."""


def tools_block(tools: list[ToolSpec]) -> str:
    """The tool schemas as Qwen2.5's template writes them into its system prompt."""
    lines = [
        json.dumps(
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            },
            ensure_ascii=False,
        )
        for t in tools
    ]
    return TOOLS_INTRO + "".join(f"\n{line}" for line in lines) + TOOLS_OUTRO


def tool_call_text(name: str, arguments: dict[str, Any]) -> str:
    call = f'{{"name": {json.dumps(name)}, "arguments": {json.dumps(arguments, ensure_ascii=False)}}}'
    return f"<tool_call>\n{call}\n</tool_call>"


def chat_turns(messages: list[Message], tools: list[ToolSpec]) -> list[dict[str, str]]:
    """The conversation as system / user / assistant turns, tools and tool traffic written as text.

    Consecutive turns of one role are merged (tool results and a nudge after them become one user
    turn): ChatML does not mind, and templates that insist on alternating roles (Llama 2, Mistral)
    then render too.
    """
    turns: list[dict[str, str]] = []
    previous_tool = False
    for message in messages:
        role, content = message.role, message.content
        if role == "assistant" and message.tool_calls:
            calls = [tool_call_text(call.name, call.arguments) for call in message.tool_calls]
            content = "\n".join([content.strip(), *calls] if content.strip() else calls)
        elif role == "tool":
            role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
        if turns and turns[-1]["role"] == role:
            # results of one step sit on adjacent lines, as in Qwen2.5's template; other text gets a gap
            separator = "\n" if previous_tool and message.role == "tool" else "\n\n"
            turns[-1]["content"] += separator + content
        else:
            turns.append({"role": role, "content": content})
        previous_tool = message.role == "tool"
    if tools:
        block = tools_block(tools)
        if turns and turns[0]["role"] == "system":
            turns[0]["content"] = f"{turns[0]['content'].rstrip()}\n\n{block}"
        else:
            turns.insert(0, {"role": "system", "content": block})
    return turns


def _raise(message: str) -> NoReturn:
    raise TemplateError(message)


def _tojson(value: Any, indent: int | None = None) -> str:
    # as Hugging Face renders it: plain JSON, no HTML escaping of < > & '
    return json.dumps(value, ensure_ascii=False, indent=indent)


@functools.lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    # the environment Hugging Face and llama.cpp give chat templates (templates rely on its whitespace rules)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)  # Llama 3.x templates date the prompt
    env.filters["tojson"] = _tojson
    return env.from_string(template)


def render_prompt(
    template: str,
    turns: list[dict[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text for `turns`, ending with the opening of the assistant's reply."""
    try:
        return str(
            _compile(template).render(
                messages=turns, bos_token=bos_token, eos_token=eos_token, add_generation_prompt=add_generation_prompt
            )
        )
    except TemplateError as exc:
        raise ChatTemplateError(f"the model's chat template cannot render the conversation: {exc}") from exc


@dataclass(frozen=True)
class ChatFormat:
    """A model's chat template with the special tokens it refers to."""

    template: str
    bos_token: str = ""
    eos_token: str = ""

    def render(self, messages: list[Message], tools: list[ToolSpec]) -> str:
        """The prompt for a conversation, tools written as text (see `chat_turns`)."""
        turns = chat_turns(messages, tools)
        return render_prompt(self.template, turns, bos_token=self.bos_token, eos_token=self.eos_token)
