"""Exact money arithmetic."""

from tally.currency import Currency, UnknownCurrency, get_currency, register_currency
from tally.exchange import MissingRate, RateTable
from tally.format import format_money, parse_money
from tally.money import CurrencyMismatch, Money

__all__ = [
    "Currency",
    "CurrencyMismatch",
    "MissingRate",
    "Money",
    "RateTable",
    "UnknownCurrency",
    "format_money",
    "get_currency",
    "parse_money",
    "register_currency",
]

__version__ = "0.1.0"
