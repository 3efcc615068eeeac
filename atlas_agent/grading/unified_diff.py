"""Split a patch (git or plain unified diff) into files and hunks, and join them back.

Parsing never fails: text that is no diff stays in a preamble or a file's trailer, so
`render(parse(text)) == text` for any input. Lines keep their own line ends (CRLF too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NEW_START = re.compile(r"^(@@ -\S+ \+)\d+")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Hunk:
    header: str  # the "@@ -a,b +c,d @@ ..." line
    lines: tuple[str, ...]  # its body: " ", "-", "+" and "\ No newline" lines
    old_start: int
    old_len: int
    new_start: int
    new_len: int

    def text(self) -> str:
        return self.header + "".join(self.lines)

    def moved_to(self, new_start: int) -> Hunk:
        """The same hunk with its new-side start renumbered (after an earlier hunk was dropped)."""
        header = _NEW_START.sub(lambda m: f"{m.group(1)}{new_start}", self.header, count=1)
        return replace(self, header=header, new_start=new_start)


@dataclass(frozen=True)
class FileDiff:
    header: tuple[str, ...]  # "diff --git", mode, rename, index, binary data, "---", "+++" lines
    hunks: tuple[Hunk, ...]
    trailer: tuple[str, ...]  # lines after the last hunk that belong to no hunk
    old_path: str | None  # None: the file is created
    new_path: str | None  # None: the file is deleted

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path the diff touches (both sides of a rename), without repeats."""
        return tuple(dict.fromkeys(p for p in (self.old_path, self.new_path) if p is not None))

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    def head_text(self) -> str:
        return "".join(self.header)

    def text(self) -> str:
        return self.head_text() + "".join(h.text() for h in self.hunks) + "".join(self.trailer)


@dataclass(frozen=True)
class Patch:
    preamble: tuple[str, ...]
    files: tuple[FileDiff, ...]

    def text(self) -> str:
        return "".join(self.preamble) + "".join(f.text() for f in self.files)


def split_lines(text: str) -> list[str]:
    """Lines with their "\\n" kept; only "\\n" ends a line (form feeds and lone CRs are content)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def parse_patch(text: str) -> Patch:
    lines = split_lines(text)
    i = 0
    while i < len(lines) and not _starts_file(lines, i):
        i += 1
    preamble = tuple(lines[:i])
    files: list[FileDiff] = []
    while i < len(lines):
        diff, i = _parse_file(lines, i)
        files.append(diff)
    return Patch(preamble=preamble, files=tuple(files))


def _starts_file(lines: list[str], i: int) -> bool:
    """A git file diff, or a plain one ("---", "+++", then a hunk header)."""
    if lines[i].startswith("diff --git "):
        return True
    return (
        lines[i].startswith("--- ")
        and i + 2 < len(lines)
        and lines[i + 1].startswith("+++ ")
        and _HUNK_HEADER.match(lines[i + 2]) is not None
    )


def _parse_file(lines: list[str], start: int) -> tuple[FileDiff, int]:
    """One file's diff from `start`; returns it and the index where the next one begins."""
    i = start + 1
    # binary data, modes and renames sit between "diff --git" and the first hunk
    while i < len(lines) and not _HUNK_HEADER.match(lines[i]) and not lines[i].startswith("diff --git "):
        i += 1
    header = lines[start:i]
    hunks: list[Hunk] = []
    while i < len(lines) and (match := _HUNK_HEADER.match(lines[i])):
        old_len = 1 if match.group(2) is None else int(match.group(2))
        new_len = 1 if match.group(4) is None else int(match.group(4))
        end = _hunk_end(lines, i + 1, old_len, new_len)
        hunks.append(
            Hunk(
                header=lines[i],
                lines=tuple(lines[i + 1 : end]),
                old_start=int(match.group(1)),
                old_len=old_len,
                new_start=int(match.group(3)),
                new_len=new_len,
            )
        )
        i = end
    trailer_start = i
    while i < len(lines) and not _starts_file(lines, i):
        i += 1
    old_path, new_path = _paths(header)
    return FileDiff(tuple(header), tuple(hunks), tuple(lines[trailer_start:i]), old_path, new_path), i


