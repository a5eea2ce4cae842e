"""Provider adapters, by config ``type``. Adding one: write its module, add a line here."""

from __future__ import annotations

from syncd.providers.base import Provider
from syncd.providers.zitadel import ZitadelProvider

REGISTRY: dict[str, type] = {
    "zitadel": ZitadelProvider,
}

try:  # the other adapters land module by module
    from syncd.providers.wacht import WachtProvider

    REGISTRY["wacht"] = WachtProvider
except ImportError:  # pragma: no cover
    pass
try:
    from syncd.providers.fortanix import FortanixProvider

    REGISTRY["fortanix"] = FortanixProvider
except ImportError:  # pragma: no cover
    pass
try:
    from syncd.providers.webex import WebexProvider

    REGISTRY["webex"] = WebexProvider
except ImportError:  # pragma: no cover
    pass
try:
    from syncd.providers.scim import ScimProvider

    REGISTRY["scim"] = ScimProvider
except ImportError:  # pragma: no cover
    pass

__all__ = ["REGISTRY", "Provider"]
