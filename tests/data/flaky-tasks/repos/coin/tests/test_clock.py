"""A test whose outcome follows the wall clock, so repeated gradings of one patch disagree."""

import time

SLOT_SECONDS = 15


def test_even_slot():
    """Passes in even slots, fails in odd ones; sleeps into the next slot first, so a grading
    that starts within SLOT_SECONDS of this one's end lands in the other kind of slot."""
    now = time.time()
    slot = int(now // SLOT_SECONDS)
    time.sleep((slot + 1) * SLOT_SECONDS - now + 0.2)
    assert slot % 2 == 0
