"""The Money value type."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import total_ordering

from tally.currency import Currency, get_currency

# how amounts are rounded to a currency's minor unit unless a caller says otherwise
ROUNDING = ROUND_HALF_UP


class CurrencyMismatch(ValueError):
    """Arithmetic or comparison between two different currencies."""


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool | float):
        raise TypeError(f"amounts must be str, int or Decimal, not {type(value).__name__}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    raise TypeError(f"amounts must be str, int or Decimal, not {type(value).__name__}")


@total_ordering
class Money:
    """An amount of one currency. Immutable; arithmetic is exact."""

    __slots__ = ("_amount", "_currency")

    def __init__(self, amount: Decimal | int | str, currency: str | Currency) -> None:
        decimal = _to_decimal(amount)
        if not decimal.is_finite():
            raise ValueError(f"amount must be finite, not {amount!r}")
        self._amount = decimal
        self._currency = get_currency(currency)

    @property
    def amount(self) -> Decimal:
        return self._amount

    @property
    def currency(self) -> Currency:
        return self._currency

    @classmethod
    def zero(cls, currency: str | Currency) -> Money:
        return cls(0, currency)

    def __repr__(self) -> str:
        return f"Money({str(self._amount)!r}, {self._currency.code!r})"

    def __str__(self) -> str:
        return f"{self._amount} {self._currency.code}"

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency.code} and {other.currency.code}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        return self.currency == other.currency and self.amount == other.amount

    def __hash__(self) -> int:
        return hash((self.currency.code, self.amount))

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._check(other)
        return self.amount < other.amount

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __radd__(self, other: object) -> Money:
        # lets sum() start from its default 0
        if other == 0:
            return self
        return NotImplemented

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        if isinstance(factor, Money):
            return NotImplemented
        return Money(self.amount * _to_decimal(factor), self.currency)

    __rmul__ = __mul__

    def __truediv__(self, divisor: int | Decimal) -> Money:
        if isinstance(divisor, Money):
            return NotImplemented
        return Money(self.amount / _to_decimal(divisor), self.currency)

    def __bool__(self) -> bool:
        return bool(self.amount)

    def rounded(self, rounding: str = ROUNDING) -> Money:
        """This amount rounded to a whole number of the currency's minor unit."""
        return Money(self.amount.quantize(self.currency.unit, rounding=rounding), self.currency)

    def allocate(self, ratios: Sequence[int | Decimal]) -> list[Money]:
        """Split this amount into shares proportional to `ratios`.

        Every share is a whole number of minor units, and the shares add up to
        exactly this amount (rounded to the minor unit): a bill of 100.00
        split three ways is 33.34 + 33.33 + 33.33. Leftover minor units go one
        each to the shares that rounding shortchanged most, earliest first.
        """
        weights = [_to_decimal(r) for r in ratios]
        if not weights:
            raise ValueError("allocate() needs at least one ratio")
        if any(w < 0 for w in weights):
            raise ValueError("ratios must not be negative")
        total = sum(weights)
        if not total:
            raise ValueError("ratios must not all be zero")
        return [Money(self.amount * w / total, self.currency).rounded() for w in weights]

    def split(self, parts: int) -> list[Money]:
        """Split into `parts` shares as equal as the minor unit allows."""
        if parts < 1:
            raise ValueError("parts must be at least 1")
        return self.allocate([1] * parts)
