"""The fake provider's request budget (``RequestBudget``): a pure decision
on an arrival time, so these tests pass ``now`` and never sleep."""

from __future__ import annotations

from syncd.testing.fake import RequestBudget


def test_the_budget_admits_per_second_requests_and_refuses_the_next() -> None:
    budget = RequestBudget(3)
    assert [budget.admit(100.0 + i / 10) for i in range(5)] == [True, True, True, False, False]


def test_an_admitted_request_counts_for_exactly_one_second() -> None:
    budget = RequestBudget(2)
    assert budget.admit(10.0) and budget.admit(10.5)
    assert not budget.admit(10.999)
    assert budget.admit(11.0)  # the request of 10.0 has left the window
    assert not budget.admit(11.2)
    assert budget.admit(11.5)


def test_the_window_slides_rather_than_resetting_at_each_whole_second() -> None:
    """Two bursts either side of a second boundary are one burst: a window
    reset at 1.0 would admit twice the budget within 0.2 s."""
    budget = RequestBudget(3)
    assert all(budget.admit(0.9) for _ in range(3))
    assert not any(budget.admit(1.1) for _ in range(3))


def test_a_refused_request_costs_nothing() -> None:
    """A client that ignores the 429s is held to the budget, not shut out."""
    budget = RequestBudget(2)
    admitted = [t / 100 for t in range(1000) if budget.admit(t / 100)]  # 100 req/s for 10 s
    assert len(admitted) == 20
    # at most 2 in any one-second window, and the budget used in every second
    assert all(b - a >= 1.0 for a, b in zip(admitted, admitted[2:], strict=False))
    assert [int(t) for t in admitted[::2]] == list(range(10))


def test_a_client_that_waits_its_retry_after_finds_a_full_budget() -> None:
    """Sending as fast as possible and pausing ``Retry-After`` seconds after
    each 429, a client gets the whole budget each second and one 429 per pause."""
    budget = RequestBudget(50)
    wait = float(budget.retry_after)
    now, admitted, refused = 0.0, 0, 0
    while now < 10.0:
        if budget.admit(now):
            admitted += 1
            now += 0.001
        else:
            refused += 1
            now += wait
    assert refused == 10
    assert admitted == 500
    assert budget.retry_after == "1"
