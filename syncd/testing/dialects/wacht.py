"""The Wacht dialect: both body shapes (Wacht's own user on even n, a SCIM 2
User on odd n), both error shapes, secrets in the body (to prove redaction)."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from syncd import jsonutil
from syncd.testing.dialects.scim import CORE, scim_error, scim_routes
from syncd.testing.fake import FakeProvider

CONNECTION = "7309876543210000"
FIRST = ["Jane", "John", "Ada", "Grace", "Linus", "Margaret"]
LAST = ["Doe", "Roe", "Lovelace", "Hopper", "Torvalds", "Hamilton"]


def wacht_user(n: int) -> dict[str, Any]:
    uid = str(7310295864387584 + n)
    first, last = FIRST[n % len(FIRST)], LAST[(n // len(FIRST)) % len(LAST)]
    email = f"{first.lower()}.{last.lower()}{n}@acme.com"
    email_id, phone_id = str(7310295864380001 + 10 * n), str(7310295864380002 + 10 * n)
    primary = {
        "id": email_id,
        "email": email,
        "is_primary": True,
        "verified": True,
        "verified_at": "2025-11-02T09:14:11Z",
        "verification_strategy": "otp",
    }
    phone = {
        "id": phone_id,
        "phone_number": f"555{n:04d}",
        "country_code": "US",
        "verified": True,
        "verified_at": "2025-11-02T09:15:00Z",
    }
    authenticator = {
        "id": str(7310295864380005 + 10 * n),
        "created_at": "2025-11-03T10:00:00Z",
        "totp_secret": f"TOTPSECRET{n}DONOTSTORE",
        "otp_url": f"otpauth://totp/Acme:{first}?secret=TOTPSECRET{n}DONOTSTORE&issuer=Acme",
    }
    return {
        "id": uid,
        "first_name": first,
        "last_name": last,
        "username": f"{first.lower()}{n}",
        "availability": "available",
        "has_profile_picture": "false",
        "profile_picture_url": "",
        "primary_email_address_id": email_id,
        "primary_phone_number_id": phone_id,
        "primary_email_address": primary,
        "primary_phone_number": phone,
        "second_factor_policy": "none",
        "user_email_addresses": [
            primary,
            {
                **primary,
                "id": email_id + "9",
                "email": f"{first.lower()}{n}@home.example",
                "is_primary": False,
                "verified": False,
                "verified_at": "",
            },
        ],
        "user_phone_numbers": [phone],
        "email_addresses": [primary],
        "phone_numbers": [phone],
        "social_connections": [
            {
                "id": str(7310295864380004 + 10 * n),
                "provider": "x_oauth",
                "email_address": email,
                "first_name": first,
                "last_name": last,
                "access_token": f"OAUTH-ACCESS-{n}-DO-NOT-STORE",
                "refresh_token": f"OAUTH-REFRESH-{n}-DO-NOT-STORE",
            }
        ],
        "user_authenticator": authenticator,
        "authenticators": [authenticator],
        "backup_codes_generated": True,
        "backup_codes": [f"BACKUP-{n}-1-DO-NOT-STORE", f"BACKUP-{n}-2-DO-NOT-STORE"],
        "has_password": True,
        "has_passkeys": False,
        "public_metadata": {"department": "engineering", "cost_center": 42},
        "segments": [
            {
                "id": "7310295864380006",
                "created_at": "2025-10-01T00:00:00Z",
                "updated_at": "2025-10-01T00:00:00Z",
                "deployment_id": CONNECTION,
                "name": "beta-testers",
                "type": "user",
            }
        ],
    }


def wacht_scim_user(n: int) -> dict[str, Any]:
    uid = str(7310295864387584 + n)
    first, last = FIRST[n % len(FIRST)], LAST[(n // len(FIRST)) % len(LAST)]
    return {
        "schemas": [CORE],
        "id": uid,
        "externalId": f"00u{n:05d}",
        "meta": {
            "resourceType": "User",
            "created": "2025-11-02T09:14:11Z",
            "lastModified": "2026-01-15T17:40:03Z",
            "location": f"https://auth.acme.example/scim/v2/{CONNECTION}/Users/{uid}",
        },
        "userName": f"{first.lower()}{n}",
        "name": {"formatted": f"{first} {last}", "familyName": last, "givenName": first},
        "displayName": f"{first} {last}",
        "emails": [{"value": f"{first.lower()}.{last.lower()}{n}@acme.com", "type": "work", "primary": True}],
        "active": True,
    }


class WachtDialect:
    type = "wacht"

    def routes(self, fake: FakeProvider) -> list[web.RouteDef]:
        return scim_routes(fake, f"/scim/v2/{CONNECTION}/Users")

    def make_user(self, n: int) -> dict[str, Any]:
        return wacht_user(n) if n % 2 == 0 else wacht_scim_user(n)

    def user_id(self, doc: dict[str, Any]) -> str:
        return str(doc["id"])

    def modify(self, doc: dict[str, Any], n: int = 1) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        if "first_name" in doc:
            doc["first_name"] = doc["first_name"].split(" (")[0] + f" (v{n})"
        else:
            doc["name"]["givenName"] = doc["name"]["givenName"].split(" (")[0] + f" (v{n})"
            doc["displayName"] = f"{doc['name']['givenName']} {doc['name']['familyName']}"
            doc["meta"]["lastModified"] = "2026-03-01T12:00:00Z"
        return doc

    def error_body(self, status: int, message: str) -> tuple[bytes, str]:
        if status == 404:  # the deployed SCIM handler's shape (status as a number)
            return scim_error(status, message, status_as_string=False)
        return jsonutil.dumps({"errors": [{"message": message, "code": status}]}).encode(), "application/json"

    def provider_config(self, name: str, base_url: str, token_env: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "wacht",
            "base_url": base_url,
            "token_env": token_env,
            "connection_id": CONNECTION,
        }


DIALECT = WachtDialect
