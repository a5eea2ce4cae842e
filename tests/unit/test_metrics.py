"""/metrics says what it counts: help text, labels and README agree (issue #19)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from syncd import __version__, metrics
from syncd.model.status import TargetStatus

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_users_help_text_lists_exactly_the_outcomes_counted():
    listed = re.search(r"\(([^)]*)\)$", metrics.USERS._documentation).group(1).split(", ")
    assert listed == list(metrics.USER_OUTCOMES)
    # a confirmed deletion is counted as what the guard made of it, never as "deleting"
    assert "deleting" not in listed
    assert {"deleted", "deletion_held", "deletion_rejected", "not_found_unconfirmed", "error"} <= set(listed)
    with pytest.raises(ValueError, match="not an outcome"):
        metrics.count_users("p", TargetStatus.DELETING)


def test_build_info_and_the_fetch_histogram_are_exposed():
    text = generate_latest().decode()
    assert f'syncd_build_info{{version="{__version__}"}} 1.0' in text
    assert "# TYPE syncd_fetch_duration_seconds histogram" in text
    assert "syncd_fetch_seconds" not in text


def test_the_readme_lists_every_metric_and_no_other():
    section = README.read_text().split("- **Metrics** (`/metrics`):", 1)[1].split("\n- **", 1)[0]
    documented = set(re.findall(r"`(syncd_[a-z_]+)", section))
    suffix = {"counter": "_total", "info": "_info"}  # collected without them
    exposed = {m.name + suffix.get(m.type, "") for m in REGISTRY.collect() if m.name.startswith("syncd_")}
    assert documented == exposed
