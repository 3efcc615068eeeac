from coin import double, half


def test_double_of_zero():
    assert double(0) == 0


def test_half_of_zero():
    assert half(0) == 0
