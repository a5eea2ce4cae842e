"""Every provider type, from one list: the config union, the list of types
in error messages, the adapters and the fakes' dialects all derive from it."""

from __future__ import annotations

from importlib import import_module

from syncd.providers.base import ProviderType

#: one line per provider type: the module under syncd/providers/ that declares
#: it (``PROVIDER = ProviderType(...)``), in the order error messages list them
MODULES = (
    "zitadel",
    "wacht",
    "fortanix",
    "webex",
    "scim",
)


def _declared(module: str) -> ProviderType:
    declared = getattr(import_module(f"syncd.providers.{module}"), "PROVIDER", None)
    if not isinstance(declared, ProviderType) or declared.name != module:
        raise TypeError(
            f"syncd.providers.{module} must declare PROVIDER = ProviderType(name={module!r}, ...)"
        )
    return declared


REGISTRY: dict[str, ProviderType] = {module: _declared(module) for module in MODULES}
#: the config ``type`` values
PROVIDER_TYPES: tuple[str, ...] = tuple(REGISTRY)
