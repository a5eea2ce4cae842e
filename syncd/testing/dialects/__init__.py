"""Fake-provider dialects, one module per provider type, named like the
provider's module (``syncd/testing/dialects/<type>.py`` declaring ``DIALECT``):
the list of types is the providers' registry, nothing to register here."""

from __future__ import annotations

from importlib import import_module

from syncd.providers.registry import PROVIDER_TYPES
from syncd.testing.fake import Dialect, FakeProvider


def _dialect(provider_type: str) -> type:
    return import_module(f"syncd.testing.dialects.{provider_type}").DIALECT  # type: ignore[no-any-return]


DIALECTS: dict[str, type] = {provider_type: _dialect(provider_type) for provider_type in PROVIDER_TYPES}


def fake(provider_type: str, **kw: object) -> FakeProvider:
    dialect = DIALECTS[provider_type]()
    f = FakeProvider(dialect=dialect, **kw)  # type: ignore[arg-type]
    f.response_headers.update(getattr(dialect, "response_headers", {}))
    return f


__all__ = ["DIALECTS", "Dialect", "fake"]
