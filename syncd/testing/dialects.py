"""Fake-provider dialects by provider type."""

from __future__ import annotations

from syncd.testing.fake import Dialect, FakeProvider
from syncd.testing.fake_fortanix import FortanixDialect
from syncd.testing.fake_scim import ScimDialect, WebexDialect
from syncd.testing.fake_wacht import WachtDialect
from syncd.testing.fake_zitadel import ZitadelDialect

DIALECTS: dict[str, type] = {
    "zitadel": ZitadelDialect,
    "wacht": WachtDialect,
    "fortanix": FortanixDialect,
    "webex": WebexDialect,
    "scim": ScimDialect,
}


def fake(provider_type: str, **kw: object) -> FakeProvider:
    f = FakeProvider(dialect=DIALECTS[provider_type](), **kw)  # type: ignore[arg-type]
    if provider_type == "webex":
        f.response_headers["TrackingID"] = "ROUTER_FAKE-0000"
    return f


__all__ = ["DIALECTS", "Dialect", "fake"]
