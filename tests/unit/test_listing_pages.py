"""Each provider type's list requests and pages, with plain values: what it
asks for, how it reads a page, and that a page of the wrong shape is an
error rather than a short directory."""

from __future__ import annotations

from typing import Any

import pytest

from syncd import config
from syncd.errors import ConfigError, MalformedResponse
from syncd.model.listing import ListingIncomplete, ListSettings
from syncd.providers import REGISTRY
from syncd.providers.base import Lister
from syncd.providers.registry import PROVIDER_TYPES

TABLES: dict[str, dict[str, Any]] = {
    "zitadel": {"org_id": "org-1"},
    "wacht": {"connection_id": "conn-1"},
    "fortanix": {"api_key_env": "K", "token_env": None},
    "webex": {"org_id": "org-1"},
    "scim": {},
}


def adapter(ptype: str, **extra: Any) -> Any:
    table = {"name": "p", "type": ptype, "base_url": "https://idp.example/api", "token_env": "T"}
    table |= TABLES[ptype] | extra
    cfg = config.from_dict({"providers": [{k: v for k, v in table.items() if v is not None}]})
    return REGISTRY[ptype].adapter(cfg.providers[0])


def test_every_type_can_list_users():
    assert {t for t in PROVIDER_TYPES if isinstance(adapter(t), Lister)} == set(PROVIDER_TYPES)


# -- SCIM (scim, wacht, webex) ------------------------------------------------------------
SPC = {"filter": {"supported": True, "maxResults": 50}}


def test_scim_asks_its_service_provider_config_and_pages_within_its_cap():
    scim = adapter("scim")
    assert str(scim.list_settings_request().url) == "https://idp.example/api/ServiceProviderConfig"
    settings = scim.list_settings(SPC)
    assert settings.page_size == 50
    assert scim.list_request(None, settings).params == {"startIndex": "1", "count": "50"}
    assert scim.list_settings(None).page_size == 100  # no ServiceProviderConfig: the default


def test_scim_reads_a_page_and_the_next_start_index():
    scim, settings = adapter("scim"), ListSettings(page_size=2)
    doc = {"totalResults": 3, "startIndex": 1, "Resources": [{"id": "a"}, {"id": "b"}]}
    page = scim.list_page(doc, None, settings)
    assert (page.cursor, page.ids, page.echoed, page.total, page.next) == (1, ("a", "b"), 1, 3, 3)
    last = scim.list_page({"totalResults": 3, "startIndex": 3, "Resources": [{"id": "c"}]}, 3, settings)
    assert last.next is None


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"Resources": [{"id": "a"}]}, "without a totalResults"),
        (
            {"totalResults": 2, "Resources": [{"id": "a"}, {"userName": "b"}]},
            "resource 2 of the listing has no id",
        ),
        ({"totalResults": 1, "Resources": {"id": "a"}}, "not an array"),
        ([{"id": "a"}], "expected a JSON object"),
    ],
)
def test_a_scim_page_of_the_wrong_shape_is_an_error(doc, message):
    with pytest.raises(MalformedResponse, match=message):
        adapter("scim").list_page(doc, None, ListSettings(page_size=100))


@pytest.mark.parametrize("ptype", ["scim", "wacht", "webex"])
def test_a_scim_filter_is_sent_only_where_the_server_supports_filters(ptype):
    scoped = adapter(ptype, discover_filter='userType eq "Employee"')
    request = scoped.list_request(None, scoped.list_settings(SPC))
    assert request.params["filter"] == 'userType eq "Employee"'
    with pytest.raises(ConfigError, match=r"filter\.supported is not true"):
        scoped.list_settings({"filter": {"supported": False}})
    with pytest.raises(ConfigError, match="could not be read"):
        scoped.list_settings(None)


def test_an_empty_scim_filter_is_a_config_error():
    with pytest.raises(ConfigError, match="discover_filter"):
        adapter("scim", discover_filter="  ")


# -- ZITADEL --------------------------------------------------------------------------------
def test_zitadel_lists_by_creation_date_with_offset_paging_and_its_queries():
    z = adapter("zitadel", discover_filter=[{"typeQuery": {"type": "TYPE_HUMAN"}}])
    assert z.list_settings_request() is None
    settings = z.list_settings(None)
    request = z.list_request(2000, settings)
    assert request.method == "POST"
    assert request.json == {
        "query": {"offset": "2000", "limit": 1000, "asc": True},
        "sortingColumn": "USER_FIELD_NAME_CREATION_DATE",
        "queries": [{"typeQuery": {"type": "TYPE_HUMAN"}}],
    }
    doc = {"details": {"totalResult": "2001"}, "result": [{"userId": "u2000"}]}
    page = z.list_page(doc, 2000, settings)
    assert (page.cursor, page.ids, page.total, page.next) == (2000, ("u2000",), 2001, None)
    more = z.list_page({"details": {"totalResult": "3"}, "result": [{"userId": "a"}]}, None, settings)
    assert more.next == 1


def test_a_zitadel_answer_without_its_total_is_an_error():
    with pytest.raises(MalformedResponse, match=r"without details\.totalResult"):
        adapter("zitadel").list_page({"result": []}, None, ListSettings(page_size=1000))


def test_a_zitadel_filter_entry_must_be_one_query_object():
    with pytest.raises(ConfigError, match="one ListUsers query object"):
        adapter("zitadel", discover_filter=[{"type": "TYPE_HUMAN"}])


# -- Fortanix -------------------------------------------------------------------------------
def test_fortanix_pages_by_keyset_from_the_last_id():
    f = adapter("fortanix", discover_filter={"group_id": "g-1"})
    settings = ListSettings(page_size=3)
    assert f.list_request(None, settings).params == {"limit": "3", "sort": "user_id:asc", "group_id": "g-1"}
    assert f.list_request("u2", settings).params["start"] == "u2"
    page = f.list_page([{"user_id": f"u{i}"} for i in range(3)], None, settings)
    assert page.ids == ("u0", "u1", "u2") and page.next == "u2" and page.total is None
    # a short page is not the end (a server may cap silently): an empty one is
    inclusive = f.list_page([{"user_id": "u2"}, {"user_id": "u3"}], "u2", settings)
    assert inclusive.ids == ("u3",) and inclusive.next == "u3"
    assert f.list_page([{"user_id": "u3"}], "u3", settings).next is None


def test_a_fortanix_server_that_ignores_start_is_caught():
    with pytest.raises(ListingIncomplete, match="ignores start or sort"):
        adapter("fortanix").list_page([{"user_id": "u0"}, {"user_id": "u1"}], "u2", ListSettings(page_size=2))
