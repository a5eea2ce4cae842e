"""deploy/monitoring against what syncd serves: every metric an alert rule
or a dashboard panel names is one of syncd's, every label it groups by is
one of that metric's, and (where Debian's prometheus package provides
promtool) the rule file passes ``promtool check rules``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from syncd import metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
NAME = re.compile(r"\bsyncd_[a-z_]+")
BY = re.compile(r"\bby\s*\(([^)]*)\)")
#: the series a histogram or counter adds to its name
SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def served() -> dict[str, set[str]]:
    """syncd's metrics: exposed name → its label names."""
    out = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            out[name] = set(value._labelnames)
    return out


def rule_expressions() -> list[tuple[str, str]]:
    doc = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def panel_expressions() -> list[tuple[str, str]]:
    doc = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [(p["title"], t["expr"]) for p in doc["panels"] for t in p["targets"]]


def base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in served():
            return name.removesuffix(suffix)
    return name


@pytest.mark.parametrize(("what", "expr"), rule_expressions() + panel_expressions())
def test_every_expression_names_metrics_and_labels_syncd_serves(what, expr):
    known = served()
    names = {base(n) for n in NAME.findall(expr)}
    assert names, f"{what}: names no syncd metric"
    assert names <= set(known), f"{what}: {sorted(names - set(known))} not served by syncd"
    labels = {label.strip() for group in BY.findall(expr) for label in group.split(",") if label.strip()}
    for label in labels:
        assert any(label in known[n] for n in names), f"{what}: no metric of it has label {label!r}"


def test_the_alerts_cover_what_an_operator_must_hear_about():
    exprs = " ".join(e for _, e in rule_expressions())
    for metric in (
        "syncd_last_success_timestamp_seconds",
        "syncd_circuit_open",
        "syncd_credentials_rejected",
        "syncd_pending_deletions",
        "syncd_outbox_unprocessed",
        "syncd_outbox_oldest_unprocessed_age_seconds",
    ):
        assert metric in exprs, metric


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) not installed")
def test_promtool_accepts_the_rules():
    done = subprocess.run(
        ["promtool", "check", "rules", str(MONITORING / "alerts.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
