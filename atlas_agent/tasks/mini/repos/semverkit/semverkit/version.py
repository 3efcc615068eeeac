"""Semantic Versioning 2.0.0 versions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

_IDENTIFIER = r"[0-9A-Za-z-]+"
_VERSION = re.compile(
    rf"""
    ^v?
    (?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)
    (?:-(?P<prerelease>{_IDENTIFIER}(?:\.{_IDENTIFIER})*))?
    (?:\+(?P<build>{_IDENTIFIER}(?:\.{_IDENTIFIER})*))?
    $
    """,
    re.VERBOSE,
)


class InvalidVersion(ValueError):
    """Text that is not a semantic version."""


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A semantic version. Build metadata is kept but ignored when comparing."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if min(self.major, self.minor, self.patch) < 0:
            raise InvalidVersion("version numbers must not be negative")
        for identifier in self.prerelease:
            if identifier.isdigit() and len(identifier) > 1 and identifier.startswith("0"):
                raise InvalidVersion(f"numeric identifier with a leading zero: {identifier!r}")

    @classmethod
    def parse(cls, text: str | Version) -> Version:
        """Parse "1.2.3", "1.2.3-rc.1+build.5" or "v1.2.3"."""
        if isinstance(text, Version):
            return text
        match = _VERSION.match(text.strip())
        if match is None:
            raise InvalidVersion(f"not a semantic version: {text!r}")
        prerelease = match["prerelease"]
        build = match["build"]
        return cls(
            int(match["major"]),
            int(match["minor"]),
            int(match["patch"]),
            tuple(prerelease.split(".")) if prerelease else (),
            tuple(build.split(".")) if build else (),
        )

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def release(self) -> Version:
        """This version without prerelease or build: 1.2.3 for 1.2.3-rc.1."""
        return Version(self.major, self.minor, self.patch)

    def _key(self) -> tuple:
        # a release sorts after every prerelease of the same version
        if not self.prerelease:
            return (self.major, self.minor, self.patch, 1, ())
        return (self.major, self.minor, self.patch, 0, self.prerelease)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def bump(self, part: str) -> Version:
        """The next version: part is "major", "minor", "patch" or "prerelease".

        Bumping a prerelease to a release drops the prerelease: the next patch
        of 1.2.3-rc.1 is 1.2.3. Bumping "prerelease" increments the last
        numeric identifier, or starts a new one: 1.2.3-rc.1 -> 1.2.3-rc.2,
        1.2.3 -> 1.2.4-0.
        """
        if part == "major":
            if self.prerelease and self.minor == 0 and self.patch == 0:
                return self.release
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            if self.prerelease and self.patch == 0:
                return self.release
            return Version(self.major, self.minor + 1, 0)
        if part == "patch":
            if self.prerelease:
                return self.release
            return Version(self.major, self.minor, self.patch + 1)
        if part == "prerelease":
            if not self.prerelease:
                return Version(self.major, self.minor, self.patch + 1, ("0",))
            identifiers = list(self.prerelease)
            for index in range(len(identifiers) - 1, -1, -1):
                if identifiers[index].isdigit():
                    identifiers[index] = str(int(identifiers[index]) + 1)
                    break
            else:
                identifiers.append("0")
            return Version(self.major, self.minor, self.patch, tuple(identifiers))
        raise ValueError(f"unknown part {part!r}")
