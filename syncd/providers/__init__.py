"""Provider types (one module each, listed once in ``registry.MODULES``) and
how a configured provider is connected (``connect``)."""

from __future__ import annotations

from syncd.providers.base import Adapter, ProviderType
from syncd.providers.check import CheckFailed
from syncd.providers.connect import Connection, connect
from syncd.providers.fetch import FetchResult, fetch_user
from syncd.providers.registry import PROVIDER_TYPES, REGISTRY

__all__ = [
    "PROVIDER_TYPES",
    "REGISTRY",
    "Adapter",
    "CheckFailed",
    "Connection",
    "FetchResult",
    "ProviderType",
    "connect",
    "fetch_user",
]
