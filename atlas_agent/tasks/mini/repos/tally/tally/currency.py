"""Currencies and their minor units."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


class UnknownCurrency(KeyError):
    """A currency code nobody registered."""

    def __str__(self) -> str:
        return f"unknown currency {self.args[0]!r}"


@dataclass(frozen=True)
class Currency:
    """An ISO 4217 currency: its code, the digits of its minor unit, its symbol."""

    code: str
    exponent: int
    symbol: str

    def __post_init__(self) -> None:
        if len(self.code) != 3 or not self.code.isalpha() or not self.code.isupper():
            raise ValueError(f"not an ISO 4217 code: {self.code!r}")
        if self.exponent < 0:
            raise ValueError("exponent must not be negative")

    @property
    def unit(self) -> Decimal:
        """The smallest amount of this currency: 0.01 for USD, 1 for JPY."""
        return Decimal(1).scaleb(-self.exponent)


_REGISTRY: dict[str, Currency] = {}


def register_currency(currency: Currency) -> Currency:
    """Make `currency` known by its code, replacing any earlier definition."""
    _REGISTRY[currency.code] = currency
    return currency


def get_currency(code: str | Currency) -> Currency:
    """The registered currency for `code` (case-insensitive)."""
    if isinstance(code, Currency):
        return code
    try:
        return _REGISTRY[code.upper()]
    except KeyError:
        raise UnknownCurrency(code) from None


for _currency in (
    Currency("USD", 2, "$"),
    Currency("EUR", 2, "€"),
    Currency("GBP", 2, "£"),
    Currency("CHF", 2, "CHF"),
    Currency("JPY", 0, "¥"),
    Currency("KWD", 3, "KD"),
):
    register_currency(_currency)
