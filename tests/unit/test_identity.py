"""The normalized record behaves as the frozen keyword-only dataclass it is
declared as, with the faster __init__ it is given."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from syncd.model.identity import Email, Identity


def test_defaults_and_a_fresh_raw_document_for_every_record():
    a, b = Identity(user_id="1"), Identity(user_id="2")
    assert (a.username, a.emails, a.kind, a.raw) == (None, (), "human", {})
    assert a.raw is not b.raw  # a default factory, not a shared dict
    assert Email(value="x@example.com") == Email(
        value="x@example.com", type=None, primary=None, verified=None
    )


def test_records_are_frozen_keyword_only_and_refuse_unknown_fields():
    i = Identity(user_id="1", email="a@example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        i.email = "b@example.com"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Identity("1")  # type: ignore[misc]
    with pytest.raises(TypeError):
        Identity()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Identity(user_id="1", surname="x")  # type: ignore[call-arg]


def test_replace_and_equality_work_as_for_any_dataclass():
    when = datetime(2026, 12, 2, tzinfo=UTC)
    i = Identity(user_id="1", updated_at=when, emails=(Email(value="a@example.com", primary=True),))
    j = dataclasses.replace(i, display_name="Ada")
    assert j.display_name == "Ada" and j.updated_at == when and j.emails == i.emails
    assert j != i and dataclasses.replace(j, display_name=None) == i
    assert Identity.from_doc(i.to_doc()) == i


def test_the_fast_init_refuses_a_class_it_would_build_wrongly():
    from syncd.model.identity import _dict_init

    with pytest.raises(TypeError, match="__post_init__"):

        @_dict_init
        @dataclasses.dataclass(frozen=True, kw_only=True)
        class Checked:
            value: str

            def __post_init__(self) -> None: ...

    with pytest.raises(TypeError, match="init=False"):

        @_dict_init
        @dataclasses.dataclass(frozen=True, kw_only=True)
        class Derived:
            value: str
            length: int = dataclasses.field(init=False, default=0)
