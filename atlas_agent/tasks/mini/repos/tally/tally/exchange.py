"""Converting money between currencies."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from tally.currency import Currency, get_currency
from tally.money import Money, _to_decimal


class MissingRate(LookupError):
    """No rate is known for a currency."""


class RateTable:
    """Exchange rates quoted against one base currency.

    ``RateTable("EUR", {"USD": "1.0850"})`` says that one euro buys 1.0850
    US dollars. Conversions between two quoted currencies go through the base.
    """

    def __init__(self, base: str | Currency, rates: Mapping[str, Decimal | int | str]) -> None:
        self.base = get_currency(base)
        self._rates: dict[str, Decimal] = {}
        for code, rate in rates.items():
            self.set_rate(code, rate)

    def set_rate(self, code: str | Currency, rate: Decimal | int | str) -> None:
        """Record how many units of `code` one unit of the base currency buys."""
        currency = get_currency(code)
        value = _to_decimal(rate)
        if value <= 0:
            raise ValueError(f"rate for {currency.code} must be positive")
        if currency == self.base and value != 1:
            raise ValueError("the base currency's rate is always 1")
        self._rates[currency.code] = value

    def rate(self, code: str | Currency) -> Decimal:
        """Units of `code` per one unit of the base currency."""
        currency = get_currency(code)
        if currency == self.base:
            return Decimal(1)
        try:
            return self._rates[currency.code]
        except KeyError:
            raise MissingRate(f"no rate for {currency.code} against {self.base.code}") from None

    def cross_rate(self, source: str | Currency, target: str | Currency) -> Decimal:
        """Units of `target` one unit of `source` buys."""
        return self.rate(target) / self.rate(source)

    def convert(self, money: Money, target: str | Currency) -> Money:
        """`money` in `target` currency, rounded to the target's minor unit."""
        target = get_currency(target)
        source = money.currency
        if source == target:
            return money
        if source == self.base:
            converted = money.amount * self.rate(target)
        elif target == self.base:
            converted = money.amount * self.rate(source)
        else:
            # through the base currency, keeping full precision until the end
            converted = money.amount / self.rate(source) * self.rate(target)
        return Money(converted, target).rounded()
