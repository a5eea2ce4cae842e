"""SCIM documents as real servers send them: attribute names in any case
(RFC 7643 §2.1), the enterprise extension (§4.3) as record fields, and the
paths whose difference alone is no event."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from syncd.model.diff import same_but_for, without_fields
from syncd.providers import scim, wacht, webex, zitadel

FIXTURES = Path(__file__).parents[1] / "fixtures"
WEBEX = json.loads((FIXTURES / "webex-user.json").read_text())


def recase(value: Any, how: Any) -> Any:
    """``value`` with every object key passed through ``how`` (str.lower, str.upper)."""
    if isinstance(value, dict):
        return {how(k): recase(v, how) for k, v in value.items()}
    if isinstance(value, list):
        return [recase(v, how) for v in value]
    return value


def mapped(identity: Any) -> dict[str, Any]:
    doc = identity.to_doc()
    doc.pop("raw")
    return doc


def test_a_document_in_lower_or_upper_case_maps_to_the_same_record_as_its_canonical_case() -> None:
    canonical = mapped(webex.normalize(WEBEX))
    assert canonical["username"] and canonical["given_name"] and canonical["email"]
    for how in (str.lower, str.upper):
        assert mapped(webex.normalize(recase(WEBEX, how))) == canonical
        assert mapped(scim.normalize(recase(WEBEX, how)))["family_name"] == canonical["family_name"]


def test_a_lower_case_document_is_not_read_as_an_empty_active_user() -> None:
    doc = {
        "id": "u1",
        "username": "ada",
        "name": {"givenname": "Ada", "familyname": "Lovelace"},
        "emails": [{"VALUE": "ada@example.com", "PRIMARY": True}],
        "phonenumbers": [{"value": "+1 555"}],
        "active": False,
        "meta": {"lastmodified": "2026-01-02T03:04:05Z", "VERSION": 'W/"7"'},
    }
    ident = scim.normalize(doc)
    assert (ident.username, ident.given_name, ident.family_name) == ("ada", "Ada", "Lovelace")
    assert ident.display_name == "Ada Lovelace" and ident.email == "ada@example.com"
    assert ident.phone == "+1 555" and ident.active is False and ident.state == "inactive"
    assert ident.updated_at is not None and ident.source_version == 'W/"7"'
    assert ident.raw == doc  # the raw document is kept as it came


def test_the_enterprise_extension_fills_its_columns() -> None:
    ident = webex.normalize(WEBEX)
    ext = WEBEX[scim.ENTERPRISE]
    assert ident.employee_number == ext["employeeNumber"] and ident.department == ext["department"]
    assert ident.cost_center == ext["costCenter"] and ident.organization == ext["organization"]
    assert ident.division == ext["division"] and ident.manager_id == ext["manager"]["value"]
    # the URN and its attribute names are case-insensitive too
    upper = {k: v for k, v in WEBEX.items() if k != scim.ENTERPRISE}
    upper[scim.ENTERPRISE.upper()] = recase(ext, str.lower)
    assert scim.normalize(upper).manager_id == ext["manager"]["value"]


def test_enterprise_values_that_are_no_text_are_left_out() -> None:
    doc = {"id": "u1", scim.ENTERPRISE: {"employeeNumber": 42, "department": {"x": 1}, "manager": "m1"}}
    ident = scim.normalize(doc)
    assert (ident.employee_number, ident.department, ident.manager_id) == ("42", None, "m1")
    assert scim.normalize({"id": "u2", scim.ENTERPRISE: "nonsense"}).department is None


def test_wacht_scim_shape_maps_the_enterprise_extension() -> None:
    doc = {"schemas": [], "id": "w1", "userName": "w", scim.ENTERPRISE: {"department": "Ops"}}
    assert wacht.normalize(doc).department == "Ops"


def test_zitadel_organization_is_the_resource_owner() -> None:
    doc = {
        "details": {"sequence": "1", "resourceOwner": "org-9"},
        "user": {"userId": "z1", "details": {"resourceOwner": "org-7"}, "state": "USER_STATE_ACTIVE"},
    }
    assert zitadel.normalize(doc).organization == "org-7"
    del doc["user"]["details"]
    assert zitadel.normalize(doc).organization == "org-9"


def test_without_fields_copies_only_the_path_and_matches_names_in_any_case() -> None:
    doc = {"raw": {"meta": {"location": "x", "version": "1"}, "emails": [{"v": 1, "seen": 2}]}, "email": "e"}
    before = copy.deepcopy(doc)
    out = without_fields(doc, ["meta.Location", "raw.emails.0.seen", "email", "nothing.here"])
    assert out == {"raw": {"meta": {"version": "1"}, "emails": [{"v": 1}]}}
    assert doc == before  # the document given is untouched


def test_scim_representation_fields_alone_are_the_same_record() -> None:
    before = scim.normalize(WEBEX).to_doc()
    moved = copy.deepcopy(WEBEX)
    moved["meta"]["location"] = "https://other-host.example.com/Users/" + WEBEX["id"]
    moved["meta"]["lastModified"] = "2027-01-01T00:00:00.000Z"
    moved["meta"]["version"] = 'W/"99"'
    after = scim.normalize(moved).to_doc()
    assert before != after
    assert same_but_for(before, after, scim.REPRESENTATION_FIELDS)
    moved["displayName"] = "Someone Else"
    assert not same_but_for(before, scim.normalize(moved).to_doc(), scim.REPRESENTATION_FIELDS)


def test_zitadel_change_markers_alone_are_the_same_record() -> None:
    doc = {
        "details": {"sequence": "1", "changeDate": "2026-01-01T00:00:00Z"},
        "user": {"userId": "z1", "details": {"sequence": "1", "changeDate": "2026-01-01T00:00:00Z"}},
    }
    later = copy.deepcopy(doc)
    for d in (later["details"], later["user"]["details"]):
        d.update(sequence="2", changeDate="2026-02-01T00:00:00Z")
    before, after = zitadel.normalize(doc).to_doc(), zitadel.normalize(later).to_doc()
    assert before != after and same_but_for(before, after, zitadel.REPRESENTATION_FIELDS)
