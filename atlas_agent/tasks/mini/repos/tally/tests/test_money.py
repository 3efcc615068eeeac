from decimal import Decimal

import pytest

from tally import CurrencyMismatch, Money


def test_construct_from_str_int_and_decimal():
    assert Money("1.50", "USD").amount == Decimal("1.50")
    assert Money(3, "USD").amount == Decimal(3)
    assert Money(Decimal("2.25"), "EUR").currency.code == "EUR"


def test_floats_are_refused():
    with pytest.raises(TypeError):
        Money(0.1, "USD")


def test_arithmetic_is_exact():
    assert Money("0.10", "USD") + Money("0.20", "USD") == Money("0.30", "USD")
    assert Money("19.99", "USD") * 3 == Money("59.97", "USD")
    assert Money("10", "USD") - Money("0.01", "USD") == Money("9.99", "USD")


def test_sum_starts_from_zero():
    assert sum([Money("1.25", "USD"), Money("2.75", "USD")]) == Money("4.00", "USD")


def test_mixing_currencies_is_an_error():
    with pytest.raises(CurrencyMismatch):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(CurrencyMismatch):
        Money(1, "USD") < Money(2, "EUR")


def test_equality_needs_the_same_currency():
    assert Money(5, "USD") != Money(5, "EUR")
    assert Money("5.0", "USD") == Money("5.00", "USD")
    assert hash(Money("5.0", "USD")) == hash(Money("5.00", "USD"))


def test_ordering():
    assert Money("1.00", "USD") < Money("1.01", "USD")
    assert max(Money(3, "GBP"), Money(7, "GBP")) == Money(7, "GBP")


def test_rounded_rounds_half_up():
    assert Money("2.345", "USD").rounded() == Money("2.35", "USD")
    assert Money("-2.345", "USD").rounded() == Money("-2.35", "USD")
    assert Money("150.5", "JPY").rounded() == Money("151", "JPY")


def test_division_keeps_precision_until_rounded():
    third = Money("1.00", "USD") / 3
    assert third.amount > Decimal("0.3333")
    assert third.rounded() == Money("0.33", "USD")


def test_allocate_by_ratio():
    shares = Money("10.00", "USD").allocate([70, 30])
    assert shares == [Money("7.00", "USD"), Money("3.00", "USD")]


def test_allocate_with_decimal_ratios():
    shares = Money("90", "USD").allocate([Decimal("0.5"), Decimal("0.25"), Decimal("0.25")])
    assert shares == [Money("45.00", "USD"), Money("22.50", "USD"), Money("22.50", "USD")]


def test_allocate_shares_are_within_one_unit_of_exact():
    money = Money("0.05", "USD")
    for share in money.allocate([1] * 10):
        assert abs(share.amount - Decimal("0.005")) <= Decimal("0.01")


def test_allocate_rejects_bad_ratios():
    for ratios in ([], [0, 0], [1, -1]):
        with pytest.raises(ValueError):
            Money("1.00", "USD").allocate(ratios)


def test_split_evenly():
    assert Money("9.00", "USD").split(3) == [Money("3.00", "USD")] * 3
    with pytest.raises(ValueError):
        Money("9.00", "USD").split(0)
