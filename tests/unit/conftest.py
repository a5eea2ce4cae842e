"""Fixtures of the unit layer: no database, no network, no sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from syncd import redact


@pytest.fixture(autouse=True)
def _no_secrets_from_earlier_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no registered secrets (see the integration conftest)."""
    monkeypatch.setattr(redact, "_SECRET_VALUES", ())


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured
