from decimal import Decimal

import pytest

from tally import MissingRate, Money, RateTable


@pytest.fixture
def rates():
    return RateTable("EUR", {"USD": "1.0850", "JPY": "162.40", "GBP": "0.8560"})


def test_rate_of_base_is_one(rates):
    assert rates.rate("EUR") == Decimal(1)


def test_convert_from_base(rates):
    assert rates.convert(Money("10.00", "EUR"), "USD") == Money("10.85", "USD")
    assert rates.convert(Money("10.00", "EUR"), "JPY") == Money("1624", "JPY")


def test_convert_between_quoted_currencies(rates):
    # 100 USD -> 92.1659 EUR -> 78.8940 GBP
    assert rates.convert(Money("100.00", "USD"), "GBP") == Money("78.89", "GBP")


def test_convert_to_same_currency_is_identity(rates):
    money = Money("12.345", "USD")
    assert rates.convert(money, "USD") is money


def test_cross_rate(rates):
    assert rates.cross_rate("EUR", "USD") == Decimal("1.0850")


def test_missing_rate(rates):
    with pytest.raises(MissingRate, match="CHF"):
        rates.convert(Money("1.00", "CHF"), "EUR")


def test_rates_must_be_positive():
    with pytest.raises(ValueError):
        RateTable("EUR", {"USD": "0"})
