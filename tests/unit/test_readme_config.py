"""README's configuration reference against the config models: every line
of its TOML block, commented or not, is valid TOML naming a key of the
table it sits in (for a provider, of its type), every key of every model
is listed, and the uncommented lines are a config syncd accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from syncd import config as config_mod
from syncd.config import Config, DaemonConfig, DatabaseConfig, LoggingConfig, OutboxConfig, SyncConfig
from syncd.configbase import ProviderBase
from syncd.providers import REGISTRY

README = Path(__file__).resolve().parents[2] / "README.md"
TABLES: dict[str, type[BaseModel]] = {
    "database": DatabaseConfig,
    "sync": SyncConfig,
    "daemon": DaemonConfig,
    "logging": LoggingConfig,
    "outbox": OutboxConfig,
}
#: Config's keys that are tables, or not configuration
NOT_KEYS = {"database", "sync", "daemon", "logging", "outbox", "providers", "source", "notes"}
KEY_LINE = re.compile(r"^(?:#\s*)?([a-z_]+)\s*=\s*")


def reference_block() -> str:
    section = README.read_text().split("\n## Configuration\n", 1)[1]
    return section.split("```toml\n", 1)[1].split("\n```", 1)[0]


def provider_models() -> dict[str, type[BaseModel]]:
    return {name: ptype.config for name, ptype in REGISTRY.items()}


def key_lines() -> list[tuple[str, str | None, str]]:
    """(table, provider type, line) of each line that sets a key, commented or not."""
    chunks: list[tuple[str, list[str]]] = [("", [])]
    for raw in reference_block().splitlines():
        line = raw.strip()
        if line == "[[providers]]" or re.fullmatch(r"\[[a-z]+\]", line):
            chunks.append((line.strip("[]"), []))
        elif KEY_LINE.match(line):
            chunks[-1][1].append(line)
    out = []
    for table, lines in chunks:
        types = [tomllib.loads(line)["type"] for line in lines if line.startswith("type =")]
        ptype = types[0] if types else None
        out += [(table, ptype, line) for line in lines]
    return out


def model_for(table: str, ptype: str | None) -> type[BaseModel]:
    if table == "providers":
        assert ptype, "a [[providers]] table sets type before any type-specific key"
        return provider_models()[ptype]
    return TABLES[table] if table else Config


@pytest.mark.parametrize("entry", key_lines(), ids=lambda e: f"{e[0] or 'top'}:{e[2][:40]}")
def test_every_line_is_valid_toml_naming_a_key_of_its_table(entry):
    table, ptype, line = entry
    text = line[1:].strip() if line.startswith("#") else line
    parsed = tomllib.loads(text)  # an inline comment after the value is TOML too
    [key] = parsed
    model = model_for(table, ptype)
    assert key in model.model_fields and key not in NOT_KEYS, f"{key!r} is no key of {model.__name__}"


def test_every_key_of_every_model_is_listed():
    listed: dict[str, set[str]] = {}
    for table, ptype, line in key_lines():
        key = KEY_LINE.match(line).group(1)  # type: ignore[union-attr]
        listed.setdefault(ptype or table, set()).add(key)
    missing = {}
    for table, model in {**TABLES, "": Config}.items():
        left = set(model.model_fields) - NOT_KEYS - listed.get(table, set())
        if left:
            missing[table or "top level"] = sorted(left)
    every_provider = set().union(*(keys for name, keys in listed.items() if name in provider_models()))
    for name, model in provider_models().items():
        common = set(ProviderBase.model_fields)
        own = set(model.model_fields) - common - {"type"}
        left = (own - listed.get(name, set())) | (common - every_provider)
        if left:
            missing[name] = sorted(left)
    assert not missing, f"keys missing from README's configuration reference: {missing}"


def test_the_uncommented_lines_are_a_config_syncd_accepts():
    data: dict[str, Any] = tomllib.loads(reference_block())
    cfg = config_mod.from_dict(data, source="README.md")
    assert {p.type for p in cfg.providers} == set(provider_models())  # type: ignore[attr-defined]
