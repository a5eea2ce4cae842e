"""Test fixtures: a real PostgreSQL and real HTTP fake providers.

PostgreSQL comes from ``$SYNCD_TEST_DATABASE_URL`` when set, else an
embedded server (pgserver) started once per session. The schema is built
once into a template database; each test gets a fresh copy
(``CREATE DATABASE … TEMPLATE``), so tests are isolated and fast.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
import structlog

from syncd import config as config_mod
from syncd import embedded, redact
from syncd.config import Config
from syncd.engine import Engine
from syncd.store import Store
from syncd.testing.dialects import fake
from syncd.testing.fake import FakeProvider

TOKEN_ENV = "SYNCD_TEST_TOKEN"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(autouse=True)
def _no_secrets_from_earlier_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no registered secrets: a secret an earlier test
    loaded (a token such as "wrong") would be scrubbed from this test's text."""
    monkeypatch.setattr(redact, "_SECRET_VALUES", ())


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """An admin URL of a PostgreSQL server to create test databases on."""
    url = os.environ.get("SYNCD_TEST_DATABASE_URL")
    if url:
        yield url
        return
    # its data (54-70 MB) goes with the session, however the session ends; at
    # exit too, after pgserver's own exit handler (registered later, so run
    # earlier), which takes its lock file under state/run once more
    state = tempfile.mkdtemp(prefix="syncd-test-pg-")
    atexit.register(shutil.rmtree, state, ignore_errors=True)
    try:
        server = embedded.start(state)
        try:
            yield embedded.url(server)
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_db(pg_url: str) -> AsyncIterator[str]:
    name = f"syncd_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        store = await Store.connect(with_database(pg_url, name), min_size=1, max_size=2)
        await store.migrate()
        await store.close()
        yield name
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def _scratch_database(
    pg_url: str, prefix: str, template: str | None, options: str = ""
) -> AsyncIterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(
            f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "") + options
        )
        yield with_database(pg_url, name)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db_url(pg_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh database with the schema, copied from the template."""
    async for url in _scratch_database(pg_url, "syncd_t", template_db):
        yield url


@pytest.fixture
async def icu_store(pg_url: str) -> AsyncIterator[Store]:
    """A migrated database whose default collation is ICU's en-US, where
    "a" < "B" (a common production setup; the embedded server has no ICU:
    the test is skipped there)."""
    admin = await asyncpg.connect(pg_url)
    try:
        icu = await admin.fetchval(
            "SELECT current_setting('server_version_num')::int >= 150000"  # LOCALE_PROVIDER
            " AND EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'en-US-x-icu')"
        )
    finally:
        await admin.close()
    if not icu:
        pytest.skip("this PostgreSQL can't create an ICU en-US database (built without ICU, or before 15)")
    icu_options = " ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    async for url in _scratch_database(pg_url, "syncd_icu", "template0", icu_options):
        store = await Store.connect(url, min_size=1, max_size=5)
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()


@pytest.fixture
async def empty_db_url(pg_url: str) -> AsyncIterator[str]:
    """A database with no schema at all (for migration tests)."""
    async for url in _scratch_database(pg_url, "syncd_e", None):
        yield url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await Store.connect(db_url, min_size=1, max_size=5)
    yield s
    await s.close()


@pytest.fixture
async def zitadel(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    f = fake("zitadel")
    monkeypatch.setenv(TOKEN_ENV, f.token)
    async with f:
        yield f


@pytest.fixture
def make_config(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Config]:
    """Build a Config syncing from the given fakes (one provider each)."""

    def build(
        *fakes: tuple[str, FakeProvider] | FakeProvider,
        sync: dict[str, Any] | None = None,
        **provider_overrides: Any,
    ) -> Config:
        providers = []
        for item in fakes:
            name, f = item if isinstance(item, tuple) else (item.dialect.type, item)
            monkeypatch.setenv(TOKEN_ENV, f.token)
            # one request per user unless a test asks for batches: the by-id path's
            # faults target one user's URL (the batched path has its own tests)
            table = {**f.provider_config(name, token_env=TOKEN_ENV), "refresh": "by_id"}
            providers.append({**table, **provider_overrides})
        data = {
            "database": {"url": db_url},
            "sync": {"delete_confirmations": 1, "max_delete_fraction": 1.0, **(sync or {})},
            "providers": providers,
        }
        return config_mod.from_dict(data, source="<test>")

    return build


@pytest.fixture
async def provider(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeProvider]:
    """A running fake of the type a test is parametrized with (``indirect``;
    ``scim`` when it is not), its token in ``TOKEN_ENV``. A module's
    ``LISTING_CAP`` caps the fake's list pages (so a listing has pages)."""
    f = fake(getattr(request, "param", "scim"))
    cap = getattr(request.module, "LISTING_CAP", None)
    if cap is not None:
        f.listing.cap = cap
    async with f:
        monkeypatch.setenv(TOKEN_ENV, f.token)
        yield f


@pytest.fixture
async def engine_for(store: Store) -> AsyncIterator[Callable[..., Any]]:
    engines: list[Engine] = []

    async def build(cfg: Config, **kw: Any) -> Engine:
        e = Engine(store, cfg, **kw)
        await e.start()
        engines.append(e)
        return e

    yield build
    for e in engines:
        await e.close()


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` (sync or async) until truthy; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


#: retries that don't slow a test down
FAST = {"backoff_base": "10ms", "backoff_cap": "100ms", "read_timeout": "2s"}


async def seeded(store, fake, make_config, engine_for, n=20, name="zitadel", sync=None, **over):
    """``n`` users on ``fake``, registered as targets of an engine with FAST retries."""
    ids = fake.seed(n)
    engine = await engine_for(make_config(fake, sync=sync, **{**FAST, **over}))
    await store.add_targets(name, ids)
    return ids, engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def spawn_syncd(*args: str, **kw: Any) -> asyncio.subprocess.Process:
    """``python -m syncd *args`` as a child process (``kw``: its stdout, stderr, env)."""
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "syncd", *args, **kw)


# -- `syncd run` as a process -----------------------------------------------------------
class DaemonProcess:
    """A `syncd run` started by ``start_daemon``: its admin server and its log."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, log_path: Path) -> None:
        self.proc, self.port, self.log_path = proc, port, log_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as s, s.get(self.url + path) as r:
            return r.status, await r.text()

    async def ready(self) -> bool:
        try:
            return (await self.get("/readyz"))[0] == 200
        except aiohttp.ClientError:
            return False

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


@pytest.fixture
async def start_daemon(tmp_path):
    procs: list[DaemonProcess] = []

    async def start(
        db_url: str,
        fake_url: str,
        *,
        name: str = "d",
        extra: str = "",
        sync: str = "",
        daemon: str = "",
        env: dict[str, str] | None = None,
        ready: bool = True,
        refresh: str = "by_id",
        ptype: str = "zitadel",
        interval: str = "1h",
    ) -> DaemonProcess:
        port = free_port()
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            f"""
[database]
url = "{db_url}"
[daemon]
listen = "127.0.0.1:{port}"
replica = "{name}"
poll_interval = "200ms"
{daemon}
[sync]
batch_size = 100
lease = "3s"
delete_confirmations = 1
max_delete_fraction = 1.0
{sync}
[[providers]]
name = "corp"
type = "{ptype}"
base_url = "{fake_url}"
token_env = "{TOKEN_ENV}"
concurrency = 8
interval = "{interval}"
refresh = "{refresh}"
{extra}
"""
        )
        log_path = tmp_path / f"{name}.log"
        with log_path.open("w") as log_file:
            proc = await spawn_syncd(
                "run",
                "--config",
                str(cfg),
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        d = DaemonProcess(proc, port, log_path)
        procs.append(d)
        if ready:
            await wait_for(d.ready, timeout=30)
        return d

    yield start
    for d in procs:
        if d.proc.returncode is None:
            d.proc.kill()
            await d.proc.wait()
