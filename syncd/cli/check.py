"""``syncd check``: the config, the database and each provider's credentials."""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, replace
from typing import Any

from syncd import jsonutil
from syncd.cli.command import EXIT_FAIL, EXIT_OK, AddCommand
from syncd.cli.connect import open_store
from syncd.config import Config, ProviderBase
from syncd.errors import ConfigError, ProviderError, SyncdError
from syncd.store import Store
from syncd.timeutil import utcnow


def add_parser(add: AddCommand) -> None:
    p = add("check", "validate config, reach the database, prove each provider's credentials")
    p.add_argument("--json", action="store_true", help="one JSON object (keys in README, Commands)")
    p.set_defaults(handler=cmd_check)


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """One checked thing: its line of text, and the same under stable keys for ``--json``."""

    line: str
    ok: bool
    fields: dict[str, Any]


async def cmd_check(cfg: Config, args: argparse.Namespace) -> int:
    def say(v: Verdict) -> None:
        if not args.json:
            print(v.line, flush=True)

    say(Verdict(line=f"config: {cfg.source}: ok ({len(cfg.providers)} provider(s))", ok=True, fields={}))
    results: list[Verdict] = []
    async with contextlib.AsyncExitStack() as stack:
        store = None
        try:
            # connects and checks the schema
            store = await stack.enter_async_context(open_store(cfg, migrate=False))
            database = Verdict(line="database: reachable, schema current", ok=True, fields={"error": None})
        except SyncdError as exc:
            database = Verdict(line=f"database: FAILED: {exc}", ok=False, fields={"error": str(exc)})
        say(database)
        for pc in cfg.providers:
            results.append(await _check_provider(pc, store))
            say(results[-1])
    ok = database.ok and all(v.ok for v in results)
    if args.json:
        print(
            jsonutil.dumps(
                {
                    "ok": ok,
                    "config": {"path": str(cfg.source), "providers": len(cfg.providers)},
                    "database": {"ok": database.ok, **database.fields},
                    "providers": [v.fields for v in results],
                }
            )
        )
    return EXIT_OK if ok else EXIT_FAIL


async def _check_provider(pc: ProviderBase, store: Store | None) -> Verdict:
    """One provider's credentials, proven by an authenticated read of the
    right shape (``Provider.check``: any 404 or unexpected body fails, and the
    line names the URL tried), within its shared Retry-After pause: a paused
    provider is not contacted, and a 429 the check gets is shared with the
    daemons (not waited out here)."""
    from syncd.providers.base import CheckFailed
    from syncd.sync.credentials import attach_store, rotates_refresh_tokens
    from syncd.sync.pauses import share_pause
    from syncd.sync.runtime import open_runtime

    ptype = pc.type  # type: ignore[attr-defined]
    label = f"provider {pc.name} ({ptype})"

    def verdict(line: str, status: str, detail: str, url: str | None = None) -> Verdict:
        fields = {"name": pc.name, "type": ptype, "ok": status == "ok", "status": status}
        return Verdict(line=line, ok=status == "ok", fields={**fields, "detail": detail, "url": url})

    if store is not None:
        until = await store.get_pause(pc.name)
        if until is not None and until > utcnow():
            detail = f"paused by the provider's Retry-After until {until.isoformat()}"
            return verdict(f"{label}: NOT CHECKED: {detail}", "not_checked", detail)
    try:
        rt = open_runtime(pc)
    except ConfigError as exc:
        return verdict(f"provider {pc.name}: FAILED: {exc}", "failed", str(exc))
    if store is None and rotates_refresh_tokens(rt):
        await rt.close()
        detail = (
            "the database is unreachable, and a refresh could rotate"
            " the refresh token where the daemons would never read it"
        )
        return verdict(f"{label}: NOT CHECKED: {detail}", "not_checked", detail)
    rt.client.policy = replace(rt.client.policy, max_rate_limit_waits=0, max_attempts=1)
    if store is not None:
        rt.gate.on_pause = share_pause(store, pc.name)
        # a refresh rotated by the check is the daemons' newest token
        attach_store(rt, store)
    try:
        proof = await rt.connection.check()
        return verdict(f"{label}: credentials accepted: {proof}", "ok", str(proof))
    except CheckFailed as exc:
        # the credentials' refusal is named as such, whatever the step that refused them
        # (a token endpoint says "credentials refused by the token endpoint")
        reason = str(exc)
        if exc.credentials_rejected and not reason.startswith("credentials rejected"):
            reason = f"credentials rejected: {reason}"
        return verdict(f"{label}: FAILED: {reason} ({exc.tried})", "failed", reason, str(exc.tried))
    except (ProviderError, ConfigError) as exc:
        return verdict(f"{label}: FAILED: {exc}", "failed", str(exc))
    finally:
        await rt.close()
