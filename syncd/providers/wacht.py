"""Wacht: ``GET {base_url}/scim/v2/{connection_id}/Users/{id}``, bearer (``scm_…``).

Two body shapes are accepted (NOTES.md): the reference page's Wacht user and
the standard SCIM 2 User the deployed handler answers (mapped by
``syncd.providers.scim``). ``active: false`` is a disabled user (SCIM DELETE
is a soft disable), never a deletion.

| Wacht user field                                   | record field             |
|----------------------------------------------------|--------------------------|
| ``id``                                             | ``user_id``              |
| ``username``                                       | ``username``             |
| ``first_name`` / ``last_name``                     | ``given_name`` / ``family_name``, ``display_name`` |
| ``primary_email_address.email`` / ``.verified``    | ``email`` / ``email_verified`` |
| ``user_email_addresses`` (else ``email_addresses``) | ``emails`` (is_primary, verified) |
| ``primary_phone_number.phone_number``              | ``phone``                |
| (no state field: a listed user is active)          | ``active`` true, ``state`` "active" |
| availability, has_profile_picture, profile_picture_url, primary_*_id, second_factor_policy, phone numbers, social_connections (minus tokens), authenticators (minus secrets), backup_codes_generated, has_password, has_passkeys, public_metadata, segments | kept in ``raw`` |

Credential material in the body (``totp_secret``, ``otp_url``,
``backup_codes``, social ``access_token``/``refresh_token``) is stripped by
the engine before anything is hashed, stored, logged or emitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, model_validator

from syncd.configbase import ProviderBase, need_token, path_segment_id
from syncd.errors import MalformedResponse
from syncd.jsonutil import loads
from syncd.model.identity import Email, Identity
from syncd.providers.base import ProviderType
from syncd.providers.documents import document, json_error, obj, scim_error_404, status_is
from syncd.providers.scim import REPRESENTATION_FIELDS, ScimFilter, ScimUsers, bearer_auth, scim_fields
from syncd.providers.scim import error_detail as scim_error_detail
from syncd.providers.urls import config_url


class WachtConfig(ProviderBase):
    type: Literal["wacht"]
    #: discovery\'s scope: a SCIM filter (``userType eq "Employee"``)
    discover_filter: ScimFilter | None = None
    connection_id: Annotated[str, AfterValidator(path_segment_id)]

    @model_validator(mode="after")
    def _auth(self) -> WachtConfig:
        need_token(self)
        return self


def is_scim(doc: dict[str, Any]) -> bool:
    return "schemas" in doc or "userName" in doc


def normalize(doc: Any) -> Identity:
    doc = document(doc)
    if is_scim(doc):
        return Identity(**scim_fields(doc))
    if not doc.get("id"):
        raise MalformedResponse("Wacht user has no id")
    primary = obj(doc, "primary_email_address")
    addresses = doc.get("user_email_addresses") or doc.get("email_addresses") or []
    emails = tuple(
        Email(value=str(a["email"]), primary=bool(a.get("is_primary")), verified=bool(a.get("verified")))
        for a in addresses
        if isinstance(a, dict) and a.get("email")
    )
    if not emails and primary.get("email"):
        emails = (Email(value=primary["email"], primary=True, verified=bool(primary.get("verified"))),)
    phone = obj(doc, "primary_phone_number")
    given, family = doc.get("first_name") or None, doc.get("last_name") or None
    return Identity(
        user_id=str(doc["id"]),
        username=doc.get("username") or None,
        display_name=" ".join(p for p in (given, family) if p) or None,
        given_name=given,
        family_name=family,
        email=primary.get("email") or None,
        email_verified=bool(primary.get("verified")) if primary.get("email") else None,
        emails=emails,
        phone=phone.get("phone_number") or None,
        active=True,
        state="active",
        kind="human",
        raw=doc,
    )


def error_detail(body: bytes) -> str | None:
    """``{"errors": [{"message", "code"}]}`` (reference page) or an RFC 7644 error."""
    if not body.strip():
        return None
    doc = loads(body)
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        return "; ".join(str(e.get("message")) for e in doc["errors"] if isinstance(e, dict)) or None
    return scim_error_detail(body)


def is_not_found(headers: Mapping[str, str], body: bytes) -> bool:
    """Wacht's own "no such user", in either of its shapes: the deployed SCIM
    handler's RFC 7644 error (``status`` 404, a number), or the reference
    page's ``{"errors": [{"message", "code"}]}``, whose ``code`` is the HTTP
    status (Wacht's ``ApiError``). Anything else answering 404 is not Wacht
    saying the user is gone."""
    doc = json_error(headers, body)
    if doc is None:
        return False
    if scim_error_404(doc):
        return True
    errors = doc.get("errors")
    return isinstance(errors, list) and any(
        isinstance(e, dict) and isinstance(e.get("message"), str) and status_is(e.get("code"), 404)
        for e in errors
    )


class WachtAdapter(ScimUsers):
    """Users at ``/scim/v2/{connection_id}/Users``; its check lists one (ids
    are numeric, so a made-up id would prove nothing but a 400)."""

    normalize = staticmethod(normalize)
    #: whether its listing's resources are its by-id shape is unknown: the
    #: listing only discovers, each user is read by id
    lists_documents = False

    def __init__(self, config: WachtConfig) -> None:
        users = config_url(config.base_url, "scim", "v2", config.connection_id, "Users", key="connection_id")
        super().__init__(config, users)

    def batch_limit(self, settings: Any) -> int:
        """Wacht's documents are its own shape, not SCIM resources, and its
        filter support is unknown: users are read one by one."""
        return 0


PROVIDER = ProviderType(
    name="wacht",
    config=WachtConfig,
    adapter=WachtAdapter,
    make_auth=bearer_auth,
    normalize=normalize,
    error_detail=error_detail,
    not_found=is_not_found,
    # its SCIM shape's meta; the native document has none of these
    representation_fields=REPRESENTATION_FIELDS,
)
