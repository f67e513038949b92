import random

import pytest

from cdcsync.agents.retry import backoff_delay


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 10])
def test_full_jitter_stays_within_the_exponential_ceiling(attempt):
    rng = random.Random(attempt)
    ceiling = min(5.0, 0.2 * 2 ** (attempt - 1))
    for _ in range(50):
        assert ceiling / 2 <= backoff_delay(attempt, rng=rng) <= ceiling


def test_retry_after_wins_and_is_capped():
    assert backoff_delay(1, retry_after=2.5) == 2.5
    assert backoff_delay(1, retry_after=120) == 5.0
    assert backoff_delay(1, retry_after=-1) == 0.0
