import pytest

from textkit import render_table


def test_simple_table():
    table = render_table([["apples", 3], ["kiwis", 12]], headers=["fruit", "qty"])
    assert table == (
        "| fruit  | qty |\n"
        "| ------ | --- |\n"
        "| apples | 3   |\n"
        "| kiwis  | 12  |"
    )


def test_alignment():
    table = render_table(
        [["a", 1, "x"], ["bbbbb", 10, "yyy"]],
        headers=["name", "n", "mid"],
        align=["left", "right", "center"],
    )
    assert table == (
        "| name  |   n | mid |\n"
        "| :---- | --: | :-: |\n"
        "| a     |   1 |  x  |\n"
        "| bbbbb |  10 | yyy |"
    )


def test_none_becomes_empty_cell():
    assert render_table([[None, "b"]], headers=["x", "y"]).splitlines()[-1] == "|     | b   |"


def test_inline_markdown_is_kept():
    table = render_table([["**bold**", "`code`"]], headers=["style", "example"])
    assert table.splitlines()[-1] == "| **bold** | `code`  |"


def test_no_rows():
    assert render_table([], headers=["only"]) == "| only |\n| ---- |"


def test_row_of_wrong_length():
    with pytest.raises(ValueError, match="row 2"):
        render_table([["a", "b"], ["c"]], headers=["x", "y"])


def test_unknown_alignment():
    with pytest.raises(ValueError):
        render_table([], headers=["x"], align=["middle"])
