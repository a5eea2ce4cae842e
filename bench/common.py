"""Shared benchmark plumbing: a fake provider in its own process, a database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
from collections.abc import AsyncIterator

import asyncpg

from syncd import embedded


@contextlib.asynccontextmanager
async def fake_process(
    provider_type: str, users: int, *, record: bool = False, plain: bool = False, rate: int | None = None
) -> AsyncIterator[str]:
    """``syncd.testing.serve`` in a child process: client and server don't share
    a loop. ``rate``: requests per second it answers, 429 beyond."""
    args = [sys.executable, "-m", "syncd.testing.serve", "--type", provider_type, "--users", str(users)]
    if record:
        args.append("--record")
    if plain:
        args.append("--plain")
    if rate is not None:
        args += ["--rate", str(rate)]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 300)).decode().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"fake provider did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        proc.terminate()
        await proc.wait()


@contextlib.asynccontextmanager
async def fresh_database(name: str = "syncd_bench") -> AsyncIterator[str]:
    """``$SYNCD_DATABASE_URL`` when set, else the embedded PostgreSQL; a fresh database."""
    admin_url = os.environ.get("SYNCD_DATABASE_URL")
    server = None
    if not admin_url:
        server = await asyncio.to_thread(embedded.start, os.environ.get("SYNCD_STATE_DIR", ".syncd/bench"))
        admin_url = embedded.url(server)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(admin_url)
    yield urlunsplit(parts._replace(path="/" + name))


def cpu_seconds_by_process() -> dict[str, float]:
    """CPU time (user + system) so far of the processes that share this
    machine in a benchmark: this one (syncd), the fake provider (a
    ``syncd.testing.serve`` process) and every PostgreSQL process. Read from
    /proc, so Linux only ({} elsewhere); a remote database shows as 0."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    me = os.getpid()
    out = {"syncd": 0.0, "provider": 0.0, "postgres": 0.0}
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                stat = fh.read()
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        if int(pid) == me:
            key = "syncd"
        elif "syncd.testing.serve" in cmdline:
            key = "provider"
        elif comm == "postgres" or cmdline.startswith("postgres"):
            key = "postgres"
        else:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        out[key] += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def rss_mb() -> float:
    """Resident set size of this process now (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    cpu = "unknown cpu"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"
