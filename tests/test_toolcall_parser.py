"""The text tool-call parser against the shapes open-weight models (Qwen2.5-Coder above all) really emit."""

from __future__ import annotations

from typing import Any

import pytest

from atlas_agent.models.toolcall_parser import ArgumentsError, decode_arguments, parse_tool_calls

TOOLS = {"bash", "edit", "search", "submit", "view"}
LS = {"command": "ls"}
Call = tuple[str, dict[str, Any]]

# (model output, expected calls, expected prose)
PARSED: list[Any] = [
    pytest.param(
        '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>', [("bash", LS)], "", id="hermes"
    ),
    pytest.param(
        'Let me list the files.\n\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>',
        [("bash", LS)],
        "Let me list the files.",
        id="leading-prose",
    ),
    pytest.param(
        '<tool_call>\n{"name": "view", "arguments": {"path": "a.py"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>',
        [("view", {"path": "a.py"}), ("bash", LS)],
        "",
        id="two-tags",
    ),
    pytest.param(
        '<tool_call>\n{"name": "view", "arguments": {"path": "a.py"}}\n'
        '{"name": "bash", "arguments": {"command": "ls"}}',
        [("view", {"path": "a.py"}), ("bash", LS)],
        "",
        id="two-objects-one-unclosed-tag",
    ),
    pytest.param('<tool_call>\n{"name": "submit", "arguments": {}}', [("submit", {})], "", id="missing-close-tag"),
    pytest.param(
        '<tool_call>{"name": "bash", "arguments": {"command": "pytest"}}\nThis runs the tests.',
        [("bash", {"command": "pytest"})],
        "This runs the tests.",
        id="unclosed-tag-trailing-prose",
    ),
    pytest.param(
        '<tool_call>{"name": "bash", "arguments": "{\\"command\\": \\"ls\\"}"}</tool_call>',
        [("bash", LS)],
        "",
        id="arguments-as-json-string",
    ),
    pytest.param(
        '<tool_call>{"name": "view", "parameters": {"path": "a.py"}}</tool_call>',
        [("view", {"path": "a.py"})],
        "",
        id="parameters-key",
    ),
    pytest.param(
        '<tool_call>{"type": "function", "function": {"name": "bash", "arguments": "{\\"command\\": \\"ls\\"}"}}'
        "</tool_call>",
        [("bash", LS)],
        "",
        id="function-wrapper",
    ),
    pytest.param(
        "<tool_call>{'name': 'search', 'arguments': {'pattern': 'def convert', 'regex': true}}</tool_call>",
        [("search", {"pattern": "def convert", "regex": True})],
        "",
        id="single-quotes-json-literals",
    ),
    pytest.param(
        "<tool_call>{'name': 'view', 'arguments': {'path': 'a.py', 'start_line': 3, 'numbered': False,}}</tool_call>",
        [("view", {"path": "a.py", "start_line": 3, "numbered": False})],
        "",
        id="python-dict",
    ),
    pytest.param(
        '<tool_call>{"name": "bash", "arguments": {"command": "ls",},}</tool_call>',
        [("bash", LS)],
        "",
        id="trailing-commas",
    ),
    pytest.param(
        '<tool_call>\n```json\n{"name": "bash", "arguments": {"command": "ls"}}\n```\n</tool_call>',
        [("bash", LS)],
        "",
        id="fence-inside-tags",
    ),
    pytest.param(
        'Running it:\n```\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>\n```',
        [("bash", LS)],
        "Running it:",
        id="tags-inside-fence",
    ),
    pytest.param(
        'I will search for it.\n```json\n{"name": "search", "arguments": {"pattern": "def convert"}}\n```',
        [("search", {"pattern": "def convert"})],
        "I will search for it.",
        id="json-fence",
    ),
    pytest.param(
        '```tool_call\n{"name": "submit"}\n```\nDone.',
        [("submit", {})],
        "Done.",
        id="tool-call-fence-no-arguments",
    ),
    pytest.param('{"name": "bash", "arguments": {"command": "ls"}}', [("bash", LS)], "", id="bare-json"),
    pytest.param(
        'The tests live in tests/.\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>',
        [("bash", LS)],
        "The tests live in tests/.",
        id="bare-json-stray-close-tag",
    ),
    pytest.param(
        '<tools>\n[{"name": "view", "arguments": {"path": "a.py"}}, {"name": "bash", "arguments": {"command": "ls"}}]'
        "\n</tools>",
        [("view", {"path": "a.py"}), ("bash", LS)],
        "",
        id="qwen25-coder-tools-array",
    ),
    pytest.param(
        "<tool_call>\n<function=edit>\n<parameter=command>\nstr_replace\n</parameter>\n<parameter=path>\na.py\n"
        "</parameter>\n<parameter=old_str>\nx = 1\n\n</parameter>\n</function>\n</tool_call>",
        [("edit", {"command": "str_replace", "path": "a.py", "old_str": "x = 1\n"})],
        "",
        id="qwen3-coder-xml",
    ),
    pytest.param(
        "Listing.\n<function=bash>\n<parameter=command>\nls -la",
        [("bash", {"command": "ls -la"})],
        "Listing.",
        id="xml-unclosed",
    ),
    pytest.param(
        '<function_calls>\n<invoke name="view">\n<parameter name="path">a.py</parameter>\n'
        '<parameter name="lines">[1, 20]</parameter>\n</invoke>\n</function_calls>',
        [("view", {"path": "a.py", "lines": [1, 20]})],
        "",
        id="invoke-xml",
    ),
    pytest.param(
        '<tool_call>\n{"name": "edit", "arguments": {"command": "create", "path": "a.py", '
        '"file_text": "x = 1\ny = 2\n"}}\n</tool_call>',
        [("edit", {"command": "create", "path": "a.py", "file_text": "x = 1\ny = 2\n"})],
        "",
        id="raw-newlines-in-string",
    ),
    pytest.param(
        '<tool_call>{"name": "search", "arguments": {"pattern": "def \\w+\\(self"}}</tool_call>',
        [("search", {"pattern": "def \\w+\\(self"})],
        "",
        id="regex-backslashes",
    ),
    pytest.param(
        '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}\n</tool_call>',
        [("bash", LS)],
        "",
        id="missing-closing-brace",
    ),
    pytest.param(
        '<tool_call>{"name": "bash", "arguments": {"command": "ls"}}}</tool_call>', [("bash", LS)], "", id="extra-brace"
    ),
    pytest.param("I think the bug is in convert().", [], "I think the bug is in convert().", id="prose-only"),
    pytest.param(
        'Settings:\n```json\n{"debug": true}\n```',
        [],
        'Settings:\n```json\n{"debug": true}\n```',
        id="json-fence-not-a-call",
    ),
]


