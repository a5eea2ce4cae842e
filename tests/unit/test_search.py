"""The user lookups `targets add --username/--email` sends, and how their
answers are checked, with plain values."""

from __future__ import annotations

from typing import Any

from syncd import config
from syncd.providers import REGISTRY


def adapter(ptype: str, **extra: Any) -> Any:
    table = {"name": "p", "type": ptype, "base_url": "https://idp.example/api", "token_env": "T"} | extra
    return REGISTRY[ptype].adapter(config.from_dict({"providers": [table]}).providers[0])


def test_a_scim_lookup_quotes_the_value_inside_its_filter():
    request = adapter("scim").search_request("username", 'a"b\\c')
    assert request.params["filter"] == 'userName eq "a\\"b\\\\c"'
    assert adapter("scim").search_request("email", "x@y").params["filter"] == 'emails.value eq "x@y"'


def test_a_scim_answer_is_checked_not_trusted():
    users = [
        {"id": "1", "userName": "ada", "emails": [{"value": "ada@x"}]},
        {"id": "2", "userName": "bob", "emails": [{"value": "bob@x"}]},
    ]
    doc = {"totalResults": 2, "Resources": users}  # a server that ignored the filter
    assert adapter("scim").search_answer(doc, "username", "ADA") == ["1"]
    assert adapter("scim").search_answer(doc, "email", "Bob@X") == ["2"]
    assert adapter("scim").search_answer(doc, "email", "eve@x") == []


def test_a_zitadel_lookup_is_one_case_insensitive_query():
    request = adapter("zitadel").search_request("email", "Ada@X")
    assert request.method == "POST"
    assert request.json["queries"] == [
        {"emailQuery": {"emailAddress": "Ada@X", "method": "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE"}}
    ]
