import pytest

from semverkit import InvalidVersion, Range, Version, max_satisfying, satisfies


def test_primitive_comparators():
    assert satisfies("1.2.3", ">=1.2.3")
    assert not satisfies("1.2.3", ">1.2.3")
    assert satisfies("1.2.3", "=1.2.3")
    assert satisfies("1.2.3", "1.2.3")
    assert satisfies("1.2.2", "<1.2.3 >=1.0.0")


def test_or_sets():
    assert satisfies("3.1.0", ">=1.2.0 <2.0.0 || >=3.0.0")
    assert not satisfies("2.0.0", ">=1.2.0 <2.0.0 || >=3.0.0")


def test_space_after_operator():
    assert satisfies("1.5.0", ">= 1.2.0 < 2.0.0")


def test_x_ranges():
    assert str(Range("1.2.x")) == ">=1.2.0 <1.3.0"
    assert str(Range("1")) == ">=1.0.0 <2.0.0"
    assert satisfies("7.3.1", "*")
    assert satisfies("7.3.1", "")


def test_partial_versions_with_operators():
    assert str(Range(">1.2")) == ">=1.3.0"
    assert str(Range("<=1.2")) == "<1.3.0"
    assert str(Range("<1.2")) == "<1.2.0"


def test_tilde():
    assert str(Range("~1.2.3")) == ">=1.2.3 <1.3.0"
    assert str(Range("~1.2")) == ">=1.2.0 <1.3.0"
    assert str(Range("~1")) == ">=1.0.0 <2.0.0"
    assert str(Range("~0.2.3")) == ">=0.2.3 <0.3.0"


def test_caret():
    assert str(Range("^1.2.3")) == ">=1.2.3 <2.0.0"
    assert str(Range("^1.2")) == ">=1.2.0 <2.0.0"
    assert satisfies("1.9.9", "^1.2.3")
    assert not satisfies("2.0.0", "^1.2.3")


def test_caret_zero_major():
    assert str(Range("^0.2.3")) == ">=0.2.3 <0.3.0"
    assert not satisfies("0.3.0", "^0.2.3")


def test_caret_zero_partials():
    assert str(Range("^0.0")) == ">=0.0.0 <0.1.0"
    assert str(Range("^0.0.x")) == ">=0.0.0 <0.1.0"
    assert str(Range("^0.x")) == ">=0.0.0 <1.0.0"


def test_hyphen_range():
    assert str(Range("1.2.3 - 2.3.4")) == ">=1.2.3 <=2.3.4"
    assert str(Range("1.2 - 2.3")) == ">=1.2.0 <2.4.0"
    assert satisfies("2.3.4", "1.2.3 - 2.3.4")


def test_prereleases_are_excluded_by_default():
    assert not satisfies("1.5.0-beta", ">=1.0.0")
    assert not satisfies("2.0.0-rc.1", "^1.0.0")
    assert satisfies("1.5.0-beta", ">=1.0.0", include_prerelease=True)


def test_prereleases_are_opt_in_per_version():
    # a range lets a prerelease in only when one of its comparators names a
    # prerelease of that same major.minor.patch: asking for >1.2.3-alpha.3
    # opts in to the prereleases of 1.2.3, not to those of every later version
    assert satisfies("1.2.3-alpha.7", ">1.2.3-alpha.3")
    assert satisfies("1.2.3-beta", ">1.2.3-alpha.3")
    assert satisfies("1.2.3-beta.4", "^1.2.3-beta.2")
    assert not satisfies("1.2.4-alpha", ">=1.2.3")


def test_max_satisfying():
    versions = ["1.2.3", "1.2.10", "1.3.0", "2.0.0"]
    assert max_satisfying(versions, "~1.2") == Version(1, 2, 10)
    assert max_satisfying(versions, ">=3") is None


def test_invalid_range():
    with pytest.raises(InvalidVersion):
        Range(">=banana")
