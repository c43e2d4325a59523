"""The parser half of the read-only check: every corpus case is classified as the corpus says."""

import pytest

from restore.guard import QueryRefused, classify, require_read_only
from tests.restore.guard_corpus import CORPUS, GuardCase


def test_corpus_is_large_and_covers_every_outcome() -> None:
    assert len(CORPUS) >= 40
    assert {case.refused_by for case in CORPUS} == {"parser", "server", "allowed"}


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.sql[:40] or "<empty>")
def test_parser_classifies_corpus(case: GuardCase) -> None:
    verdict = classify(case.sql)
    assert verdict.allowed is (case.refused_by != "parser"), verdict.reason


def test_statements_are_split_with_their_text() -> None:
    verdict = classify("select 'é;' ;\n  values (1)")
    assert verdict.allowed
    assert verdict.statements == ["select 'é;'", "values (1)"]


def test_refusal_says_why_and_what_is_allowed() -> None:
    with pytest.raises(QueryRefused) as refused:
        require_read_only("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d")
    message = str(refused.value)
    assert "DELETE" in message and "Allowed: SELECT" in message


def test_unparseable_sql_is_refused_with_the_parser_message() -> None:
    verdict = classify("SELEC 1")
    assert not verdict.allowed
    assert 'syntax error at or near "SELEC"' in verdict.reason


def test_denied_function_found_at_any_depth() -> None:
    deep = "select " + "(" * 200 + "pg_catalog.pg_terminate_backend(1)" + ")" * 200
    verdict = classify(deep)
    assert not verdict.allowed
    assert "pg_terminate_backend" in verdict.reason


@pytest.mark.parametrize(
    "sql_text",
    [
        "select dblink_exec('x', 'delete from t')",
        "select pg_try_advisory_xact_lock(1)",
        "select pg_stat_reset()",
        "select pg_create_restore_point('x')",
        "select lo_unlink(1)",
        "select pg_ls_dir('.')",
        "select pg_current_xact_id()",
        "select pg_logical_emit_message(true, 'p', 'm')",
        "select pg_import_system_collations('pg_catalog')",
        "select * from generate_series(1, nextval('s'))",
        "select array(select setval('s', 1))",
        "select 1 where exists (select 1 from t for key share)",
        "values ((with d as (delete from t returning 1) select 1))",
        "explain with d as (delete from t returning 1) select 1",
    ],
)
def test_more_disguised_writes(sql_text: str) -> None:
    assert not classify(sql_text).allowed
