"""A replayed agent conversation for decode benchmarks: real file views, searches and edits on atlas-mini.

Each turn of the recorded session is a tool call and its real output: `view` prints numbered lines
of a repository file, `search` greps the repository for a name from that file, and `edit` replaces
lines the agent has just viewed. A benchmark asks the model for the assistant's next message at
every turn. Before an edit the prompt already holds the start of the recorded call, up to the text
to replace (`reply_prefix`): the model continues mid-edit, where an agent repeats lines from its
context, the turns prompt lookup is for. Other turns start from the bare assistant header.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout

from atlas_agent.vocabulary import Message, ToolCall, ToolSpec  # noqa: E402

# atlas-mini's repositories, by path: a GPU machine runs this without the task loaders' dependencies
REPOS = ROOT / "atlas_agent" / "tasks" / "mini" / "repos"
FILES = (
    "tally/tally/money.py",
    "semverkit/semverkit/version.py",
    "hoard/hoard/backends/memory.py",
    "textkit/textkit/wrap.py",
    "tally/tally/exchange.py",
)
SENTINEL = "\u2063ATLAS-SENTINEL"


def _spec(name: str, description: str, **properties: str) -> ToolSpec:
    schema = {key: {"type": "string", "description": text} for key, text in properties.items()}
    return ToolSpec(
        name=name,
        description=description,
        parameters={"type": "object", "properties": schema, "required": list(properties)},
    )


TOOLS = [
    _spec("view", "Show numbered lines of a file.", path="file to show", lines="range, e.g. 1-40"),
    _spec("search", "Grep the repository for a regular expression.", pattern="regular expression"),
    _spec("edit", "Replace text in a file.", path="file", old_str="exact text to replace", new_str="replacement"),
]


@dataclass(frozen=True)
class AgentTurn:
    """One point where the model speaks: the history, and the start of its reply already written."""

    number: int
    kind: str  # the recorded next call: view, search or edit
    messages: list[Message]
    reply_prefix_args: dict[str, str] | None  # for edits: the call's arguments up to old_str's text


def _existing(files: tuple[str, ...]) -> list[Path]:
    found = [REPOS / name for name in files if (REPOS / name).is_file()]
    return found or sorted(REPOS.rglob("*.py"))[:5]


def _view(path: Path, first: int = 1, last: int = 40) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()[first - 1 : last]
    return "\n".join(f"{first + i:6}\t{line}" for i, line in enumerate(lines))


def _search(pattern: str) -> str:
    hits = []
    for file in sorted(REPOS.rglob("*.py")):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(pattern, line):
                hits.append(f"{file.relative_to(REPOS)}:{number}:{line}")
    return "\n".join(hits[:40]) or "(no matches)"


def _edited_block(path: Path) -> str:
    """Six lines of the file's first function body: what an agent's edit would repeat."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("def ")), 0)
    return "\n".join(lines[start : start + 6])


def _first_name(path: Path) -> str:
    match = re.search(r"^\s*(?:def|class) (\w+)", path.read_text(encoding="utf-8"), re.MULTILINE)
    return match.group(1) if match else path.stem


def agent_turns(turns: int = 30) -> list[AgentTurn]:
    """The conversation at each of `turns` points, cycling view → search → edit over repository files."""
    files = _existing(FILES)
    messages = [
        Message(role="system", content="You are a software engineering agent. Use the tools to fix the issue."),
        Message(role="user", content="Rounding in allocate() loses a cent when splitting amounts. Fix it."),
    ]
    result = []
    for number in range(1, turns + 1):
        path = files[(number - 1) // 3 % len(files)]
        relative = str(path.relative_to(REPOS))
        kind = ("view", "search", "edit")[(number - 1) % 3]
        if kind == "view":
            arguments = {"path": relative, "lines": "1-40"}
            output = _view(path)
        elif kind == "search":
            arguments = {"pattern": _first_name(path)}
            output = _search(arguments["pattern"])
        else:
            block = _edited_block(path)
            arguments = {"path": relative, "old_str": block, "new_str": block.replace("    ", "    # fixed\n    ", 1)}
            output = f"Edited {relative}: 6 lines replaced."
        prefix = {"path": relative, "old_str": SENTINEL} if kind == "edit" else None
        result.append(AgentTurn(number, kind, list(messages), prefix))
        call = ToolCall(id=f"call_{number}", name=kind, arguments=arguments)
        messages += [
            Message(role="assistant", content="", tool_calls=[call]),
            Message(role="tool", content=output, tool_call_id=call.id),
        ]
    return result


def turn_prompt(render: object, turn: AgentTurn) -> str:
    """The prompt text for `turn` through an engine's `render_prompt(messages, tools)` (OpenAI dicts)."""
    history = [m.model_dump(exclude_none=True) for m in turn.messages]
    for entry in history:
        for call in entry.get("tool_calls", []):  # OpenAI shape: function name and JSON arguments
            call["type"] = "function"
            call["function"] = {"name": call.pop("name"), "arguments": json.dumps(call.pop("arguments"))}
    tools = [{"type": "function", "function": t.model_dump()} for t in TOOLS]
    base: str = render(history, tools)  # type: ignore[operator]
    if turn.reply_prefix_args is None:
        return base
    call = {"id": "call_next", "type": "function", "function": {"name": "edit", "arguments": ""}}
    call["function"]["arguments"] = json.dumps(turn.reply_prefix_args)  # type: ignore[index]
    written: str = render([*history, {"role": "assistant", "content": "", "tool_calls": [call]}], tools)  # type: ignore[operator]
    cut = written.find(SENTINEL)
    # the header of the reply must be the one the bare prompt ends with; otherwise give no prefix
    return written[:cut] if cut > 0 and written.startswith(base.rstrip()[: len(base) // 2]) else base
