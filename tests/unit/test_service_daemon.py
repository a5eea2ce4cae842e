"""The daemon's crash backoff per provider, with a fixed clock: it grows from
the policy's base, never past the cap or the provider's interval."""

from __future__ import annotations

import pytest
import structlog

from syncd import config
from syncd.http import RetryPolicy
from syncd.service import CRASH_RETRY, Daemon


class Clock:
    now = 500.0

    def __call__(self) -> float:
        return self.now


def daemon(interval: str, clock: Clock) -> Daemon:
    cfg = config.from_dict(
        {
            "database": {"url": "postgresql://127.0.0.1:1/none"},
            "providers": [
                {
                    "name": "corp",
                    "type": "zitadel",
                    "base_url": "http://127.0.0.1:1",
                    "token_env": "SYNCD_UNIT_NO_TOKEN",
                    "interval": interval,
                }
            ],
        },
        source="<unit>",
    )
    return Daemon(cfg, listen="127.0.0.1:1", clock=clock)


def crash(d: Daemon, n: int) -> list[dict]:
    with structlog.testing.capture_logs() as logs:
        for _ in range(n):
            d._pass_crashed("corp", RuntimeError("a bug"))
    return logs


def test_crashes_in_a_row_wait_longer_each_time_up_to_the_cap():
    clock = Clock()
    d = daemon("1h", clock)
    d.crash_retry = RetryPolicy(backoff_base=0.2, backoff_cap=0.8)
    logs = crash(d, 5)
    assert [e["crashes"] for e in logs] == [1, 2, 3, 4, 5]
    for e, ceiling in zip(logs, (0.2, 0.4, 0.8, 0.8, 0.8), strict=True):
        assert e["event"] == "sync.pass_crashed" and e["provider"] == "corp"
        assert ceiling / 2 <= e["retry_in"] <= ceiling
    crashes = d.crashes["corp"]
    assert crashes.waiting()
    clock.now += 0.81
    assert not crashes.waiting()


@pytest.mark.parametrize(
    ("interval", "cap"), [("1h", 300.0), ("60s", 60.0), ("1s", CRASH_RETRY.backoff_base)]
)
def test_the_crash_wait_is_capped_at_the_providers_interval_but_not_below_the_base(interval, cap):
    logs = crash(daemon(interval, Clock()), 40)
    assert max(e["retry_in"] for e in logs) <= cap
    assert logs[-1]["retry_in"] >= cap / 2
