"""``syncd targets add|remove --file F`` and id validation, as a real process
against the test database, with real files."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_cli import syncd, write_config


def _file(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "ids.txt"
    path.write_bytes(data)
    return str(path)


async def _targets(store) -> list[str]:
    return [r["user_id"] for r in await store.pool.fetch("SELECT user_id FROM syncd.targets ORDER BY 1")]


async def test_a_nul_byte_is_reported_by_line_and_nothing_is_added_without_skip_bad(
    tmp_path, store, zitadel, db_url
):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    path = _file(tmp_path, b"alice\nbo\x00b\ncarol\n")
    rc, out, err = await syncd("targets", "add", "--provider", "corp", "--file", path, "--config", cfg)
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    assert "line 2: contains a NUL byte" in err
    assert "--skip-bad" in err and "nothing was added" in err
    assert await _targets(store) == []

    rc, out, err = await syncd(
        "targets", "add", "--provider", "corp", "--file", path, "--skip-bad", "--config", cfg
    )
    assert rc == 0, err
    assert "line 2: contains a NUL byte" in err
    assert "2 target(s) added" in out
    assert await _targets(store) == ["alice", "carol"]


async def test_a_latin1_file_does_not_crash_and_names_the_line(tmp_path, store, zitadel, db_url):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    path = _file(tmp_path, "alice\nJos\u00e9\nbob\n".encode("latin-1"))
    rc, out, err = await syncd("targets", "add", "--provider", "corp", "--file", path, "--config", cfg)
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    assert "line 2: not valid UTF-8" in err
    assert await _targets(store) == []


async def test_indented_comment_lines_are_not_targets(tmp_path, store, zitadel, db_url):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    path = _file(tmp_path, b"# header\nalice\n    # an indented note\n\t# tabbed\n  bob  \n\n")
    rc, out, err = await syncd("targets", "add", "--provider", "corp", "--file", path, "--config", cfg)
    assert rc == 0, err
    assert "2 target(s) added" in out
    assert await _targets(store) == ["alice", "bob"]

    # remove reads the file the same way
    rc, out, err = await syncd("targets", "remove", "--provider", "corp", "--file", path, "--config", cfg)
    assert rc == 0, err
    assert "2 target(s) removed" in out
    assert await _targets(store) == []


async def test_many_bad_lines_show_the_first_few_and_a_count(tmp_path, store, zitadel, db_url):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    lines = [f"ok{i}".encode() if i % 2 else f"bad\x01{i}".encode() for i in range(60)]
    path = _file(tmp_path, b"\n".join(lines) + b"\n")
    rc, _, err = await syncd("targets", "add", "--provider", "corp", "--file", path, "--config", cfg)
    assert rc == 2
    assert "30 bad line(s)" in err
    assert "line 1:" in err and "line 59:" not in err
    assert "more" in err
    assert len(err.splitlines()) < 20
    assert await _targets(store) == []
    rc, _, err = await syncd("targets", "remove", "--provider", "corp", "--file", path, "--config", cfg)
    assert rc == 2 and "nothing was removed" in err


async def test_a_missing_file_is_one_clear_line(tmp_path, store, zitadel, db_url):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    missing = str(tmp_path / "nonexistent")
    rc, _, err = await syncd("targets", "add", "--provider", "corp", "--file", missing, "--config", cfg)
    assert rc == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert missing in err and "No such file" in err


async def test_ids_on_the_command_line_are_validated_by_targets_add_and_resync(
    tmp_path, store, zitadel, db_url
):
    cfg = write_config(tmp_path, db_url, zitadel.url)
    rc, out, err = await syncd("targets", "add", "--provider", "corp", "alice", "bad\x1bid", "--config", cfg)
    assert rc == 2, (out, err)
    assert repr("bad\x1bid") in err and "U+001B" in err
    assert "Traceback" not in err
    assert await _targets(store) == []

    long_id = "x" * 5000
    rc, out, err = await syncd("targets", "add", "--provider", "corp", long_id, "--config", cfg)
    assert rc == 2 and "longer than" in err
    assert long_id not in err  # the repr is shortened

    rc, out, err = await syncd("resync", "--provider", "corp", "--user", "a\x07b", "--config", cfg)
    assert rc == 2, (out, err)
    assert repr("a\x07b") in err
    assert await _targets(store) == []
    assert not zitadel.requests
