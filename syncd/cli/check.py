"""``syncd check``: the config, the database and each provider's credentials."""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import replace

from syncd.cli.command import EXIT_FAIL, EXIT_OK, AddCommand
from syncd.cli.connect import open_store
from syncd.config import Config, ProviderBase
from syncd.errors import ConfigError, ProviderError, SyncdError
from syncd.store import Store
from syncd.timeutil import utcnow


def add_parser(add: AddCommand) -> None:
    p = add("check", "validate config, reach the database, prove each provider's credentials")
    p.set_defaults(handler=cmd_check)


async def cmd_check(cfg: Config, args: argparse.Namespace) -> int:
    print(f"config: {cfg.source}: ok ({len(cfg.providers)} provider(s))")
    ok = True
    async with contextlib.AsyncExitStack() as stack:
        store = None
        try:
            # connects and checks the schema
            store = await stack.enter_async_context(open_store(cfg, migrate=False))
            print("database: reachable, schema current")
        except SyncdError as exc:
            print(f"database: FAILED: {exc}")
            ok = False
        for pc in cfg.providers:
            ok &= await _check_provider(pc, store)
    return EXIT_OK if ok else EXIT_FAIL


async def _check_provider(pc: ProviderBase, store: Store | None) -> bool:
    """One provider's credentials, proven by an authenticated read of the
    right shape (``Provider.check``: any 404 or unexpected body fails, and the
    line names the URL tried), within its shared Retry-After pause: a paused
    provider is not contacted, and a 429 the check gets is shared with the
    daemons (not waited out here)."""
    from syncd.providers.base import CheckFailed
    from syncd.sync.credentials import attach_store, rotates_refresh_tokens
    from syncd.sync.pauses import share_pause
    from syncd.sync.runtime import open_runtime

    label = f"provider {pc.name} ({pc.type})"  # type: ignore[attr-defined]
    if store is not None:
        until = await store.get_pause(pc.name)
        if until is not None and until > utcnow():
            print(f"{label}: NOT CHECKED: paused by the provider's Retry-After until {until.isoformat()}")
            return False
    try:
        rt = open_runtime(pc)
    except ConfigError as exc:
        print(f"provider {pc.name}: FAILED: {exc}")
        return False
    if store is None and rotates_refresh_tokens(rt):
        await rt.close()
        print(
            f"{label}: NOT CHECKED: the database is unreachable, and a refresh could rotate"
            " the refresh token where the daemons would never read it"
        )
        return False
    rt.client.policy = replace(rt.client.policy, max_rate_limit_waits=0, max_attempts=1)
    if store is not None:
        rt.gate.on_pause = share_pause(store, pc.name)
        # a refresh rotated by the check is the daemons' newest token
        attach_store(rt, store)
    try:
        proof = await rt.connection.check()
        print(f"{label}: credentials accepted: {proof}")
        return True
    except CheckFailed as exc:
        # the credentials' refusal is named as such, whatever the step that refused them
        # (a token endpoint says "credentials refused by the token endpoint")
        reason = str(exc)
        if exc.credentials_rejected and not reason.startswith("credentials rejected"):
            reason = f"credentials rejected: {reason}"
        print(f"{label}: FAILED: {reason} ({exc.tried})")
        return False
    except (ProviderError, ConfigError) as exc:
        print(f"{label}: FAILED: {exc}")
        return False
    finally:
        await rt.close()
