import pytest

from tally import Money, format_money, parse_money


def test_us_dollars():
    assert format_money(Money("1234.5", "USD")) == "$1,234.50"


def test_negative_amounts():
    assert format_money(Money("-1234.5", "USD")) == "-$1,234.50"
    assert format_money(Money("-0.001", "USD")) == "$0.00"


def test_german_euros():
    assert format_money(Money("1234567.891", "EUR"), locale="de_DE") == "1.234.567,89 €"


def test_french_grouping_uses_narrow_space():
    assert format_money(Money("1234.5", "EUR"), locale="fr_FR") == "1\u202f234,50 €"


def test_swiss_francs():
    assert format_money(Money("1234.5", "CHF"), locale="de_CH") == "CHF 1\u2019234.50"


def test_zero_decimal_currency():
    assert format_money(Money("1234", "JPY")) == "¥1,234"


def test_without_symbol_or_grouping():
    money = Money("1234.5", "USD")
    assert format_money(money, symbol=False) == "1,234.50"
    assert format_money(money, grouping=False) == "$1234.50"


def test_unknown_locale():
    with pytest.raises(ValueError):
        format_money(Money(1, "USD"), locale="xx_XX")


def test_parse_symbol():
    assert parse_money("$1,234.50") == Money("1234.50", "USD")
    assert parse_money("-€3.10") == Money("-3.10", "EUR")


def test_parse_code_and_locale():
    assert parse_money("1.234,50 EUR", locale="de_DE") == Money("1234.50", "EUR")


def test_parse_with_explicit_currency():
    assert parse_money("42", currency="GBP") == Money(42, "GBP")
    with pytest.raises(ValueError):
        parse_money("$42", currency="GBP")


def test_round_trip():
    money = Money("98765.43", "EUR")
    assert parse_money(format_money(money, locale="fr_FR"), locale="fr_FR") == money
