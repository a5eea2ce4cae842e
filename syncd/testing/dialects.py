"""Fake-provider dialects by provider type."""

from __future__ import annotations

from syncd.testing.fake import Dialect, FakeProvider
from syncd.testing.fake_zitadel import ZitadelDialect

DIALECTS: dict[str, type] = {"zitadel": ZitadelDialect}


def fake(provider_type: str, **kw: object) -> FakeProvider:
    return FakeProvider(dialect=DIALECTS[provider_type](), **kw)  # type: ignore[arg-type]


__all__ = ["DIALECTS", "Dialect", "fake"]
