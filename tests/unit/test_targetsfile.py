"""Parsing a targets file (``syncd targets add|remove --file F``): pure, no database."""

from __future__ import annotations

import pytest

from syncd.targetsfile import MAX_ID_CHARS, id_problem, parse


def test_ids_are_stripped_and_blank_and_comment_lines_skipped_even_indented():
    data = b"  alice  \n\n#comment\n   # indented comment\n\t#tabbed comment\nbob\r\n   \n carol\n"
    result = parse(data)
    assert result.ids == ["alice", "bob", "carol"]
    assert result.bad == []


def test_a_nul_byte_makes_only_its_line_bad():
    result = parse(b"alice\nbo\x00b\ncarol\n")
    assert result.ids == ["alice", "carol"]
    assert result.bad == [(2, "contains a NUL byte")]


def test_other_control_characters_are_bad_naming_the_character():
    result = parse(b"a\x1b[31mb\nok\nx\x7fy\nz\xc2\x85z\n")
    assert result.ids == ["ok"]
    assert [n for n, _ in result.bad] == [1, 3, 4]
    assert "U+001B" in result.bad[0][1]
    assert "U+007F" in result.bad[1][1]
    assert "U+0085" in result.bad[2][1]


def test_invalid_utf8_is_decoded_per_line_and_reported_with_its_line():
    # latin-1 "José" on line 2; the other lines are fine
    result = parse("alice\nJosé\nbob\n".encode("latin-1"))
    assert result.ids == ["alice", "bob"]
    [(line, reason)] = result.bad
    assert line == 2 and "not valid UTF-8" in reason and "0xe9" in reason.lower()


def test_an_absurdly_long_line_is_bad_without_echoing_it():
    long_id = "x" * (MAX_ID_CHARS + 1)
    result = parse(f"ok\n{long_id}\n{'y' * MAX_ID_CHARS}\n".encode())
    assert result.ids == ["ok", "y" * MAX_ID_CHARS]
    [(line, reason)] = result.bad
    assert line == 2 and str(MAX_ID_CHARS) in reason and long_id not in reason


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_id():
    assert parse(b"\xef\xbb\xbfalice\nbob\n").ids == ["alice", "bob"]


def test_non_ascii_ids_are_fine():
    assert parse("jos\u00e9\n\u7528\u6237\n".encode()).ids == ["jos\u00e9", "\u7528\u6237"]


def test_an_empty_file_has_no_ids_and_no_bad_lines():
    assert parse(b"").ids == [] and parse(b"").bad == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("a\x00b", "NUL"),
        ("a\tb", "U+0009"),
        ("a\u2028b", "U+2028"),
        ("x" * (MAX_ID_CHARS + 1), "longer than"),
        ("a\udce9b", "not valid UTF-8"),  # how Python decodes a latin-1 byte in argv
        (" alice", "whitespace"),
    ],
)
def test_id_problem_names_what_is_wrong(value, fragment):
    problem = id_problem(value)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize("value", ["alice", "284761989876543210", "a/b+c==", "../_log", "jos\u00e9", "a b"])
def test_id_problem_accepts_ordinary_ids(value):
    assert id_problem(value) is None
