import pytest

from semverkit import InvalidVersion, Version


def v(text):
    return Version.parse(text)


def test_parse_full():
    version = v("1.2.3-rc.1+build.42")
    assert (version.major, version.minor, version.patch) == (1, 2, 3)
    assert version.prerelease == ("rc", "1")
    assert version.build == ("build", "42")
    assert str(version) == "1.2.3-rc.1+build.42"


def test_parse_leading_v():
    assert v("v2.0.0") == Version(2, 0, 0)


@pytest.mark.parametrize("text", ["1.2", "01.2.3", "1.2.3-", "1.2.3-alpha..1", "1.2.3-01", "a.b.c"])
def test_parse_rejects(text):
    with pytest.raises(InvalidVersion):
        v(text)


def test_core_numbers_compare_numerically():
    assert v("1.10.0") > v("1.9.0")
    assert v("2.0.0") > v("1.99.99")


def test_release_sorts_after_its_prereleases():
    assert v("1.0.0-rc.1") < v("1.0.0")
    assert v("1.0.0") < v("1.0.1-alpha")


def test_alphanumeric_identifiers_compare_lexically():
    assert v("1.0.0-alpha") < v("1.0.0-beta") < v("1.0.0-rc")
    assert v("1.0.0-Beta") < v("1.0.0-alpha")  # ASCII order


def test_more_identifiers_sort_later():
    assert v("1.0.0-alpha") < v("1.0.0-alpha.1")


def test_numeric_identifiers_sort_before_alphanumeric():
    assert v("1.0.0-alpha.1") < v("1.0.0-alpha.beta")
    assert v("1.0.0-1") < v("1.0.0-alpha")


def test_build_metadata_is_ignored_in_comparisons():
    assert v("1.0.0+a") == v("1.0.0+b")
    assert hash(v("1.0.0+a")) == hash(v("1.0.0"))


def test_bump():
    assert v("1.2.3").bump("major") == v("2.0.0")
    assert v("1.2.3").bump("minor") == v("1.3.0")
    assert v("1.2.3").bump("patch") == v("1.2.4")
    assert v("1.2.3-rc.1").bump("patch") == v("1.2.3")
    assert v("2.0.0-rc.1").bump("major") == v("2.0.0")


def test_bump_prerelease():
    assert v("1.2.3-rc.1").bump("prerelease") == v("1.2.3-rc.2")
    assert v("1.2.3-rc").bump("prerelease") == v("1.2.3-rc.0")
    assert v("1.2.3").bump("prerelease") == v("1.2.4-0")
    with pytest.raises(ValueError):
        v("1.2.3").bump("micro")
