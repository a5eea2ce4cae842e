"""Defaults are written once: what a test gets from the classes is what
production gets from the config."""

from __future__ import annotations

import inspect

from syncd import config
from syncd.configbase import ProviderBase
from syncd.http import CircuitBreaker, Gate, ProviderClient, RetryPolicy, TokenState, defaults

BASE = {"name": "z", "type": "zitadel", "base_url": "https://z.example", "token_env": "Z_TOKEN"}


def default(cls: type, name: str) -> object:
    return inspect.signature(cls).parameters[name].default


def test_the_gate_defaults_are_the_config_defaults() -> None:
    fields = ProviderBase.model_fields
    assert default(Gate, "adaptive") is fields["adaptive"].default is False
    assert default(Gate, "concurrency") == fields["concurrency"].default
    assert default(Gate, "max_rps") == fields["max_rps"].default
    assert default(Gate, "circuit_failures") == fields["circuit_failures"].default
    assert default(Gate, "circuit_cooldown") == fields["circuit_cooldown"].default
    assert default(CircuitBreaker, "threshold") == fields["circuit_failures"].default
    assert default(CircuitBreaker, "cooldown") == fields["circuit_cooldown"].default


def test_the_retry_policy_defaults_are_the_config_defaults() -> None:
    fields = ProviderBase.model_fields
    policy = RetryPolicy()
    assert policy.max_attempts == fields["max_attempts"].default
    assert policy.backoff_base == fields["backoff_base"].default
    assert policy.backoff_cap == fields["backoff_cap"].default
    assert policy.retry_after_cap == fields["retry_after_cap"].default


def test_the_client_reads_bodies_up_to_the_config_default() -> None:
    assert default(ProviderClient, "max_body") == ProviderBase.model_fields["max_body_bytes"].default


def test_a_loaded_provider_gets_the_same_defaults() -> None:
    p = config.from_dict({"providers": [BASE]}).providers[0]
    gate = Gate("z")
    assert (p.adaptive, p.concurrency, p.max_rps) == (gate.adaptive, gate.max_concurrency, gate.max_rps)
    assert (p.connect_timeout, p.read_timeout) == (defaults.CONNECT_TIMEOUT, defaults.READ_TIMEOUT)


def test_token_flow_timings_come_from_the_defaults() -> None:
    state = TokenState("z")
    assert (state.skew, state.refusal_ttl, state.failure_ttl, state.max_refused_renewals) == (
        defaults.TOKEN_SKEW,
        defaults.TOKEN_REFUSAL_TTL,
        defaults.TOKEN_FAILURE_TTL,
        defaults.MAX_REFUSED_RENEWALS,
    )
