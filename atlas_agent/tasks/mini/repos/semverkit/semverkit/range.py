"""Version ranges in npm's syntax: ``>=1.2.0 <2.0.0 || ^3.1``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from semverkit.version import InvalidVersion, Version

_OPERATORS: dict[str, Callable[[Version, Version], bool]] = {
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

# a possibly partial version: "1", "1.2", "1.2.x", "1.2.3-rc.1"
_PARTIAL = re.compile(
    r"""
    ^v?
    (?P<major>\d+|[xX*])
    (?:\.(?P<minor>\d+|[xX*])
      (?:\.(?P<patch>\d+|[xX*])
        (?:-(?P<prerelease>[0-9A-Za-z.-]+))?
      )?
    )?
    (?:\+[0-9A-Za-z.-]+)?
    $
    """,
    re.VERBOSE,
)
_COMPARATOR = re.compile(r"^(?P<op>[<>]=?|=|\^|~)?\s*(?P<version>\S+)$")
_HYPHEN = re.compile(r"^\s*(?P<low>\S+)\s+-\s+(?P<high>\S+)\s*$")


@dataclass(frozen=True)
class Comparator:
    """One condition on a version, such as ``>=1.2.0``."""

    op: str
    version: Version

    def test(self, version: Version) -> bool:
        return _OPERATORS[self.op](version, self.version)

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


@dataclass(frozen=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    prerelease: tuple[str, ...]

    def floor(self) -> Version:
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.prerelease)


def _number(text: str | None) -> int | None:
    if text is None or text in ("x", "X", "*"):
        return None
    return int(text)


def _parse_partial(text: str) -> _Partial:
    match = _PARTIAL.match(text)
    if match is None:
        raise InvalidVersion(f"not a version: {text!r}")
    major, minor, patch = (_number(match[part]) for part in ("major", "minor", "patch"))
    # once a part is a wildcard, everything after it is too: 1.x.3 means 1.x
    if major is None:
        minor = patch = None
    elif minor is None:
        patch = None
    prerelease = match["prerelease"]
    pre = tuple(prerelease.split(".")) if prerelease and patch is not None else ()
    return _Partial(major, minor, patch, pre)


def _upper(partial: _Partial) -> Version | None:
    """The first version past an X-range: 1.3.0 for 1.2.x, 2.0.0 for 1.x."""
    if partial.major is None:
        return None
    if partial.minor is None:
        return Version(partial.major + 1, 0, 0)
    return Version(partial.major, partial.minor + 1, 0)


def _caret(partial: _Partial) -> list[Comparator]:
    """^1.2.3 allows changes that do not modify the left-most non-zero part."""
    lower = partial.floor()
    if partial.major is None:
        return [Comparator(">=", Version(0, 0, 0))]
    if partial.major != 0 or partial.minor is None:
        upper = Version(partial.major + 1, 0, 0)
    elif partial.minor is not None or partial.patch is None:
        upper = Version(0, partial.minor + 1, 0)
    else:
        upper = Version(0, 0, partial.patch + 1)
    return [Comparator(">=", lower), Comparator("<", upper)]


def _tilde(partial: _Partial) -> list[Comparator]:
    """~1.2.3 allows patch-level changes; ~1 allows minor-level changes."""
    if partial.major is None:
        return [Comparator(">=", Version(0, 0, 0))]
    lower = partial.floor()
    if partial.minor is None:
        upper = Version(partial.major + 1, 0, 0)
    else:
        upper = Version(partial.major, partial.minor + 1, 0)
    return [Comparator(">=", lower), Comparator("<", upper)]


def _primitive(op: str, partial: _Partial) -> list[Comparator]:
    """A comparison with a possibly partial version: >1.2 means >=1.3.0."""
    if partial.patch is not None:
        return [Comparator(op, partial.floor())]
    upper = _upper(partial)
    if upper is None:  # * or x: anything, unless the operator rules out everything
        return [Comparator("<", Version(0, 0, 0))] if op in ("<", ">") else []
    floor = partial.floor()
    if op == "=":
        return [Comparator(">=", floor), Comparator("<", upper)]
    if op == ">":
        return [Comparator(">=", upper)]
    if op == "<=":
        return [Comparator("<", upper)]
    return [Comparator(op, floor)]  # ">=" and "<"


def _parse_comparator(text: str) -> list[Comparator]:
    match = _COMPARATOR.match(text)
    if match is None:
        raise InvalidVersion(f"not a comparator: {text!r}")
    op = match["op"] or "="
    partial = _parse_partial(match["version"])
    if op == "^":
        return _caret(partial)
    if op == "~":
        return _tilde(partial)
    return _primitive(op, partial)


def _parse_set(text: str) -> tuple[Comparator, ...]:
    hyphen = _HYPHEN.match(text)
    if hyphen:
        low = _parse_partial(hyphen["low"])
        high = _parse_partial(hyphen["high"])
        comparators = [Comparator(">=", low.floor())]
        if high.patch is not None:
            comparators.append(Comparator("<=", high.floor()))
        elif (upper := _upper(high)) is not None:
            comparators.append(Comparator("<", upper))
        return tuple(comparators)
    # "> 1.2.3" is written with a space sometimes; glue operators to their version
    glued = re.sub(r"([<>]=?|=|\^|~)\s+", r"\1", text.strip())
    comparators: list[Comparator] = []
    for token in glued.split():
        comparators.extend(_parse_comparator(token))
    return tuple(comparators)


class Range:
    """A set of versions: comparator sets joined by ``||``, each an AND of comparators."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sets = tuple(_parse_set(part) for part in text.split("||"))

    def __repr__(self) -> str:
        return f"Range({self.text!r})"

    def __str__(self) -> str:
        return " || ".join(" ".join(str(c) for c in s) or "*" for s in self.sets)

    def test(self, version: Version | str, *, include_prerelease: bool = False) -> bool:
        """Whether `version` is in this range.

        A prerelease is only in a range that explicitly asks for prereleases
        (or with `include_prerelease`): people who depend on ``^1.2.0`` do not
        want ``1.5.0-alpha`` pulled in.
        """
        version = Version.parse(version)
        for comparators in self.sets:
            if not all(c.test(version) for c in comparators):
                continue
            if version.prerelease and not include_prerelease:
                if not any(c.version.prerelease for c in comparators):
                    continue
            return True
        return False


def satisfies(version: Version | str, range_: Range | str, *, include_prerelease: bool = False) -> bool:
    """Whether `version` is in `range_`."""
    if not isinstance(range_, Range):
        range_ = Range(range_)
    return range_.test(version, include_prerelease=include_prerelease)


def max_satisfying(
    versions: Iterable[Version | str], range_: Range | str, *, include_prerelease: bool = False
) -> Version | None:
    """The highest of `versions` in `range_`, or None."""
    if not isinstance(range_, Range):
        range_ = Range(range_)
    matching = [
        parsed
        for parsed in map(Version.parse, versions)
        if range_.test(parsed, include_prerelease=include_prerelease)
    ]
    return max(matching, default=None)
