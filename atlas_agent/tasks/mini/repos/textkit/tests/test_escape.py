from textkit import escape_markdown


def test_plain_text_is_unchanged():
    assert escape_markdown("plain text 42") == "plain text 42"


def test_emphasis_and_code():
    assert escape_markdown("*not bold* and `not code`") == r"\*not bold\* and \`not code\`"


def test_links_and_backslashes():
    assert escape_markdown(r"[a](b) c\d") == r"\[a\]\(b\) c\\d"


def test_heading_and_list_markers():
    assert escape_markdown("# 1. item - x") == r"\# 1\. item \- x"
