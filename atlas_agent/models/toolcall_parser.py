"""Tool calls that a model wrote as text, for servers and backends without a tool-call parser.

Open-weight models emit calls in many near-miss shapes: Qwen2.5 / Hermes `<tool_call>{json}</tool_call>`
(Qwen2.5-Coder often `<tools>`, a ```json fence or bare JSON instead), Qwen3-coder's
`<function=NAME><parameter=KEY>value</parameter></function>`, and `<invoke name=...>` blocks. The JSON
inside is frequently a little wrong (single quotes, trailing commas, raw newlines or `\\w` in strings,
a missing or extra closing brace), so decoding is strict first and lenient after. When a call
cannot be read, `error` says exactly what to fix, because the model only learns from what it is
shown.
"""

from __future__ import annotations

import ast
import io
import itertools
import json
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from typing import Any

from atlas_agent.models.base import Turn
from atlas_agent.vocabulary import ToolCall

JSON_SHAPE = 'write {"name": ..., "arguments": {...}}'

_TAG_OPEN = re.compile(r"<(tool_call|tools)>")
_XML_CALL = re.compile(r"<function=([^>\s]+)\s*>|<invoke\s+name\s*=\s*[\"']([^\"']+)[\"']\s*>")
_XML_END = re.compile(r"</(?:function|invoke)>")
_XML_PARAM = re.compile(r"<parameter=([^>\s]+)\s*>|<parameter\s+name\s*=\s*[\"']([^\"']+)[\"']\s*>")
_FENCE = re.compile(r"```[ \t]*([\w-]*)[ \t]*\n(.*?)```", re.DOTALL)
_OUTER_FENCE = re.compile(r"\A\s*```[\w-]*[ \t]*\n?(.*?)\n?\s*```\s*\Z", re.DOTALL)
_LOOKS_LIKE_CALL = re.compile(r"""\s*[\[{].*["'](?:arguments|parameters|function)["']\s*:""", re.DOTALL)
_LINE_START_JSON = re.compile(r"(?m)^[ \t]*[\[{]")
_FIRST_BRACKET = re.compile(r"[\[{]")
_EXTRA_CLOSERS = re.compile(r"\A\s*[}\]]+")
_DECODER = json.JSONDecoder(strict=False)
# closing tags whose opener was dropped (e.g. a server that strips special tokens) and wrappers
_STRAY_MARKUP = re.compile(r"</?(?:tool_call|tools|function_calls)>|</function>|</invoke>")
_EMPTY_FENCE = re.compile(r"```[\w-]*[ \t]*\n?\s*```")
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_BAD_ESCAPE = re.compile(r'(?<!\\)((?:\\\\)*)\\(?![\\"/bfnrtu])')
_LAYOUT_TOKENS = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


@dataclass(frozen=True)
class ParseResult:
    """The calls found, the prose around them, and what went wrong.

    With `error` set, a caller should run none of `calls`: the model meant its calls as a whole,
    and the error tells it what to rewrite.
    """

    calls: list[ToolCall] = field(default_factory=list)
    text: str = ""
    error: str | None = None


class ArgumentsError(ValueError):
    """Tool-call arguments that are not an object, even after lenient decoding."""


@dataclass
class _Block:
    start: int
    end: int
    label: str  # how the error message names the block
    body: str
    xml: bool


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} (line {exc.lineno} column {exc.colno})"


def _literal(node: ast.AST) -> Any:
    """Like ast.literal_eval, but also reading JSON's true/false/null (models mix both styles)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool | type(None)):
        return node.value
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        keys = [key for key in node.keys if key is not None]  # None marks `**spread`, which is no literal
        if len(keys) == len(node.values):
            return {_literal(key): _literal(value) for key, value in zip(keys, node.values, strict=True)}
    raise ValueError(f"not a literal: {type(node).__name__}")


def _python_literal(text: str) -> Any:
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type not in _LAYOUT_TOKENS]
    except (tokenize.TokenError, SyntaxError) as exc:
        raise ValueError(str(exc)) from exc
    # Python joins "a" "b" into "ab": a missing comma in JSON must stay an error, not merge two values
    if any(a.type == b.type == tokenize.STRING for a, b in itertools.pairwise(tokens)):
        raise ValueError("adjacent strings")
    with warnings.catch_warnings():  # `"\w"` in a model's string is a SyntaxWarning, not our problem
        warnings.simplefilter("ignore")
        return _literal(ast.parse(text.strip(), mode="eval").body)


def _close_brackets(text: str) -> str:
    """Append the closers a truncated object is missing; unchanged if a string is left open."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for char in text:
        if quote is None:
            if char in "\"'":
                quote = char
            elif char in "{[":
                stack.append("}" if char == "{" else "]")
            elif stack and char == stack[-1]:
                stack.pop()
        elif escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == quote:
            quote = None
    return text if quote else text.rstrip() + "".join(reversed(stack))


