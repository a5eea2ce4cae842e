"""The ZITADEL dialect of the fake provider."""

from __future__ import annotations

import base64
import copy
from typing import Any

from aiohttp import web

from syncd import jsonutil
from syncd.testing.fake import FakeProvider
from syncd.testing.fake_listing import page

#: the user the fake's token belongs to (a service account), for ``/auth/v1/users/me``
SERVICE_USER_ID = "284761000000000001"
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 423: 9, 429: 8, 500: 13, 502: 14, 503: 14}
FIRST_NAMES = ["Minnie", "Mickey", "Donald", "Daisy", "Goofy", "Pluto", "Clarabelle", "Horace"]
LAST_NAMES = ["Mouse", "Duck", "Goof", "Cow", "Horsecollar", "Pete", "Gander", "Coot"]


async def client_credentials(fake: FakeProvider, request: web.Request) -> web.Response:
    """``POST /oauth/v2/token``: the client credentials grant, Basic-authenticated."""
    form = await request.post()
    authorization = request.headers.get("Authorization", "")
    if form.get("grant_type") != "client_credentials" or not authorization.startswith("Basic "):
        return web.json_response({"error": "invalid_client"}, status=401)
    if base64.b64decode(authorization[6:]).decode() != "syncd-client:" + fake.token:
        return web.json_response(
            {"error": "invalid_client", "error_description": "client not found"}, status=401
        )
    return web.json_response(
        {"access_token": fake.issue_token(), "token_type": "Bearer", "expires_in": fake.token_lifetime}
    )


