"""Two small arithmetic helpers, each with a bug a task fixes."""


def double(n: int) -> int:
    return n * 3


def half(n: int) -> int:
    return n // 3
