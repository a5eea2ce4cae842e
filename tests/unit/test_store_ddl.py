"""The DDL templates (whole databases): identifiers are quoted, never pasted raw."""

from __future__ import annotations

from syncd.store.database import ddl_templates, queries
from syncd.store.server import quote_ident


def test_an_identifier_is_double_quoted_with_its_quotes_doubled():
    assert quote_ident("syncd_demo") == '"syncd_demo"'
    assert quote_ident('x"; DROP DATABASE postgres; --') == '"x""; DROP DATABASE postgres; --"'


def test_the_templates_take_the_quoted_name_and_stay_out_of_the_prepared_queries():
    ddl = ddl_templates()
    assert ddl["drop_database"].format(database='"d"').endswith('DROP DATABASE IF EXISTS "d" WITH (FORCE);')
    assert ddl["create_database"].format(database='"d"').endswith('CREATE DATABASE "d";')
    assert not ddl.keys() & queries().keys()