def _hunk_end(lines: list[str], i: int, old_left: int, new_left: int) -> int:
    """The index after a hunk body that holds `old_left` old and `new_left` new lines."""
    while i < len(lines) and (old_left > 0 or new_left > 0):
        kind = lines[i][:1]
        if kind in (" ", "\n", "\r"):  # an empty line is context whose space an editor trimmed
            old_left, new_left = old_left - 1, new_left - 1
        elif kind == "-":
            old_left -= 1
        elif kind == "+":
            new_left -= 1
        elif kind != "\\":
            break
        i += 1
    while i < len(lines) and lines[i].startswith("\\"):
        i += 1
    return i


def _paths(header: list[str]) -> tuple[str | None, str | None]:
    old = new = None
    old_seen = new_seen = False
    for line in header:
        text = line.rstrip("\r\n")
        for prefix in ("rename from ", "copy from "):
            if text.startswith(prefix):
                old, old_seen = _unquote(text[len(prefix) :]), True
        for prefix in ("rename to ", "copy to "):
            if text.startswith(prefix):
                new, new_seen = _unquote(text[len(prefix) :]), True
        if text.startswith("--- ") and not old_seen:
            old, old_seen = _side_path(text[4:]), True
        elif text.startswith("+++ ") and not new_seen:
            new, new_seen = _side_path(text[4:]), True
        elif text.startswith(("new file mode", "deleted file mode")):
            old_seen = old_seen or text.startswith("new")
            new_seen = new_seen or text.startswith("deleted")
    if not (old_seen and new_seen) and header and header[0].startswith("diff --git "):
        git_old, git_new = _git_line_paths(header[0].rstrip("\r\n")[len("diff --git ") :])
        old = old if old_seen else git_old
        new = new if new_seen else git_new
    return old, new


def _side_path(field: str) -> str | None:
    name = field.split("\t", 1)[0].rstrip()
    if name == "/dev/null":
        return None
    return _strip_prefix(_unquote(name))


def _git_line_paths(rest: str) -> tuple[str, str]:
    """Paths of "diff --git a/X b/Y" when no other header names them (binary or mode-only diffs)."""
    if rest.startswith('"'):
        first, second = _split_quoted(rest)
        return _strip_prefix(first), _strip_prefix(_unquote(second.strip()))
    # unquoted names may hold spaces: "a/X b/X" splits where both halves agree
    half = len(rest) // 2
    if rest[half : half + 1] == " " and _strip_prefix(rest[:half]) == _strip_prefix(rest[half + 1 :]):
        return _strip_prefix(rest[:half]), _strip_prefix(rest[half + 1 :])
    first, _, second = rest.partition(" b/")
    return _strip_prefix(first), second


def _split_quoted(text: str) -> tuple[str, str]:
    """A leading quoted name, unquoted, and what follows it."""
    i = 1
    while i < len(text) and text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return _unquote(text[: i + 1]), text[i + 1 :]


def _strip_prefix(name: str) -> str:
    return name[2:] if name[:2] in ("a/", "b/") else name


def _unquote(name: str) -> str:
    """Git's C-style quoting ("a/caf\\303\\251.py") back to the path."""
    if not (len(name) >= 2 and name.startswith('"') and name.endswith('"')):
        return name
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        octal = body[i + 1 : i + 4]
        if body[i] == "\\" and len(octal) == 3 and all(c in "01234567" for c in octal):
            out.append(int(octal, 8) & 0xFF)
            i += 4
        elif body[i] == "\\" and i + 1 < len(body):
            out.extend(_ESCAPES.get(body[i + 1], body[i + 1]).encode())
            i += 2
        else:
            out.extend(body[i].encode())
            i += 1
    return out.decode("utf-8", "replace")
