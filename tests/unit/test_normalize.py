"""Each provider type's pure parts, straight from the registry: ``normalize``
on the documented example bodies, and the requests its adapter builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncd import config
from syncd.errors import MalformedResponse
from syncd.providers import PROVIDER_TYPES, REGISTRY

FIXTURES = Path(__file__).parent.parent / "fixtures"
#: each example body of a user, by the provider type that answers it, and its id
EXAMPLES = [
    ("zitadel", "zitadel-human.json"),
    ("zitadel", "zitadel-machine.json"),
    ("wacht", "wacht-user.json"),
    ("wacht", "wacht-scim-user.json"),
    ("webex", "webex-user.json"),
    ("fortanix", "fortanix-user.json"),
]
#: a provider table per type, as an operator writes it
TABLES: dict[str, dict[str, Any]] = {
    "zitadel": {"org_id": "org-1"},
    "wacht": {"connection_id": "conn-1"},
    "fortanix": {"api_key_env": "K", "token_env": None, "with_groups": "none"},
    "webex": {"org_id": "org/1"},
    "scim": {},
}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def provider(ptype: str) -> Any:
    table = {"name": "p", "type": ptype, "base_url": "https://idp.example/api", "token_env": "T"}
    table |= TABLES[ptype]
    return config.from_dict({"providers": [{k: v for k, v in table.items() if v is not None}]}).providers[0]


def test_every_registered_type_has_a_table_here() -> None:
    assert set(TABLES) == set(PROVIDER_TYPES)


@pytest.mark.parametrize(("ptype", "name"), EXAMPLES)
def test_normalize_maps_the_documented_example(ptype: str, name: str) -> None:
    doc = load(name)
    identity = REGISTRY[ptype].normalize(doc)
    assert identity.user_id and identity.raw == doc
    assert identity.kind in ("human", "machine")


@pytest.mark.parametrize(("ptype", "name"), EXAMPLES)
def test_normalize_refuses_a_document_without_its_id(ptype: str, name: str) -> None:
    doc = load(name)
    for key in ("id", "user_id"):
        doc.pop(key, None)
    doc.get("user", {}).pop("userId", None)
    with pytest.raises(MalformedResponse):
        REGISTRY[ptype].normalize(doc)


def test_the_scim_type_maps_a_core_user() -> None:
    identity = REGISTRY["scim"].normalize(
        {"id": "u1", "userName": "ann", "emails": [{"value": "a@x", "primary": True}], "active": False}
    )
    assert (identity.user_id, identity.email, identity.active, identity.state) == (
        "u1",
        "a@x",
        False,
        "inactive",
    )


@pytest.mark.parametrize(
    ("ptype", "url", "params"),
    [
        ("zitadel", "https://idp.example/api/v2/users/a%2Fb", None),
        ("wacht", "https://idp.example/api/scim/v2/conn-1/Users/a%2Fb", None),
        ("fortanix", "https://idp.example/api/sys/v1/users/a%2Fb", {"with_groups": "none"}),
        ("webex", "https://idp.example/api/identity/scim/org%2F1/v2/Users/a%2Fb", None),
        ("scim", "https://idp.example/api/Users/a%2Fb", None),
    ],
)
def test_the_adapter_builds_the_user_request_without_io(ptype: str, url: str, params: Any) -> None:
    adapter = REGISTRY[ptype].adapter(provider(ptype))
    request = adapter.user_request("a/b")
    assert (request.method, str(request.url), request.params) == ("GET", url, params)


def test_zitadel_sends_its_org_header_and_checks_with_a_search() -> None:
    adapter = REGISTRY["zitadel"].adapter(provider("zitadel"))
    assert adapter.default_headers == {"x-zitadel-orgid": "org-1"}
    check = adapter.check_request()
    assert check.method == "POST" and check.json["query"]["limit"] == 1
