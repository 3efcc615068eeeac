"""Formatting money for people, and reading it back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from tally.currency import Currency, get_currency
from tally.money import Money


@dataclass(frozen=True)
class Conventions:
    """How a locale writes amounts of money."""

    decimal_point: str
    group_separator: str
    symbol_first: bool
    symbol_space: bool


LOCALES: dict[str, Conventions] = {
    "en_US": Conventions(".", ",", symbol_first=True, symbol_space=False),
    "en_GB": Conventions(".", ",", symbol_first=True, symbol_space=False),
    "de_DE": Conventions(",", ".", symbol_first=False, symbol_space=True),
    "fr_FR": Conventions(",", "\u202f", symbol_first=False, symbol_space=True),
    "de_CH": Conventions(".", "\u2019", symbol_first=True, symbol_space=True),
}

_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}


def _conventions(locale: str) -> Conventions:
    try:
        return LOCALES[locale]
    except KeyError:
        raise ValueError(f"unsupported locale {locale!r}") from None


def format_money(
    money: Money, locale: str = "en_US", *, symbol: bool = True, grouping: bool = True
) -> str:
    """`money` as a string in `locale`'s style, rounded to the minor unit.

    >>> format_money(Money("-1234.5", "USD"))
    '-$1,234.50'
    >>> format_money(Money("1234.5", "EUR"), locale="de_DE")
    '1.234,50 €'
    """
    conventions = _conventions(locale)
    currency = money.currency
    digits = f"{abs(float(money.amount)):,.{currency.exponent}f}"
    integer, _, fraction = digits.partition(".")
    if grouping:
        integer = integer.replace(",", conventions.group_separator)
    else:
        integer = integer.replace(",", "")
    number = f"{integer}{conventions.decimal_point}{fraction}" if fraction else integer
    sign = "-" if money.amount < 0 and any(c in "123456789" for c in digits) else ""

    if not symbol:
        return sign + number
    # "CHF 12.00" and "12,00 KD": a symbol made of letters always needs a space
    space = " " if conventions.symbol_space or currency.symbol[-1].isalpha() else ""
    if conventions.symbol_first:
        return f"{sign}{currency.symbol}{space}{number}"
    return f"{sign}{number}{space}{currency.symbol}"


def parse_money(text: str, currency: str | Currency | None = None, locale: str = "en_US") -> Money:
    """Read an amount written by `format_money` (or a person) back into Money.

    The currency comes from the symbol or ISO code in `text`, or from
    `currency` when the text has neither.
    """
    conventions = _conventions(locale)
    remaining = text.strip()
    found: Currency | None = None

    code = re.search(r"\b[A-Z]{3}\b", remaining)
    if code:
        found = get_currency(code.group())
        remaining = remaining.replace(code.group(), "")
    for mark, symbol_code in _SYMBOLS.items():
        if mark in remaining:
            found = get_currency(symbol_code)
            remaining = remaining.replace(mark, "")
    if currency is not None:
        wanted = get_currency(currency)
        if found is not None and found != wanted:
            raise ValueError(f"{text!r} is in {found.code}, not {wanted.code}")
        found = wanted
    if found is None:
        raise ValueError(f"no currency in {text!r}")

    remaining = remaining.strip().replace(conventions.group_separator, "")
    remaining = remaining.replace(conventions.decimal_point, ".")
    if not re.fullmatch(r"-?\d+(\.\d+)?", remaining):
        raise ValueError(f"not an amount of money: {text!r}")
    return Money(Decimal(remaining), found)
