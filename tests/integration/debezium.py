"""The real Debezium for the outbox tests: a PostgreSQL with ``wal_level=logical``
and Debezium's embedded engine (``pydbzengine``: Debezium's jars driven from
Python through JPype) configured from ``deploy/debezium/``.

The shared test server has ``wal_level=replica`` and must not be touched, so
``LogicalPostgres`` is a dedicated server from pgserver's binaries: pgserver
initialises it (and, as root, runs it as its own system user); it is then
restarted listening on 127.0.0.1 (Debezium's JDBC driver speaks TCP only)
with the logical-replication settings.

The engine's properties are built from ``deploy/debezium/application.properties``
the way Debezium Server builds them (``debezium.source.*`` → connector,
``debezium.transforms.*`` → ``transforms.*``, ``debezium.format.header.*`` →
``header.converter.*``), so the test runs the deployed configuration.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "debezium"
#: the keys a test fills in for its own server (everything else is used as deployed)
CONNECTION_KEYS = (
    "database.hostname",
    "database.port",
    "database.user",
    "database.password",
    "database.dbname",
    "slot.name",
    "offset.storage.file.filename",
)


# -- the deployed configuration ----------------------------------------------------------
def read_properties(path: Path) -> dict[str, str]:
    """A ``.properties`` file as written in deploy/ (``key=value`` lines, ``#`` comments)."""
    props: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {raw!r}"
        props[key.strip()] = value.strip()
    return props


def server_engine_properties(server: dict[str, str]) -> dict[str, str]:
    """Debezium Server's mapping of application.properties to engine properties
    (DebeziumServer.populateEngineProperties), for the keys deploy/ uses."""
    engine: dict[str, str] = {}
    for key, value in server.items():
        if key.startswith("debezium.source."):
            engine[key.removeprefix("debezium.source.")] = value
        elif key == "debezium.transforms" or key.startswith("debezium.transforms."):
            engine[key.removeprefix("debezium.")] = value
        elif key.startswith("debezium.format.header."):
            engine["header.converter." + key.removeprefix("debezium.format.header.")] = value
    return engine


def deployed_properties() -> dict[str, str]:
    return server_engine_properties(read_properties(DEPLOY / "application.properties"))


def connector_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "connector.json").read_text())
    return data


# -- PostgreSQL with logical decoding ----------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LogicalPostgres:
    """A dedicated PostgreSQL on 127.0.0.1 with ``wal_level=logical``; ``close()``
    stops it and deletes its directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="syncd-dbz-pg-"))
        # pgserver keeps its lock file there for the whole process: not under root
        os.environ.setdefault(
            "XDG_RUNTIME_DIR", str(Path(tempfile.gettempdir()) / f"syncd-dbz-run-{os.getuid()}")
        )
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver._commands import pg_ctl
        self._pg_ctl = pg_ctl
        self.pgdata = self.root / "pg"
        self.pgdata.mkdir()
        # initdb (and its permissions when run as root), started on a socket ...
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self.system_user = server.system_user
        # its exit hook would bookkeep in the data directory close() deletes
        atexit.unregister(server._cleanup)
        self._ctl("-w", "-m", "fast", "stop")
        # ... then again on TCP, with what logical replication needs
        self.port = free_port()
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# syncd's Debezium tests\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                "unix_socket_directories = ''\n"
                "wal_level = logical\n"
                "max_replication_slots = 8\n"
                "max_wal_senders = 8\n"
            )
        self._ctl("-w", "-l", str(self.pgdata / "log"), "start", timeout=30)

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        self._pg_ctl(list(args), pgdata=self.pgdata, user=self.system_user, timeout=timeout)

    def url(self, database: str = "postgres", user: str = "postgres", password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        try:
            self._ctl("-w", "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# -- Debezium's embedded engine ----------------------------------------------------------
_JVM_LOCK = threading.Lock()


def start_jvm(log_file: Path) -> None:
    """Start the JVM once per process, Debezium's log4j output going to ``log_file``
    (pydbzengine's own log4j config writes ./logs/ in the working directory)."""
    with _JVM_LOCK:
        import jpype

        if jpype.isJVMStarted():
            return
        config = log_file.with_name("log4j2.properties")
        config.write_text(
            "rootLogger.level=INFO\n"
            "appender.file.type=File\n"
            "appender.file.name=file\n"
            f"appender.file.fileName={log_file}\n"
            "appender.file.layout.type=PatternLayout\n"
            "appender.file.layout.pattern=%d [%p] [%t] %c - %m%n%throwable\n"
            "rootLogger.appenderRef.file.ref=file\n"
        )
        from pydbzengine.engine.jvm import ensure_jvm_started

        ensure_jvm_started(jvm_opts=["-Xmx512m", f"-Dlog4j2.configurationFile={config}"])


@dataclass
class Record:
    """One record as the engine hands it to a sink: topic, key, value and headers
    (header values decoded from the JSON header converter)."""

    topic: str
    key: str | None
    value: str | None
    headers: dict[str, Any]


@dataclass
class DebeziumRun:
    """An embedded engine running in a thread, collecting what it emits.

    Key and value use Debezium's ``SimpleString`` format (Kafka's
    StringConverter: what ``debezium.format.key|value=simplestring`` and the
    connector.json converters produce), headers the JSON header converter."""

    properties: dict[str, str]
    value_format: str = "SimpleString"
    records: list[Record] = field(default_factory=list)
    error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _engine: Any = None

    def start(self) -> DebeziumRun:
        import jpype
        from pydbzengine import BasePythonChangeHandler, DebeziumEngine

        formats = {
            name: jpype.JClass(f"io.debezium.engine.format.{name}") for name in ("SimpleString", "Json")
        }
        run = self

        class Collect(BasePythonChangeHandler):
            def handleJsonBatch(self, records: list[Any]) -> None:
                batch = [run._convert(r) for r in records]
                with run._lock:
                    run.records.extend(batch)

        class Engine(DebeziumEngine):
            def _build_engine(self) -> Any:
                from pydbzengine.engine._jvm import JDebeziumEngine, JProperties

                props = JProperties()
                for key, value in self.properties.items():
                    props.setProperty(key, value)
                return (
                    JDebeziumEngine.create(
                        formats["SimpleString"], formats[run.value_format], formats["Json"]
                    )
                    .using(props)
                    .notifying(self.consumer)
                    .build()
                )

        self._engine = Engine(self.properties, Collect())
        self._thread = threading.Thread(target=self._run, name="debezium-engine", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._engine.run()
        except BaseException as exc:  # the engine's own failure, reported by the test
            self.error = exc

    @staticmethod
    def _convert(r: Any) -> Record:
        headers: dict[str, Any] = {}
        for h in r.headers():
            value = h.getValue()
            headers[str(h.getKey())] = None if value is None else json.loads(str(value))
        key, value = r.key(), r.value()
        return Record(
            topic=str(r.destination()),
            key=None if key is None else str(key),
            value=None if value is None else str(value),
            headers=headers,
        )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self.records)

    def stop(self, timeout: float = 30) -> None:
        if self._engine is not None and self.running:
            self._engine.close()
        if self._thread is not None:
            self._thread.join(timeout)