def loads_lenient(text: str) -> Any:
    """JSON, then the usual repairs; raises the strict parser's error when nothing reads."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        repaired = _BAD_ESCAPE.sub(r"\1\\\\", _TRAILING_COMMA.sub(r"\1", text))
        for candidate in dict.fromkeys([text, repaired, _close_brackets(repaired)]):
            try:
                return json.loads(candidate, strict=False)  # strict=False: raw newlines inside strings
            except json.JSONDecodeError:
                pass
            try:
                return _python_literal(candidate)
            except (ValueError, SyntaxError, RecursionError):
                pass
        raise first from None


def decode_arguments(raw: Any) -> dict[str, Any]:
    """Arguments as an object, whether sent as one, as a JSON string, or not at all."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        try:
            raw = loads_lenient(raw)
        except json.JSONDecodeError as exc:
            raise ArgumentsError(f"the arguments are not valid JSON: {_json_error(exc)}") from exc
    if not isinstance(raw, dict):
        raise ArgumentsError(f"the arguments are a {type(raw).__name__}, not an object of named arguments")
    return raw


def _unfence(body: str) -> str:
    match = _OUTER_FENCE.match(body)
    return match.group(1) if match else body


def _decode_json_body(body: str) -> tuple[list[Any], str]:
    """The JSON values in `body` (a list counts as several calls), and the text around them as prose."""
    text = _unfence(body)
    first = _FIRST_BRACKET.search(text)
    if first is None:
        return [], text
    values: list[Any] = []
    pos = first.start()
    while pos < len(text) and text[pos] in "{[":
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            if not values:  # nothing reads as it stands: repair all of it, or raise why it is not JSON
                values, pos = [loads_lenient(text[pos:])], len(text)
            break
        values.append(value)
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
    # one closing brace too many is a common slip, not prose
    rest = _EXTRA_CLOSERS.sub("", text[pos:])
    return [item for value in values for item in _as_list(value)], text[: first.start()] + rest


def _xml_value(raw: str) -> Any:
    """Parameter text as written (one newline of padding each side is layout); JSON objects and lists decoded."""
    value = raw.removeprefix("\n").removesuffix("\n")
    if value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def _decode_xml_body(body: str) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """`<function=NAME>`/`<invoke name=NAME>` elements; unclosed tags end at the next element or the end."""
    calls: list[tuple[str, dict[str, Any]]] = []
    prose: list[str] = []
    pos = 0
    while opener := _XML_CALL.search(body, pos):
        prose.append(body[pos : opener.start()])
        closer = _XML_END.search(body, opener.end())
        following = _XML_CALL.search(body, opener.end())
        stop = min((m.start() for m in (closer, following) if m), default=len(body))
        inner = body[opener.end() : stop]
        pos = closer.end() if closer and closer.start() == stop else stop
        args: dict[str, Any] = {}
        params = list(_XML_PARAM.finditer(inner))
        for i, param in enumerate(params):
            value = inner[param.end() : params[i + 1].start() if i + 1 < len(params) else len(inner)]
            args[param.group(1) or param.group(2)] = _xml_value(value.partition("</parameter>")[0])
        calls.append((opener.group(1) or opener.group(2), args))
    prose.append(body[pos:])
    return calls, "".join(prose)


def _find_blocks(text: str) -> list[_Block]:
    """Call markup in order of position: tags, XML elements, and fences whose JSON looks like a call."""
    fences = [
        _Block(m.start(), m.end(), f"```{m.group(1) or ''} block", m.group(2), xml=False)
        for m in _FENCE.finditer(text)
        # a fence around tags is layout: the tags inside are found on their own
        if not _TAG_OPEN.search(m.group(2))
        and not _XML_CALL.search(m.group(2))
        and (m.group(1).lower() == "tool_call" or _LOOKS_LIKE_CALL.match(m.group(2)))
    ]
    blocks: list[_Block] = []
    pos = 0
    while True:
        candidates: list[_Block] = [fence for fence in fences if fence.start >= pos][:1]
        if tag := _TAG_OPEN.search(text, pos):
            close = text.find(f"</{tag.group(1)}>", tag.end())
            following = _TAG_OPEN.search(text, tag.end())
            if close < 0 or (following and following.start() < close):
                stop = following.start() if following else len(text)
                candidates.append(_Block(tag.start(), stop, f"<{tag.group(1)}> block", text[tag.end() : stop], False))
            else:
                end = close + len(tag.group(1)) + 3
                candidates.append(_Block(tag.start(), end, f"<{tag.group(1)}> block", text[tag.end() : close], False))
        if element := _XML_CALL.search(text, pos):
            closer = _XML_END.search(text, element.end())
            end = closer.end() if closer else len(text)
            candidates.append(
                _Block(element.start(), end, f"<{element.group(0)[1:-1]}> block", text[element.start() : end], True)
            )
        if not candidates:
            return blocks
        block = min(candidates, key=lambda b: b.start)
        block.xml = block.xml or bool(_XML_CALL.match(block.body.lstrip()))
        blocks.append(block)
        pos = block.end


