"""The suite's PostgreSQL server: real, reachable, one fresh database per test."""

from __future__ import annotations


def test_the_suite_starts_a_real_postgresql_server(postgres):
    first, second = postgres.new_database(), postgres.new_database()

    postgres.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)", database=first)

    assert (
        postgres.psql(
            "SELECT current_setting('server_version_num')::int >= 130000", database=first
        ).strip()
        == "t"
    )
    assert postgres.psql("SELECT count(*) FROM t", database=first).strip() == "1"
    assert (
        postgres.psql(
            "SELECT count(*) FROM pg_tables WHERE tablename = 't'", database=second
        ).strip()
        == "0"
    )
