"""Run a fake provider in its own process (benchmark, load test, manual poking).

``python -m syncd.testing.serve --type zitadel --users 100000`` prints
``READY <url>`` on stdout once listening. Users are generated on demand
(constant memory in the fake too); ``POST /_fake/modify?fraction=0.01``
changes that share of them, ``POST /_fake/faults`` queues faults
(JSON body: the keyword arguments of ``FakeProvider.inject``), and
``GET /_fake/stats`` returns request counts and early requests (with
``--record``). ``--rate 50`` answers at most 50 requests per second and 429
with ``Retry-After: 1`` beyond (``FakeProvider.rate_limit``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Iterator, MutableMapping
from typing import Any

from aiohttp import web

from syncd import jsonutil
from syncd.process import tune_gc
from syncd.testing.dialects import DIALECTS
from syncd.testing.fake import Dialect, FakeProvider


class LazyUsers(MutableMapping[str, dict[str, Any]]):
    """The n-th synthetic user of a dialect, made when asked for; changes and
    deletions are kept as an overlay."""

    def __init__(self, dialect: Dialect, count: int) -> None:
        self.dialect = dialect
        self.count = count
        self.overlay: dict[str, dict[str, Any] | None] = {}
        self._ids = [dialect.user_id(dialect.make_user(n)) for n in range(count)]
        self._pos = {uid: n for n, uid in enumerate(self._ids)}

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key in self.overlay:
            doc = self.overlay[key]
            if doc is None:
                raise KeyError(key)
            return doc
        n = self._pos.get(key)
        if n is None:
            raise KeyError(key)
        return self.dialect.make_user(n)

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        self.overlay[key] = value

    def __delitem__(self, key: str) -> None:
        self[key]  # raises KeyError if absent
        self.overlay[key] = None

    def __iter__(self) -> Iterator[str]:
        return (uid for uid in self._ids if self.overlay.get(uid, True) is not None)

    def __len__(self) -> int:
        return self.count - sum(1 for v in self.overlay.values() if v is None)

    def ids(self) -> list[str]:
        return list(self._ids)


def control_routes(fake: FakeProvider, users: LazyUsers) -> list[web.RouteDef]:
    async def modify(request: web.Request) -> web.Response:
        fraction = float(request.query.get("fraction", "0.01"))
        step = max(1, round(1 / fraction)) if fraction > 0 else 0
        changed = 0
        for n, uid in enumerate(users.ids()):
            if step and n % step == 0:
                users[uid] = fake.dialect.modify(users[uid])
                changed += 1
        return web.json_response({"changed": changed})

    async def faults(request: web.Request) -> web.Response:
        kw = await request.json()
        fake.inject(kw.pop("kind"), **kw)
        return web.json_response({"ok": True})

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                # the provider's own requests: not these control routes
                "requests": sum(1 for r in fake.requests if not r.path.startswith("/_fake/")),
                "rate_limited": sum(1 for r in fake.requests if r.status == 429),
                "announcements": len(fake.announcements),
                "early_requests": len(fake.early_requests()),
                "early_after_announcement_ms": sorted(
                    round(
                        min(
                            (r.at - a.sent_at) * 1000
                            for a in fake.announcements
                            if a.sent_at <= r.at < a.until
                        ),
                        1,
                    )
                    for r in fake.early_requests()
                )[:: max(1, len(fake.early_requests()) // 20)],
            }
        )

    async def ids(request: web.Request) -> web.Response:
        """Every user id, or a page of them (``?offset=&limit=``)."""
        all_ids = users.ids()
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", str(len(all_ids))))
        return web.Response(
            body=jsonutil.dumps(all_ids[offset : offset + limit]), content_type="application/json"
        )

    return [
        web.post("/_fake/modify", modify),
        web.post("/_fake/faults", faults),
        web.get("/_fake/stats", stats),
        web.get("/_fake/ids", ids),
    ]


async def serve(
    provider_type: str, count: int, port: int, token: str, record: bool, plain: bool, rate: int | None
) -> None:
    dialect = DIALECTS[provider_type]()
    users = LazyUsers(dialect, count)
    fake = FakeProvider(dialect=dialect, token=token, users=users, plain=plain, rate_limit=rate)  # type: ignore[arg-type]
    if not record:  # a 100k-request benchmark should not grow the fake's memory
        fake.requests = _Discard()  # type: ignore[assignment]
    original = dialect.routes

    def routes(f: FakeProvider) -> list[web.RouteDef]:
        return [*original(f), *control_routes(f, users)]

    dialect.routes = routes  # type: ignore[method-assign]
    await fake.start(port)
    print(f"READY {fake.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.stop()


class _Discard(list):  # type: ignore[type-arg]
    """A request log that keeps only counts of 429s (for the load test)."""

    def append(self, item: Any) -> None:
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--type", default="zitadel", choices=sorted(DIALECTS))
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default=os.environ.get("SYNCD_FAKE_TOKEN", "fake-token"))
    p.add_argument("--record", action="store_true", help="keep every request (for arrival-time checks)")
    p.add_argument("--plain", action="store_true", help="serve bodies only: no faults, no request log")
    p.add_argument(
        "--rate", type=int, default=None, help="answer at most this many requests per second, 429 beyond"
    )
    args = p.parse_args()
    if args.plain and (args.record or args.rate is not None):
        p.error("--record and --rate need the middleware that --plain leaves out")
    if args.rate is not None and args.rate < 1:
        p.error("--rate must be at least 1")
    tune_gc()  # a long run allocating per request, like syncd's own
    asyncio.run(serve(args.type, args.users, args.port, args.token, args.record, args.plain, args.rate))


if __name__ == "__main__":
    main()
