"""The benchmark's time per stored asset event: a real Dagster instance on SQLite, and on
the PostgreSQL server `.ci/postgres.sh` starts. Asserts what is printed, never a time."""

import re
from pathlib import Path

import pytest

from mta_assets_bench import records
from mta_assets_tests.postgres import PostgresDatabase, postgres_database, postgres_server  # noqa: F401

PER_EVENT = r"(\d+\.\d\d) ms per asset event"


def test_stores_asset_events_in_a_new_sqlite_home_and_removes_it(tmp_path: Path, capsys) -> None:
    assert records.main(["--dir", str(tmp_path), "--events", "5"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"SQLite in {re.escape(str(tmp_path))}: {PER_EVENT}", line), line
    assert float(re.search(PER_EVENT, line).group(1)) > 0
    assert list(tmp_path.iterdir()) == []  # the home it made is gone


@pytest.mark.postgres
def test_stores_them_in_postgresql_too(tmp_path: Path, capsys, postgres_database: PostgresDatabase) -> None:  # noqa: F811
    # The URL .ci/postgres.sh prints: plain postgresql://, which the tool runs on psycopg2.
    assert records.main(["--dir", str(tmp_path), "--events", "5", "--postgres-url", postgres_database.url]) == 0
    sqlite, postgres = capsys.readouterr().out.splitlines()
    assert sqlite.startswith("SQLite in ")
    assert re.fullmatch(rf"PostgreSQL: {PER_EVENT}", postgres), postgres
