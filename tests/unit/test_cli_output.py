"""The command line's pure parts: its tables, timestamps and parser. No
database, no network, no subprocess."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import pytest

from syncd.cli import build_parser
from syncd.cli.output import fmt_time, fmt_utc, print_table

COMMANDS = [
    "migrate",
    "run",
    "resync",
    "discover",
    "targets",
    "status",
    "check",
    "demo",
    "deletions",
    "pause",
    "outbox",
]


def test_a_table_pads_each_column_to_its_widest_cell_and_strips_trailing_space():
    out = io.StringIO()
    print_table([("corp", 12, None), ("a-much-longer-name", 3, "x")], ["PROVIDER", "N", "LAST"], out=out)
    assert out.getvalue().splitlines() == [
        "PROVIDER            N   LAST",
        "corp                12",
        "a-much-longer-name  3   x",
    ]


def test_a_table_with_no_rows_is_its_header():
    out = io.StringIO()
    print_table([], ["PROVIDER", "USER"], out=out)
    assert out.getvalue() == "PROVIDER  USER\n"


def test_times_print_to_the_second_and_a_missing_one_as_a_dash():
    at = datetime(2026, 12, 6, 12, 30, 5, 999_000, tzinfo=timezone(timedelta(hours=2)))
    assert fmt_time(at) == "2026-12-06 12:30:05"
    assert fmt_utc(at) == "2026-12-06 10:30:05 UTC"
    assert fmt_time(None) == fmt_utc(None) == "-"
    assert fmt_utc(at.astimezone(UTC)) == "2026-12-06 10:30:05 UTC"


def test_help_lists_the_commands_in_their_documented_order():
    help_text = build_parser().format_help()
    positions = [help_text.index(f"    {name} ") for name in COMMANDS]
    assert positions == sorted(positions)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_config_and_has_a_handler(command):
    args, extra = build_parser().parse_known_args([command, "--config", "x.toml", *_required(command)])
    assert extra == []
    assert args.command == command
    assert args.config == "x.toml"
    assert callable(args.handler)


def _required(command: str) -> list[str]:
    return {
        "targets": ["list"],
        "deletions": ["list", "--provider", "p"],
        "pause": ["clear", "--provider", "p"],
        "outbox": ["claim"],
    }.get(command, [])