@pytest.mark.parametrize(("output", "calls", "prose"), PARSED)
def test_parses(output: str, calls: list[Call], prose: str) -> None:
    result = parse_tool_calls(output, TOOLS)
    assert result.error is None
    assert [(c.name, c.arguments) for c in result.calls] == calls
    assert [c.id for c in result.calls] == [f"call_{i}" for i in range(len(calls))]
    assert result.text == prose


# (model output, what the error must say, calls still read)
FAILED: list[Any] = [
    pytest.param(
        '<tool_call>\n{"name": "edit", "arguments": {"path": "a.py" "old_str": "x"}}\n</tool_call>',
        "the <tool_call> block at character 0 is not valid JSON: Expecting ',' delimiter (line 1 column 47); "
        'write {"name": ..., "arguments": {...}}',
        0,
        id="missing-comma",
    ),
    pytest.param(
        '<tool_call>{"name": "grep", "arguments": {"pattern": "x"}}</tool_call>',
        "unknown tool 'grep' in the <tool_call> block at character 0; available: bash, edit, search, submit, view",
        0,
        id="unknown-tool",
    ),
    pytest.param(
        "<function=grep>\n<parameter=pattern>x</parameter>\n</function>",
        "unknown tool 'grep' in the <function=grep> block at character 0",
        0,
        id="unknown-tool-xml",
    ),
    pytest.param('<tool_call>{"arguments": {"command": "ls"}}</tool_call>', 'has no "name"', 0, id="no-name"),
    pytest.param(
        '<tool_call>{"name": "bash", "arguments": "{\\"command\\": ls}"}</tool_call>',
        "the <tool_call> block at character 0 (bash): the arguments are not valid JSON: Expecting value",
        0,
        id="arguments-string-malformed",
    ),
    pytest.param(
        '<tool_call>{"name": "bash", "arguments": ["ls"]}</tool_call>',
        "the arguments are a list, not an object of named arguments",
        0,
        id="arguments-list",
    ),
    pytest.param("<tool_call></tool_call>", "the <tool_call> block at character 0 holds no call", 0, id="empty-tag"),
    pytest.param("<tool_call>I will now view the file.</tool_call>", "holds no call", 0, id="prose-in-tag"),
    pytest.param(
        '<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>\n'
        '<tool_call>{"name": "view", "arguments": {"path": "a.py" "start_line": 1}}</tool_call>',
        "the <tool_call> block at character 72 is not valid JSON",
        1,
        id="second-of-two-broken",
    ),
    pytest.param(
        '{"name": "bash", "arguments": {"command": "ls" "-la"}}',
        "the JSON tool call at character 0 is not valid JSON",
        0,
        id="bare-json-broken",
    ),
]


@pytest.mark.parametrize(("output", "message", "read"), FAILED)
def test_reports_what_to_fix(output: str, message: str, read: int) -> None:
    result = parse_tool_calls(output, TOOLS)
    assert result.error is not None and message in result.error
    assert len(result.calls) == read


def test_ids_take_a_prefix() -> None:
    result = parse_tool_calls('<tool_call>{"name": "submit"}</tool_call>', TOOLS, id_prefix="text_3_")
    assert [call.id for call in result.calls] == ["text_3_0"]


def test_any_name_when_no_tools_are_known() -> None:
    assert parse_tool_calls('<tool_call>{"name": "grep"}</tool_call>', set()).calls[0].name == "grep"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, {}), ("", {}), ({"a": 1}, {"a": 1}), ('{"a": 1}', {"a": 1}), ("{'a': 1,}", {"a": 1})],
)
def test_decode_arguments(raw: Any, expected: dict[str, Any]) -> None:
    assert decode_arguments(raw) == expected


def test_decode_arguments_refuses_non_objects() -> None:
    with pytest.raises(ArgumentsError, match="not valid JSON: Expecting"):
        decode_arguments('{"command": ls}')
    with pytest.raises(ArgumentsError, match="a int, not an object"):
        decode_arguments("3")
