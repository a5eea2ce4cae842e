"""The ``syncd`` parser and the dispatch to a command: logging, the config,
and how errors become exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from syncd import __version__, logs
from syncd import config as config_mod
from syncd.cli import (
    check,
    deletions,
    demo,
    discover,
    export,
    migrate,
    outbox,
    pause,
    resync,
    run,
    status,
    targets,
)
from syncd.cli.command import EXIT_CONFIG, EXIT_FAIL, EXIT_USAGE, Handler
from syncd.config import Config
from syncd.configbase import listen_address
from syncd.errors import ConfigError, ConfigNotFound, StoreUnavailable, SyncdError, UnknownProvider
from syncd.process import tune_gc

#: the command groups, in the order `syncd --help` lists them; each adds its
#: subcommand's parser and sets its handler
GROUPS = (migrate, run, resync, discover, targets, status, check, demo, deletions, pause, outbox, export)
CONFIG_HELP = "config file (default: $SYNCD_CONFIG, then ./syncd.toml)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description="Asynchronous identity sync daemon.")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    # before the command (`syncd --config x.toml status`) or after it; after wins
    parser.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        # SUPPRESS: not given here, it leaves the value given before the command
        p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
        return p

    for group in GROUPS:
        group.add_parser(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse can't take positionals after options in a subcommand: ids may come anywhere
    if args.command == "targets" and extra and not any(e.startswith("-") for e in extra):
        args.user_ids = [*args.user_ids, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        cfg = Config() if args.command == "demo" else config_mod.load(args.config)
    except ConfigNotFound as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(f"syncd: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    for note in cfg.notes:
        print(f"syncd: warning: {note}", file=sys.stderr)
    if getattr(args, "listen", None):
        try:
            args.listen = listen_address(args.listen)
        except ValueError as exc:
            print(f"syncd: --listen: {exc}", file=sys.stderr)
            return EXIT_USAGE
    daemon = args.command == "run"
    logs.configure(
        cfg.logging.level if daemon else "warning",
        cfg.logging.format,
        stream=sys.stdout if daemon else sys.stderr,
    )
    if args.command in ("run", "check"):
        logs.warn_config(cfg)  # e.g. credentials over http:// to a loopback host
    if args.command in ("run", "resync", "demo"):
        tune_gc()
    handler: Handler = args.handler
    try:
        return asyncio.run(handler(cfg, args))
    except UnknownProvider as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"syncd: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreUnavailable as exc:
        print(f"syncd: database unavailable: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except SyncdError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
