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


def test_durations_print_in_the_largest_whole_unit():
    from syncd.cli.output import fmt_duration

    assert [fmt_duration(s) for s in (0, 30, 90, 3600, 129600, 604800, 0.5)] == [
        "0s",
        "30s",
        "90s",
        "1h",
        "36h",
        "7d",
        "0.5s",
    ]


def test_an_option_duration_needs_its_unit_and_a_limit_is_at_least_one():
    import argparse

    from syncd.cli.command import duration_arg, positive_int

    assert duration_arg("7d") == 7 * 86400 and duration_arg("0s") == 0
    for bad, message in (("7", "needs a unit"), ("7days", "is not a duration"), ("-1d", "is not a duration")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            duration_arg(bad)
    assert positive_int("5") == 5
    for bad in ("0", "-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_the_pause_line_names_the_instant_the_reason_and_the_way_out():
    from syncd.cli.resync import pause_text

    until = datetime(2026, 12, 7, 15, 5, 10, tzinfo=timezone(timedelta(hours=1)))
    assert pause_text("corp", until, "HTTP 429") == (
        "paused by the provider until 14:05:10 UTC (HTTP 429, Retry-After);"
        " `syncd pause clear --provider corp` ends it"
    )
    assert "(a Retry-After another replica recorded)" in pause_text(
        "corp", until, "a Retry-After another replica recorded"
    )
