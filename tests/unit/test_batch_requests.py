"""The batch reads each provider type sends, and how many ids it may ask
for, with plain values."""

from __future__ import annotations

from typing import Any

import pytest

from syncd import config
from syncd.errors import ConfigError
from syncd.providers import REGISTRY
from syncd.providers.base import BatchReader


def adapter(ptype: str, **extra: Any) -> Any:
    table = {"name": "p", "type": ptype, "base_url": "https://idp.example/api", "token_env": "T"} | extra
    return REGISTRY[ptype].adapter(config.from_dict({"providers": [table]}).providers[0])


def test_zitadel_asks_for_its_ids_in_one_list_users_query():
    z = adapter("zitadel")
    request = z.batch_request(["a", "b"])
    assert (request.method, request.kind) == ("POST", "batch")
    assert request.json == {
        "query": {"offset": "0", "limit": 2, "asc": True},
        "queries": [{"inUserIdsQuery": {"userIds": ["a", "b"]}}],
    }
    assert z.batch_limit(None) == 1000


def test_a_zitadel_batch_answer_gives_each_user_as_its_by_id_read():
    user = {"userId": "a", "details": {"sequence": "3"}, "username": "ada"}
    assert adapter("zitadel").batch_answer({"result": [user]}) == [
        {"details": {"sequence": "3"}, "user": user}
    ]


def test_scim_asks_for_ids_joined_by_or_with_each_id_quoted():
    request = adapter("scim").batch_request(["a", 'b"c'])
    assert request.params == {"filter": 'id eq "a" or id eq "b\\"c"', "startIndex": "1", "count": "2"}


@pytest.mark.parametrize(
    ("spc", "limit"),
    [
        ({"filter": {"supported": True, "maxResults": 50}}, 50),
        ({"filter": {"supported": True, "maxResults": 1000}}, 100),  # the ids go in the URL
        ({"filter": {"supported": True}}, 100),
        ({"filter": {"supported": True, "maxResults": 1000}, "pagination": {"maxPageSize": 40}}, 40),
        ({"filter": {"supported": False, "maxResults": 200}}, 0),
        (None, 0),  # no ServiceProviderConfig: filtering by id is not assumed
    ],
)
def test_scim_batches_only_what_its_service_provider_config_allows(spc, limit):
    assert adapter("scim").batch_limit(spc) == limit


def test_wacht_and_fortanix_read_by_id():
    assert adapter("wacht", connection_id="c").batch_limit({"filter": {"supported": True}}) == 0
    fortanix = adapter("fortanix", token_env=None, api_key_env="K")
    assert not isinstance(fortanix, BatchReader)


@pytest.mark.parametrize(
    ("kind", "extra"), [("zitadel", {}), ("wacht", {"connection_id": "c1"}), ("fortanix", {})]
)
def test_refresh_feed_is_refused_for_a_type_without_a_change_feed(kind, extra):
    with pytest.raises(ConfigError, match=f'"feed" needs a change feed, and the {kind} API has none'):
        adapter(kind, refresh="feed", **extra)


@pytest.mark.parametrize("kind", ["scim", "webex"])
def test_a_feed_request_asks_for_the_changes_after_a_time(kind):
    from datetime import UTC, datetime

    from syncd.model.listing import ListSettings

    feed = adapter(kind, refresh="feed", **({"org_id": "o1"} if kind == "webex" else {}))
    since = datetime(2026, 12, 7, 9, 30, 5, 123456, tzinfo=UTC)
    request = feed.feed_request(None, ListSettings(page_size=100), since)
    params = dict(request.params or {})
    assert request.kind == "feed" and params["startIndex"] == "1"
    if kind == "webex":  # sorted, newest first: it can't be filtered by the time
        assert (params["sortBy"], params["sortOrder"], "filter" in params) == (
            "meta.lastModified",
            "descending",
            False,
        )
    else:
        assert params["filter"] == 'meta.lastModified gt "2026-12-07T09:30:05.123Z"'


def test_a_feed_watermark_is_the_newest_stamp_never_backwards_nor_past_now():
    from datetime import UTC, datetime, timedelta

    from syncd.sync.feed import next_watermark, walk_since

    now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    old = now - timedelta(hours=1)
    assert next_watermark(None, [], now) == now  # the first walk starts the clock
    assert next_watermark(old, [None], now) == old
    assert next_watermark(old, [old - timedelta(minutes=5)], now) == old
    assert next_watermark(old, [now - timedelta(minutes=1), None], now) == now - timedelta(minutes=1)
    assert next_watermark(old, [now + timedelta(days=3)], now) == now  # a stamp from the future
    assert walk_since(old, 120, now) == old - timedelta(minutes=2)
    assert walk_since(None, 120, now) == now - timedelta(minutes=2)
