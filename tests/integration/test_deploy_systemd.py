"""The systemd recipe as written, run as the unprivileged user it gets
(real PostgreSQL, the fake ZITADEL on 127.0.0.1).

Here is no systemd to start the unit, so the test does what systemd does
for it: the files are installed with the modes deploy/README.md gives
(root-only), each ``LoadCredential=`` source is copied into a credentials
directory that only the service's user can read (as systemd does for a
``DynamicUser``), and the unit's own ``ExecStartPre=`` and ``ExecStart=``
lines run as ``nobody`` with ``%d`` and ``$CREDENTIALS_DIRECTORY`` set. The
old recipe (the config read from /etc/syncd directly) fails the same way a
real service did: the dynamic user cannot read it."""

from __future__ import annotations

import asyncio
import configparser
import os
import pwd
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.integration.conftest import free_port, wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root, to run as another user"
)


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "syncd.service")
    return parser["Service"]


def credentials() -> dict[str, str]:
    """LoadCredential= lines: name → source path (configparser keeps the last
    of repeated keys, so they are read from the text)."""
    out = {}
    for line in (DEPLOY / "syncd.service").read_text().splitlines():
        if line.startswith("LoadCredential="):
            name, source = line.split("=", 1)[1].split(":", 1)
            out[name] = source
    return out


def reachable_by_nobody(db_url: str) -> bool:
    """The test's PostgreSQL over TCP (an embedded server's socket sits in its
    private data directory, which another user cannot enter)."""
    host = urlsplit(db_url).hostname
    return bool(host) and not db_url.split("?", 1)[-1].startswith("host=/")


@pytest.fixture
def tmp_path():
    """A directory another user can enter (pytest's own sits in a root-only one)."""
    with tempfile.TemporaryDirectory(prefix="syncd-systemd-") as path:
        os.chmod(path, 0o755)
        yield Path(path)


@pytest.fixture
def installed(tmp_path, db_url, zitadel):
    """/etc/syncd as deploy/README.md installs it (root, 0700/0600), and the
    credentials directory systemd makes from it for the service's user."""
    if not reachable_by_nobody(db_url):
        pytest.skip("the embedded PostgreSQL is not reachable by another user")
    nobody = pwd.getpwnam("nobody")
    etc = tmp_path / "etc-syncd"
    (etc / "credentials").mkdir(parents=True)
    etc.chmod(0o700)
    (etc / "credentials").chmod(0o700)
    config = (DEPLOY / "syncd.toml.example").read_text()
    config = config.replace('base_url = "https://corp.zitadel.cloud"', f'base_url = "{zitadel.url}"')
    sources = {
        "/etc/syncd/syncd.toml": config,
        "/etc/syncd/credentials/zitadel-token": zitadel.token,
        "/etc/syncd/credentials/database-url": db_url,
    }
    creds = tmp_path / "credentials"  # what systemd makes: the service user's, 0500/0400
    creds.mkdir()
    for name, source in credentials().items():
        assert source in sources, f"the recipe installs no {source}"
        installed_at = etc / source.removeprefix("/etc/syncd/")
        installed_at.write_text(sources[source])
        installed_at.chmod(0o600)
        copy = creds / name
        shutil.copyfile(installed_at, copy)
        os.chown(copy, nobody.pw_uid, nobody.pw_gid)
        copy.chmod(0o400)
    os.chown(creds, nobody.pw_uid, nobody.pw_gid)
    creds.chmod(0o500)
    state = tmp_path / "state"  # StateDirectory=syncd, the service's own
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    return etc, creds, state, nobody


def world_runnable(path: Path) -> bool:
    """Another user may run it: every directory on its way searchable by all."""
    path = path.resolve()
    return path.is_file() and all(p.stat().st_mode & 0o001 for p in (path, *path.parents))


def interpreter() -> str:
    """This Python, or the system's of the same version where this one lives
    in a directory another user can't enter (pyenv under /root): run with this
    environment's packages on its path, it is the same syncd."""
    minor = f"python3.{sys.version_info.minor}"
    for candidate in (Path(sys.executable), Path("/usr/bin") / minor, Path("/usr/local/bin") / minor):
        if world_runnable(candidate):
            return str(candidate)
    pytest.skip("no Python interpreter another user may run")


def python_path() -> str:
    """The repository (syncd itself) and this environment's site-packages."""
    repo = Path(__file__).resolve().parents[2]
    return os.pathsep.join([str(repo), *(p for p in sys.path if p.endswith("site-packages"))])


def command(line: str, creds: Path) -> list[str]:
    """An Exec line of the unit, %d resolved, the installed binary → syncd here."""
    argv = shlex.split(line.replace("%d", str(creds)))
    assert argv[0] == "/opt/syncd/bin/syncd"
    return [interpreter(), "-m", "syncd", *argv[1:]]


async def run_as(user: pwd.struct_passwd, argv: list[str], creds: Path, state: Path, **env: str):
    def drop() -> None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(state),
        "CREDENTIALS_DIRECTORY": str(creds),
        "SYNCD_STATE_DIR": str(state),
        "SYNCD_LOGGING_FORMAT": "json",
        "PYTHONPATH": python_path(),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=state,
        env=environment,
        preexec_fn=drop,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_the_units_commands_run_as_an_unprivileged_user_from_the_installed_files(installed, store):
    _, creds, state, nobody = installed
    unit = service()
    assert "--config %d/syncd.toml" in unit["ExecStart"]
    migrate = await run_as(nobody, command(unit["ExecStartPre"], creds), creds, state)
    out, _ = await asyncio.wait_for(migrate.communicate(), 60)
    assert migrate.returncode == 0, out.decode()
    check = await run_as(
        nobody, [interpreter(), "-m", "syncd", "check", "--config", str(creds / "syncd.toml")], creds, state
    )
    out, _ = await asyncio.wait_for(check.communicate(), 60)
    assert check.returncode == 0 and "credentials accepted" in out.decode(), out.decode()

    port = free_port()
    daemon = await run_as(
        nobody, command(unit["ExecStart"], creds), creds, state, SYNCD_LISTEN=f"127.0.0.1:{port}"
    )
    try:

        async def ready() -> bool:
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{port}/readyz") as answer,
                ):
                    return answer.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, timeout=30)
    finally:
        daemon.terminate()
        await asyncio.wait_for(daemon.communicate(), 60)
    assert daemon.returncode == 0


async def test_the_old_recipe_reading_etc_syncd_directly_fails_as_the_service_user(installed, store):
    """What the unit did before: the dynamic user can't read a root-only config."""
    etc, creds, state, nobody = installed
    argv = [interpreter(), "-m", "syncd", "migrate", "--config", str(etc / "syncd.toml")]
    proc = await run_as(nobody, argv, creds, state)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0, out.decode()
