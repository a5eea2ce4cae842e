"""``syncd resync`` and targets leased by another replica (a killed one, or a
running one): reported with their count and lease end, a distinct exit code,
and ``--wait``."""

from __future__ import annotations

from pathlib import Path

from syncd.cli import EXIT_ATTENTION, EXIT_OK
from tests.integration.test_cli import syncd, write_config


def _config(tmp_path: Path, db_url: str, url: str, lease: str | None = None) -> str:
    path = write_config(tmp_path, db_url, url)
    if lease:
        p = Path(path)
        p.write_text(p.read_text().replace("[sync]\n", f'[sync]\nlease = "{lease}"\n'))
    return path


async def _mirrored(store) -> int:
    return await store.pool.fetchval("SELECT count(*) FROM syncd.users")


async def test_targets_leased_by_another_replica_are_reported_and_exit_needs_attention(
    tmp_path, store, zitadel, db_url
):
    ids = zitadel.seed(40)
    await store.add_targets("corp", ids)
    leased = await store.lease_due("corp", "replica-x", 3600, 15)  # a killed replica's leases
    assert len(leased) == 15
    until = await store.pool.fetchval("SELECT max(lease_expires_at) FROM syncd.targets")
    cfg = _config(tmp_path, db_url, zitadel.url)

    rc, out, err = await syncd("resync", "--all", "--config", cfg)
    assert rc == EXIT_ATTENTION != EXIT_OK, (out, err)
    assert "fetched 25," in out
    assert "corp: 15 target(s) leased by another replica (replica-x) until" in out
    assert until.strftime("%Y-%m-%d %H:%M:%S") in out
    assert "--wait" in out
    assert await _mirrored(store) == 25

    # asking only for users nobody else leases: nothing skipped, exit 0
    free = sorted(set(ids) - {r["user_id"] for r in leased})
    rc, out, err = await syncd("resync", "--provider", "corp", "--user", free[0], "--config", cfg)
    assert rc == EXIT_OK, (out, err)
    assert "leased by another replica" not in out
    # asking for a leased one: reported
    rc, out, err = await syncd(
        "resync", "--provider", "corp", "--user", leased[0]["user_id"], "--user", free[1], "--config", cfg
    )
    assert rc == EXIT_ATTENTION, (out, err)
    assert "corp: 1 target(s) leased by another replica (replica-x)" in out


async def test_wait_waits_for_the_leases_to_expire_then_syncs_them_all(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(40)
    await store.add_targets("corp", ids)
    assert len(await store.lease_due("corp", "replica-y", 4, 15)) == 15  # expires in 4 s
    cfg = _config(tmp_path, db_url, zitadel.url)

    rc, out, err = await syncd("resync", "--all", "--wait", "--config", cfg)
    assert rc == EXIT_OK, (out, err)
    assert "waiting" in err and "replica-y" in err
    assert "fetched 25," in out and "fetched 15," in out
    assert "leased by another replica" not in out
    assert await _mirrored(store) == 40


async def test_wait_is_bounded_by_the_lease_length_and_then_reports(tmp_path, store, zitadel, db_url):
    ids = zitadel.seed(10)
    await store.add_targets("corp", ids)
    assert len(await store.lease_due("corp", "replica-z", 3600, 3)) == 3  # far longer than our lease
    cfg = _config(tmp_path, db_url, zitadel.url, lease="1s")

    rc, out, err = await syncd("resync", "--all", "--wait", "--config", cfg, timeout=60)
    assert rc == EXIT_ATTENTION, (out, err)
    assert "corp: 3 target(s) leased by another replica (replica-z) until" in out
    assert "gave up waiting" in out
    assert await _mirrored(store) == 7


async def test_wait_only_applies_to_an_inline_resync(tmp_path, db_url, zitadel):
    cfg = _config(tmp_path, db_url, zitadel.url)
    rc, _, err = await syncd("resync", "--all", "--wait", "--dry-run", "--config", cfg)
    assert rc == 2 and "--wait" in err


async def test_resync_help_documents_the_exit_codes():
    rc, out, _ = await syncd("resync", "--help")
    assert rc == 0
    assert f"{EXIT_ATTENTION}" in out and "--wait" in out and "leased by another replica" in out


async def test_a_resync_never_takes_the_leases_of_a_daemon_with_the_configured_replica_name(
    tmp_path, store, zitadel, db_url
):
    """With `[daemon] replica = "d"` in the config, a running daemon's leases
    (owner "d") are another replica's to the CLI: reported, not released."""
    ids = zitadel.seed(10)
    await store.add_targets("corp", ids)
    assert len(await store.lease_due("corp", "d", 3600, 4)) == 4  # the daemon is mid-batch
    cfg = Path(_config(tmp_path, db_url, zitadel.url))
    cfg.write_text(cfg.read_text().replace("[sync]\n", '[daemon]\nreplica = "d"\n\n[sync]\n'))
    rc, out, err = await syncd("resync", "--all", "--config", str(cfg))
    assert rc == EXIT_ATTENTION, (out, err)
    assert "corp: 4 target(s) leased by another replica (d)" in out
    assert await store.pool.fetchval("SELECT count(*) FROM syncd.targets WHERE leased_by = 'd'") == 4
