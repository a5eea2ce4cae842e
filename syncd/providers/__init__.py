"""Provider adapters, by config ``type``. Adding one: write its module, add a line here."""

from __future__ import annotations

from typing import Any

from syncd.providers.base import Provider
from syncd.providers.fortanix import FortanixProvider
from syncd.providers.scim import ScimProvider
from syncd.providers.wacht import WachtProvider
from syncd.providers.webex import WebexProvider
from syncd.providers.zitadel import ZitadelProvider

REGISTRY: dict[str, Any] = {
    "zitadel": ZitadelProvider,
    "wacht": WachtProvider,
    "fortanix": FortanixProvider,
    "webex": WebexProvider,
    "scim": ScimProvider,
}

__all__ = ["REGISTRY", "Provider"]
