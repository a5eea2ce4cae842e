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


def test_refresh_feed_is_refused_until_a_feed_is_built():
    with pytest.raises(ConfigError, match='"feed" is not available yet'):
        adapter("scim", refresh="feed")
