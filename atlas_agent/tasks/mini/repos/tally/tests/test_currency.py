from decimal import Decimal

import pytest

from tally import Currency, UnknownCurrency, get_currency, register_currency


def test_lookup_is_case_insensitive():
    assert get_currency("usd") is get_currency("USD")


def test_minor_units():
    assert get_currency("USD").unit == Decimal("0.01")
    assert get_currency("JPY").unit == Decimal("1")
    assert get_currency("KWD").unit == Decimal("0.001")


def test_unknown_currency():
    with pytest.raises(UnknownCurrency, match="XYZ"):
        get_currency("XYZ")


def test_register_currency():
    sek = register_currency(Currency("SEK", 2, "kr"))
    assert get_currency("SEK") is sek


def test_invalid_code():
    with pytest.raises(ValueError):
        Currency("usd", 2, "$")