class ZitadelDialect:
    type = "zitadel"

    def routes(self, fake: FakeProvider) -> list[web.RouteDef]:
        async def get_user(request: web.Request) -> web.Response:
            if not fake.authorized(request):
                return fake.error(401, "Errors.Token.Invalid (AUTH-7fs1e)")
            return fake.user_response(request.match_info["user_id"])

        async def token(request: web.Request) -> web.Response:
            return await client_credentials(fake, request)

        async def me(request: web.Request) -> web.Response:
            """Auth API "Get My User": the token's own user, v1 shape (``id``)."""
            if not fake.authorized(request):
                return fake.error(401, "Errors.Token.Invalid (AUTH-7fs1e)")
            user = self.service_user()["user"]
            v1 = {"id": user["userId"], "userName": user["username"]}
            v1 |= {k: v for k, v in user.items() if k not in ("userId", "username")}
            return web.json_response({"details": user["details"], "user": v1})

        async def get_service_user(request: web.Request) -> web.Response:
            if not fake.authorized(request):
                return fake.error(401, "Errors.Token.Invalid (AUTH-7fs1e)")
            if SERVICE_USER_ID in fake.users:
                return fake.user_response(SERVICE_USER_ID)
            return web.json_response(self.service_user())

        async def list_users(request: web.Request) -> web.Response:
            """User Service ListUsers (``POST /v2/users``): offset paging
            (``limit`` at most 1000, else an error), ``queries`` ANDed,
            ``result`` items shaped like GetUserByID's ``user``."""
            if not fake.authorized(request):
                return fake.error(401, "Errors.Token.Invalid (AUTH-7fs1e)")
            search = await request.json()
            query = search.get("query") or {}
            offset, limit = int(query.get("offset") or 0), int(query.get("limit") or 100)
            if limit > 1000:
                return fake.error(400, "Errors.Query.LimitExceeded (QUERY-4M9fs)")
            conditions = search.get("queries") or []
            quirks = fake.listing
            filtering = not (quirks.filter_ignored or quirks.filter_ignored_silently)
            asked = _asked_ids(conditions) if filtering else None
            if asked is not None:
                # looked up, not scanned: a real server answers this from an
                # index, and the benchmark's 100,000 users would make a scan
                # the fake's cost, not syncd's
                users = [fake.listed(uid)["user"] for uid in sorted(asked) if uid in fake.users]
            else:
                users = [fake.listed(uid)["user"] for uid in sorted(fake.users)]
            if conditions and quirks.filter_answers_none:
                users = []
            elif filtering:
                for condition in conditions:
                    users = [u for u in users if zitadel_matches(u, condition)]
            ids = [u["userId"] for u in users]
            by_id = {u["userId"]: u for u in users}
            listed = page(ids, offset, limit, fake.listing)
            details = {"totalResult": str(len(ids)), "timestamp": "2026-02-03T10:21:07.512893123Z"}
            return web.json_response({"details": details, "result": [by_id[uid] for uid in listed]})

        return [
            web.post("/v2/users", list_users),
            # before /v2/users/{user_id}: the service account is served even when not seeded
            web.get(f"/v2/users/{SERVICE_USER_ID}", get_service_user),
            web.get("/v2/users/{user_id}", get_user),
            web.post("/oauth/v2/token", token),
            web.get("/auth/v1/users/me", me),
        ]

    def service_user(self) -> dict[str, Any]:
        """The machine user the fake's tokens belong to (not one of ``users``)."""
        details = {
            "sequence": "3",
            "changeDate": "2025-11-10T08:00:01.123456Z",
            "resourceOwner": "284761535123456789",
        }
        user = {
            "userId": SERVICE_USER_ID,
            "details": details,
            "state": "USER_STATE_ACTIVE",
            "username": "syncd",
            "loginNames": ["syncd@acme.zitadel.cloud"],
            "preferredLoginName": "syncd@acme.zitadel.cloud",
            "machine": {"name": "syncd", "description": "syncd service account"},
        }
        return {"details": dict(details), "user": user}

    def make_user(self, n: int) -> dict[str, Any]:
        uid = str(284761989876543210 + n)
        details = {
            "sequence": str(10 + n),
            "changeDate": "2026-02-03T10:21:07.512893123Z",
            "resourceOwner": "284761535123456789",
            "creationDate": "2025-11-10T08:00:01.123456Z",
        }
        if n % 10 == 9:  # every tenth is a machine user
            user: dict[str, Any] = {
                "userId": uid,
                "details": details,
                "state": "USER_STATE_ACTIVE",
                "username": f"bot-{n}",
                "loginNames": [f"bot-{n}@acme.zitadel.cloud"],
                "preferredLoginName": f"bot-{n}@acme.zitadel.cloud",
                "machine": {"name": f"Bot {n}", "description": "service account", "hasSecret": True},
            }
        else:
            given = FIRST_NAMES[n % len(FIRST_NAMES)]
            family = LAST_NAMES[(n // len(FIRST_NAMES)) % len(LAST_NAMES)]
            username = f"{given.lower()}.{family.lower()}.{n}"
            user = {
                "userId": uid,
                "details": details,
                "state": "USER_STATE_ACTIVE",
                "username": username,
                "loginNames": [f"{username}@acme.zitadel.cloud"],
                "preferredLoginName": f"{username}@acme.zitadel.cloud",
                "human": {
                    "profile": {
                        "givenName": given,
                        "familyName": family,
                        "displayName": f"{given} {family}",
                        "preferredLanguage": "en",
                        "gender": "GENDER_FEMALE" if n % 2 else "GENDER_MALE",
                    },
                    "email": {"email": f"{username}@acme.com", "isVerified": n % 3 != 0},
                    "phone": {},
                    "passwordChanged": "2025-11-10T08:05:00Z",
                },
            }
        return {"details": dict(details), "user": user}

    def user_id(self, doc: dict[str, Any]) -> str:
        return str(doc["user"]["userId"])

    def modify(self, doc: dict[str, Any], n: int = 1) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        user = doc["user"]
        seq = str(int(user["details"]["sequence"]) + n)
        user["details"]["sequence"] = doc["details"]["sequence"] = seq
        user["details"]["changeDate"] = doc["details"]["changeDate"] = "2026-03-01T12:00:00.000000001Z"
        if "human" in user:
            profile = user["human"]["profile"]
            profile["displayName"] = profile.get("displayName", "").split(" (")[0] + f" (v{seq})"
        else:
            user["machine"]["description"] = f"service account v{seq}"
        return doc

    def error_body(self, status: int, message: str) -> tuple[bytes, str]:
        code = _GRPC_CODES.get(status, 2)
        body = {
            "code": code,
            "message": f"{message} (QUERY-Dfbg2)",
            "details": [
                {
                    "@type": "type.googleapis.com/zitadel.v1.ErrorDetail",
                    "id": "QUERY-Dfbg2",
                    "message": message,
                }
            ],
        }
        return jsonutil.dumps(body).encode(), "application/json"

    def provider_config(self, name: str, base_url: str, token_env: str) -> dict[str, Any]:
        return {"name": name, "type": "zitadel", "base_url": base_url, "token_env": token_env}


def zitadel_matches(user: dict[str, Any], condition: dict[str, Any]) -> bool:
    """One of ListUsers' ``queries``: by user ids, user name, email or
    organization (the fake's subset of the User Service's search)."""
    if "inUserIdsQuery" in condition:
        return user["userId"] in condition["inUserIdsQuery"].get("userIds", [])
    if "userNameQuery" in condition:
        return _text_equals(user.get("username"), condition["userNameQuery"], "userName")
    if "emailQuery" in condition:
        email = ((user.get("human") or {}).get("email") or {}).get("email")
        return _text_equals(email, condition["emailQuery"], "emailAddress")
    if "organizationIdQuery" in condition:
        owner = (user.get("details") or {}).get("resourceOwner")
        return owner == condition["organizationIdQuery"].get("organizationId")
    return False


DIALECT = ZitadelDialect


def _asked_ids(conditions: list[dict[str, Any]]) -> set[str] | None:
    """The ids an ``inUserIdsQuery`` among ``conditions`` restricts to (the
    other conditions still apply), or None when none does."""
    for condition in conditions:
        if "inUserIdsQuery" in condition:
            return {str(uid) for uid in condition["inUserIdsQuery"].get("userIds") or []}
    return None


def _text_equals(value: Any, query: dict[str, Any], key: str) -> bool:
    """A TextQuery: ``TEXT_QUERY_METHOD_EQUALS`` (the default) or ``…_IGNORE_CASE``."""
    wanted = query.get(key)
    if not isinstance(value, str) or not isinstance(wanted, str):
        return False
    if query.get("method") == "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE":
        return value.casefold() == wanted.casefold()
    return value == wanted
