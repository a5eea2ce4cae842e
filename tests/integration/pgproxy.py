"""A TCP proxy in front of PostgreSQL that a test can cut, to show what a
database restart does to the daemon (every connection is dropped and new
ones are refused until it is restored), or freeze, to show a blackholed
database (connections stay open, nothing goes through, new ones hang)."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit


class PgProxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
        self.unix = host if host.startswith("/") else None
        self.host, self.port = host, parts.port or 5432
        self.server: asyncio.Server | None = None
        self.listen_port = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.database = parts.path.lstrip("/")
        self.thawed = asyncio.Event()
        self.thawed.set()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.listen_port}/{self.database}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)
        self.listen_port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop accepting and drop every open connection."""
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def restore(self) -> None:
        await self.start()

    def freeze(self) -> None:
        self.thawed.clear()

    async def stop(self) -> None:
        self.thawed.set()  # let blocked pipes see their closed ends
        if self.server is not None:
            await self.cut()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        await self.thawed.wait()
        try:
            if self.unix:
                up_r, up_w = await asyncio.open_unix_connection(f"{self.unix}/.s.PGSQL.{self.port}")
            else:
                up_r, up_w = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self.writers.update((writer, up_w))
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.thawed.wait()
                if writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()