def _bare_json_blocks(text: str) -> list[_Block]:
    """JSON calls with no markup at all, starting a line (how Qwen2.5-Coder often answers)."""
    blocks: list[_Block] = []
    pos = 0
    for match in _LINE_START_JSON.finditer(text):
        start = match.end() - 1
        if start < pos or not _LOOKS_LIKE_CALL.match(text, start):
            continue
        try:
            value, pos = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            # a call that does not parse as it stands: the lenient decoder or its error message takes the rest
            return [*blocks, _Block(start, len(text), "JSON tool call", text[start:], xml=False)]
        # the filter above may have matched keys further on, past this value
        if _LOOKS_LIKE_CALL.match(text, start, pos) and all(isinstance(item, dict) for item in _as_list(value)):
            blocks.append(_Block(start, pos, "JSON tool call", text[start:pos], xml=False))
    return blocks


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _to_call(value: Any, where: str, tool_names: set[str]) -> tuple[str, dict[str, Any]]:
    """`{"name", "arguments"}` (or `"parameters"`, or inside `{"function": ...}`) → (name, arguments)."""
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        value = value["function"]  # the OpenAI wire shape, copied from the prompt
    if not isinstance(value, dict):
        raise ArgumentsError(f"{where} holds a {type(value).__name__}, not a call object; {JSON_SHAPE}")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise ArgumentsError(f'{where} has no "name"; {JSON_SHAPE}')
    _check_name(name, where, tool_names)
    try:
        return name, decode_arguments(next((value[k] for k in ("arguments", "parameters") if k in value), None))
    except ArgumentsError as exc:
        raise ArgumentsError(f"{where} ({name}): {exc}; {JSON_SHAPE}") from exc


def _check_name(name: str, where: str, tool_names: set[str]) -> None:
    if tool_names and name not in tool_names:
        raise ArgumentsError(f"unknown tool {name!r} in {where}; available: {', '.join(sorted(tool_names))}")


def _clean_prose(pieces: list[str]) -> str:
    text = _EMPTY_FENCE.sub("", _STRAY_MARKUP.sub("", "".join(pieces)))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def parse_tool_calls(text: str, tool_names: set[str], *, id_prefix: str = "call_") -> ParseResult:
    """Find the tool calls written in `text`; ids are `{id_prefix}0`, `{id_prefix}1`, … in order."""
    blocks = _find_blocks(text) or _bare_json_blocks(text)
    found: list[tuple[str, dict[str, Any]]] = []
    prose: list[str] = []
    errors: list[str] = []
    pos = 0
    for block in blocks:
        prose.append(text[pos : block.start])
        pos = block.end
        where = f"the {block.label} at character {block.start}"
        try:
            if block.xml:
                elements, rest = _decode_xml_body(block.body)
                for name, _ in elements:
                    _check_name(name, where, tool_names)
                found += elements
            else:
                values, rest = _decode_json_body(block.body)
                if not values:
                    raise ArgumentsError(f"{where} holds no call; {JSON_SHAPE}")
                found += [_to_call(value, where, tool_names) for value in values]
            prose.append(rest)
        except json.JSONDecodeError as exc:
            errors.append(f"{where} is not valid JSON: {_json_error(exc)}; {JSON_SHAPE}")
        except ArgumentsError as exc:
            errors.append(str(exc))
    prose.append(text[pos:])
    calls = [ToolCall(id=f"{id_prefix}{i}", name=name, arguments=args) for i, (name, args) in enumerate(found)]
    return ParseResult(calls=calls, text=_clean_prose(prose), error="\n".join(errors) or None)


_CUT_OFF = {"length": " (the reply was cut off at max_tokens)", "timeout": " (cut off at timeout_s)"}


def read_text_turn(turn: Turn, tool_names: set[str], *, id_prefix: str) -> Turn:
    """Move the calls written in `turn.text` into `turn.tool_calls`, or set `turn.format_error` with
    what the model must fix (mentioning a cut-off reply, the usual cause of a broken call)."""
    if not tool_names or not turn.text:
        return turn
    parsed = parse_tool_calls(turn.text, tool_names, id_prefix=id_prefix)
    if parsed.error:
        turn.format_error = f"No tool call was run: {parsed.error}{_CUT_OFF.get(turn.stop_reason, '')}"
    elif parsed.calls:
        turn.text, turn.tool_calls = parsed.text, parsed.calls
    return turn
