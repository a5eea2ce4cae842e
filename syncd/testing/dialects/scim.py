"""The generic SCIM 2 dialect of the fake provider (RFC 7643/7644), whose
helpers the Wacht and Webex dialects build on."""

from __future__ import annotations

import copy
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from syncd import jsonutil
from syncd.testing.fake import FakeProvider
from syncd.testing.fake_listing import page, scim_filter, scim_matches
from syncd.testing.fake_oauth import rfc_error
from syncd.timeutil import parse_rfc3339

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CISCO = "urn:scim:schemas:extension:cisco:webexidentity:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_JSON = "application/scim+json"
GIVEN = ["Jonathan", "Erina", "Joseph", "Lisa", "Jotaro", "Holly", "Josuke", "Giorno"]
FAMILY = ["Joestar", "Pendleton", "Kujo", "Higashikata", "Giovanna", "Zeppeli"]


def scim_user(n: int, base: str) -> dict[str, Any]:
    given, family = GIVEN[n % len(GIVEN)], FAMILY[(n // len(GIVEN)) % len(FAMILY)]
    uid = f"3426a8e3-d414-4bf0-a493-{n:012d}"
    email = f"{given.lower()}.{family.lower()}{n}@example.com"
    return {
        "schemas": [CORE, ENTERPRISE],
        "id": uid,
        "externalId": f"ext-{n}",
        "userName": email,
        "active": n % 7 != 3,
        "name": {"givenName": given, "familyName": family, "formatted": f"{given} {family}"},
        "displayName": f"{given} {family}",
        "emails": [
            {"value": f"{given.lower()}{n}@home.example", "type": "home"},
            {"value": email, "type": "work", "primary": True},
        ],
        "phoneNumbers": [{"value": f"+1 555 01{n % 100:02d}", "type": "work", "primary": True}],
        "locale": "en_US",
        "title": "Engineer",
        ENTERPRISE: {"employeeNumber": str(1000 + n), "department": "R&D", "costCenter": "cc-7"},
        "meta": {
            "resourceType": "User",
            "created": "2025-01-11T17:38:31.605Z",
            "lastModified": "2026-01-11T17:38:31.605Z",
            "version": f'W/"{7000 + n}"',
            "location": f"{base}/Users/{uid}",
        },
    }


def bump(doc: dict[str, Any], n: int) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["displayName"] = doc["displayName"].split(" (")[0] + f" (v{n})"
    meta = doc.setdefault("meta", {})
    version = int(str(meta.get("version", 'W/"0"')).strip('W/"') or 0) + n
    meta["version"] = f'W/"{version}"'
    meta["lastModified"] = "2026-03-01T12:00:00.000Z"
    return doc


def scim_error(status: int, message: str, *, status_as_string: bool = True) -> tuple[bytes, str]:
    body = {"schemas": [ERROR], "status": str(status) if status_as_string else status, "detail": message}
    if status == 404:
        body["scimType"] = "noTarget"
    return jsonutil.dumps(body).encode(), SCIM_JSON


_CHANGED_SINCE = re.compile(r'^\s*meta\.lastModified\s+gt\s+"([^"]+)"\s*$', re.IGNORECASE)
_NEVER = datetime.min.replace(tzinfo=UTC)


def changed_since(expression: str) -> datetime | None:
    """The time of ``meta.lastModified gt "<RFC 3339>"`` (a change feed's filter)."""
    m = _CHANGED_SINCE.match(expression)
    return parse_rfc3339(m.group(1)) if m else None


def last_modified(doc: dict[str, Any]) -> datetime:
    return parse_rfc3339(str((doc.get("meta") or {}).get("lastModified") or "")) or _NEVER


def touch(doc: dict[str, Any], at: datetime, n: int = 1) -> dict[str, Any]:
    """The user changed (as ``bump``), its ``meta.lastModified`` stamped ``at``."""
    doc = bump(doc, n)
    doc["meta"]["lastModified"] = (
        at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
    )
    return doc


def scim_etag(body: str) -> str:
    """A weak ETag (RFC 9110 §8.8.3) of the body as served, as Webex's
    ``meta.version`` is one: derived from the whole document, so it moves
    with any edit a test makes to ``users`` (bumped ``meta.version`` or not)."""
    return f'W/"{hashlib.sha256(body.encode()).hexdigest()[:16]}"'


def etag_matches(condition: str, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 §13.1.2): ``*``, or any
    listed tag equal to ``etag`` once ``W/`` is set aside."""
    if condition.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in condition.split(","))


def scim_routes(fake: FakeProvider, users_path: str) -> list[web.RouteDef]:
    async def get_user(request: web.Request) -> web.Response:
        """The user, with its ETag; 304 to an If-None-Match naming it (RFC 7644 §3.14)."""
        if not fake.authorized(request):
            return fake.error(401, "Authentication credentials were missing or incorrect.")
        doc = fake.users.get(request.match_info["user_id"])
        if doc is None:
            return fake.error(404, "User not found")
        body = jsonutil.dumps(doc)
        etag = fake.etag_of(body) if fake.etag_of is not None else scim_etag(body)
        headers = {"ETag": etag} if etag else {}
        condition = request.headers.get("If-None-Match")
        if etag and condition is not None and etag_matches(condition, etag):
            fake.not_modified += 1
            return web.Response(status=304, headers=headers)  # §15.4.5: with the ETag
        return web.Response(body=body, content_type=SCIM_JSON, headers=headers)

    async def list_users(request: web.Request) -> web.Response:
        """RFC 7644 §3.4.2: 1-based ``startIndex``, ``count`` capped by the
        server, ``filter`` of ``eq`` terms joined by ``or``."""
        if not fake.authorized(request):
            return fake.error(401, "Authentication credentials were missing or incorrect.")
        quirks = fake.listing
        try:
            start = max(1, int(request.query.get("startIndex", "1")))
            count = int(request.query.get("count", "100"))
        except ValueError:
            return fake.error(400, "startIndex and count must be integers")
        if quirks.max_count is not None and count > quirks.max_count:
            return fake.error(400, f"count must not exceed {quirks.max_count}")
        expression = request.query.get("filter")
        ids: list[str] = []
        if not expression or quirks.filter_ignored or quirks.filter_ignored_silently:
            ids = list(fake.users)
        elif quirks.filter_answers_none:
            ids = []
        elif (since := changed_since(expression)) is not None:
            ids = [uid for uid in fake.users if last_modified(fake.users[uid]) > since]
        else:
            terms = scim_filter(expression)
            if terms is None:
                return fake.error(400, f"unsupported filter: {expression}")
            if terms and all(attribute == "id" for attribute, _ in terms):
                # looked up, not scanned (a real server's index; see ZITADEL's)
                ids = [uid for uid in dict.fromkeys(value for _, value in terms) if uid in fake.users]
            else:
                ids = [uid for uid in fake.users if scim_matches(fake.users[uid], terms)]
        if request.query.get("sortBy", "").lower() == "meta.lastmodified":
            descending = request.query.get("sortOrder", "").lower() == "descending"
            ids.sort(key=lambda uid: last_modified(fake.users[uid]), reverse=descending)
        listed = page(ids, start - 1, count, quirks)
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": len(ids),
            "startIndex": 1 if quirks.ignore_paging and not quirks.echo_requested else start,
            "itemsPerPage": len(listed),
            "Resources": [fake.listed(uid) for uid in listed],
        }
        return web.Response(body=jsonutil.dumps(body), content_type=SCIM_JSON)

    async def service_provider_config(request: web.Request) -> web.Response:
        """RFC 7643 §5: what the server supports (filter, its page cap)."""
        if not fake.authorized(request):
            return fake.error(401, "Authentication credentials were missing or incorrect.")
        supported = not fake.listing.filter_ignored
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": False},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": supported, "maxResults": fake.listing.announced_max or fake.listing.cap},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": True},  # by-id reads: ETag, 304 to If-None-Match
            "authenticationSchemes": [],
        }
        return web.Response(body=jsonutil.dumps(body), content_type=SCIM_JSON)

    base = users_path.removesuffix("/Users")
    return [
        web.get(f"{users_path}/{{user_id}}", get_user),
        web.get(users_path, list_users),
        web.get(f"{base}/ServiceProviderConfig", service_provider_config),
    ]


class ScimDialect:
    type = "scim"

    def routes(self, fake: FakeProvider) -> list[web.RouteDef]:
        async def token(request: web.Request) -> web.Response:
            """An OAuth 2.0 token endpoint (``fake.oauth``), as a SCIM server
            behind an authorization server has one (RFC 6749 §5.2 errors)."""
            return await fake.oauth.handle(fake, request, rfc_error)

        return [*scim_routes(fake, "/Users"), web.post("/oauth/token", token)]

    def make_user(self, n: int) -> dict[str, Any]:
        return scim_user(n, "https://scim.example")

    def user_id(self, doc: dict[str, Any]) -> str:
        return str(doc["id"])

    def modify(self, doc: dict[str, Any], n: int = 1) -> dict[str, Any]:
        return bump(doc, n)

    def error_body(self, status: int, message: str) -> tuple[bytes, str]:
        return scim_error(status, message)

    def provider_config(self, name: str, base_url: str, token_env: str) -> dict[str, Any]:
        return {"name": name, "type": "scim", "base_url": base_url, "token_env": token_env}


DIALECT = ScimDialect
