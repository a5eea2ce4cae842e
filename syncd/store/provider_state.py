"""``syncd.provider_state``: the pause every replica shares, and the circuit.

Only syncd's own role may write this table (migration 010); a NOTIFY on
``syncd_provider_state`` is a hint to read it again, never state itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from syncd.store.database import Database

#: provider_state.pause_reason of a pause an admin cleared (`syncd pause clear`)
PAUSE_CLEARED = "cleared by an admin"


@dataclass(frozen=True, slots=True)
class PauseState:
    """A provider's shared pause as ``provider_state`` records it."""

    until: datetime | None
    #: an admin cleared it: replicas drop their own pause too (once per clear)
    cleared: bool
    #: when the row last changed: tells one clear from the next
    changed_at: datetime | None


class ProviderState(Database):
    async def set_pause(self, provider: str, until: datetime, reason: str) -> None:
        """Extend (never shorten) the provider's shared pause; tells the replicas."""
        await self._fetch("set_pause", provider, until, reason)

    async def get_pause(self, provider: str) -> datetime | None:
        row = await self._fetchrow("get_pause", provider)
        return row["paused_until"] if row else None

    async def pause_state(self, provider: str) -> PauseState:
        row = await self._fetchrow("get_pause", provider)
        if row is None:
            return PauseState(None, False, None)
        return PauseState(row["paused_until"], row["pause_reason"] == PAUSE_CLEARED, row["updated_at"])

    async def clear_pause(self, provider: str) -> datetime | None:
        """An admin ends a provider's pause for every replica; returns the
        instant it would have ended (None: there was none)."""
        row = await self._fetchrow("clear_pause", provider, PAUSE_CLEARED)
        return row["was_until"] if row else None

    async def set_circuit(self, provider: str, state: str) -> None:
        await self._execute("set_circuit", provider, state)
