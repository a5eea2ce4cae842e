"""Finding one user by what an admin knows (user name, email), through the
shared client: `syncd targets add --username/--email`."""

from __future__ import annotations

from syncd.errors import ConfigError, SyncdError
from syncd.http import ProviderClient
from syncd.providers.base import Adapter, SearchBy, Searcher

LABELS = {"username": "user name", "email": "email"}


class UserNotFound(SyncdError):
    """No user, or more than one, has the given user name or email."""


async def find_user(adapter: Adapter | Searcher, client: ProviderClient, by: SearchBy, value: str) -> str:
    """The id of the one user whose ``by`` is ``value``; ``UserNotFound`` when
    none or several are, ``ConfigError`` when the type can't search."""
    name = client.provider
    if not isinstance(adapter, Searcher):
        raise ConfigError(
            f"provider {name!r}: its type cannot look users up by {LABELS[by]}; give the user id"
        )
    doc = client.document(await client.send(adapter.search_request(by, value)))
    ids = list(dict.fromkeys(adapter.search_answer(doc, by, value)))
    if not ids:
        raise UserNotFound(f"provider {name!r}: no user has the {LABELS[by]} {value!r}")
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
        raise UserNotFound(
            f"provider {name!r}: {len(ids)} users have the {LABELS[by]} {value!r} ({shown}):"
            " ambiguous; add the one you mean by its id"
        )
    return ids[0]
