"""The Fortanix DSM dialect: session auth, compact timestamps, plain-text errors."""

from __future__ import annotations

import bisect
import copy
from typing import Any

from aiohttp import web

from syncd.testing.fake import FakeProvider
from syncd.testing.fake_listing import page

FIRST = ["Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger"]
LAST = ["Lovelace", "Turing", "Liskov", "Shannon", "Knuth", "Dijkstra"]
GROUP = "4c2b1f7e-9a3d-4e51-8c0a-2f6d7b8e9a10"


class FortanixDialect:
    type = "fortanix"

    def routes(self, fake: FakeProvider) -> list[web.RouteDef]:
        async def auth(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Basic {fake.token}":
                return web.Response(status=401, text="Invalid API key or credentials")
            return web.json_response(
                {
                    "token_type": "Bearer",
                    "expires_in": fake.token_lifetime,
                    "access_token": fake.issue_token(),
                    "entity_id": "a8d8f1a4-0000-4000-8000-000000000001",
                }
            )

        async def get_user(request: web.Request) -> web.Response:
            if not fake.authorized(request):
                return fake.error(401, "Unauthorized: session token expired or invalid")
            doc = fake.users.get(request.match_info["user_id"])
            if doc is None:
                return fake.error(404, "user not found")
            if request.query.get("with_groups") == "none":
                doc = {k: v for k, v in doc.items() if k not in ("groups", "explicit_groups")}
            return web.json_response(doc)

        async def list_users(request: web.Request) -> web.Response:
            """``GET /sys/v1/users``: keyset paging (``sort=user_id:asc`` and
            ``start`` = the last id of the previous page) or ``offset``, a bare
            JSON array; ``group_id`` lists that group's members only."""
            if not fake.authorized(request):
                return fake.error(401, "Unauthorized")
            limit = int(request.query.get("limit", "100"))
            start = request.query.get("start", "")
            ids = sorted(fake.users)
            group = request.query.get("group_id")
            if group:
                ids = [uid for uid in ids if group in (fake.users[uid].get("groups") or {})]
            begin = bisect.bisect_right(ids, start) if start else int(request.query.get("offset", "0"))
            listed = page(ids, begin, limit, fake.listing)
            return web.json_response([fake.users[uid] for uid in listed])

        return [
            web.post("/sys/v1/session/auth", auth),
            web.get("/sys/v1/users/{user_id}", get_user),
            web.get("/sys/v1/users", list_users),
        ]

    def make_user(self, n: int) -> dict[str, Any]:
        first, last = FIRST[n % len(FIRST)], LAST[(n // len(FIRST)) % len(LAST)]
        return {
            "account_role": ["ACCOUNTMEMBER", "PENDINGINVITE" if n % 11 == 5 else "STATEENABLED"],
            "created_at": "20240118T093015Z",
            "description": None,
            "email_verified": n % 4 != 1,
            "explicit_groups": {GROUP: ["GROUPADMINISTRATOR"]},
            "first_name": first,
            "groups": {GROUP: ["GROUPADMINISTRATOR"]},
            "has_account": True,
            "has_password": True,
            "last_logged_in_at": f"20260301T12{n % 60:02d}01Z",
            "last_name": last,
            "mfa_devices": [{"name": "YubiKey 5", "type": "Fido2", "origin": "https://amer.smartkey.io"}],
            "new_email": None,
            "self_provisioned": False,
            "u2f_devices": [],
            "dependent_services": [],
            "user_email": f"{first.lower()}.{last.lower()}{n}@example.com",
            "user_id": f"b6480ec0-df2e-4b5a-9d1e-{n:012d}",
        }

    def user_id(self, doc: dict[str, Any]) -> str:
        return str(doc["user_id"])

    def modify(self, doc: dict[str, Any], n: int = 1) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        doc["first_name"] = doc["first_name"].split(" (")[0] + f" (v{n})"
        return doc

    def error_body(self, status: int, message: str) -> tuple[bytes, str]:
        return message.encode(), "text/plain"

    def provider_config(self, name: str, base_url: str, token_env: str) -> dict[str, Any]:
        return {"name": name, "type": "fortanix", "base_url": base_url, "api_key_env": token_env}


DIALECT = FortanixDialect
