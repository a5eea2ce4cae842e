"""The Webex dialect of the fake provider: SCIM 2 with Webex's extensions."""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from syncd import jsonutil
from syncd.testing.dialects.scim import CISCO, CORE, ENTERPRISE, bump, scim_error, scim_routes, scim_user
from syncd.testing.fake import FakeProvider


def webex_token_error(status: int, code: str, description: str) -> web.Response:
    """Webex's error shape: ``{"message", "errors": [{"description"}], "trackingId"}``."""
    body = {
        "message": "Invalid client credentials" if code == "invalid_client" else f"{code}: {description}",
        "errors": [{"description": description}],
        "trackingId": "FAKE_TRACKING",
    }
    # Webex answers a bad client or grant with 400 (its reference's "Bad Request")
    return web.json_response(body, status=400)


class WebexDialect:
    """Webex Identity SCIM: core + enterprise + Cisco extension, Webex errors,
    ``TrackingID`` headers and the refresh-token endpoint."""

    type = "webex"
    org_id = "0ae87ade-8c8a-4952-af08-318798958d0c"
    #: headers the fake adds to every response
    response_headers: ClassVar[dict[str, str]] = {"TrackingID": "ROUTER_FAKE-0000"}

    def routes(self, fake: FakeProvider) -> list[web.RouteDef]:
        async def access_token(request: web.Request) -> web.Response:
            # Webex reads the client's id and secret in the form (RFC 6749 §2.3.1 "post")
            return await fake.oauth.handle(fake, request, webex_token_error)

        routes = scim_routes(fake, f"/identity/scim/{self.org_id}/v2/Users")
        return [*routes, web.post("/v1/access_token", access_token)]

    def make_user(self, n: int) -> dict[str, Any]:
        doc = scim_user(n, f"https://webexapis.example/identity/scim/{self.org_id}/v2")
        doc["schemas"] = [CORE, CISCO, ENTERPRISE]
        doc["userType"] = "user"
        doc[ENTERPRISE]["manager"] = {"value": "b5717a4a-0169-43b2-ac3c-db20ba4e72cd", "displayName": "Admin"}
        # Webex answers accountStatus as an array in some answers, a string in others
        doc[CISCO] = {
            "accountStatus": ["active"] if n % 2 else "active",
            "sipAddresses": [
                {"value": f"user{n}@example.calls.webex.com", "type": "enterprise", "primary": True}
            ],
            "meta": {"organizationId": self.org_id},
        }
        return doc

    def user_id(self, doc: dict[str, Any]) -> str:
        return str(doc["id"])

    def modify(self, doc: dict[str, Any], n: int = 1) -> dict[str, Any]:
        return bump(doc, n)

    def error_body(self, status: int, message: str) -> tuple[bytes, str]:
        if status == 429:
            return b"", "application/json"  # Webex's 429 may have no body at all
        if status == 404:
            return scim_error(status, message)
        body = {"message": message, "errors": [{"description": message}], "trackingId": "ROUTER_FAKE"}
        return jsonutil.dumps(body).encode(), "application/json"

    def provider_config(self, name: str, base_url: str, token_env: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "webex",
            "base_url": base_url,
            "token_env": token_env,
            "org_id": self.org_id,
        }


DIALECT = WebexDialect
