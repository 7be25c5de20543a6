"""A PostgreSQL database of its own for each test, on the server `.ci/postgres.sh` starts.

The server is found through ``MTA_TEST_POSTGRES_URL`` (printed by ``.ci/postgres.sh``),
else at that script's defaults. A test that needs it and cannot reach it is skipped,
naming the URL tried and the error; every test gets a fresh database, dropped afterwards,
so tests run in parallel (pytest-xdist) without seeing each other's runs.

Use the fixtures by importing them into a test module::

    from mta_assets_tests.postgres import postgres_database, postgres_server  # noqa: F401
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

URL_ENV_VAR = "MTA_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://mta:mta@127.0.0.1:55432/mta_test"


@dataclass(frozen=True)
class PostgresDatabase:
    host: str
    port: int
    user: str
    password: str
    name: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.name}"

    def dagster_env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads for its storage."""
        return {
            "DAGSTER_POSTGRES_USER": self.user,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_HOST": self.host,
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_DB": self.name,
        }


def _connect(url: str):
    import psycopg2

    connection = psycopg2.connect(url, connect_timeout=5)
    connection.autocommit = True
    return connection


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of the test server; skips the test when no server answers there.

    Session-scoped so it reads the URL before the autouse fixture clears MTA_* variables.
    """
    url = os.environ.get(URL_ENV_VAR) or DEFAULT_URL
    try:
        _connect(url).close()
    except Exception as exc:  # any failure to connect means "no server here"
        parts = urlsplit(url)
        shown = f"{parts.hostname}:{parts.port}{parts.path}"  # without the password
        pytest.skip(
            f"no PostgreSQL server reachable at {shown} ({type(exc).__name__}: {str(exc).strip()}); "
            f"start one with `eval \"$(.ci/postgres.sh)\"` or set {URL_ENV_VAR}"
        )
    return url


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[PostgresDatabase]:
    """A fresh, empty database for this test alone, dropped afterwards."""
    parts = urlsplit(postgres_server)
    database = PostgresDatabase(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "",
        password=parts.password or "",
        name=f"mta_test_{uuid.uuid4().hex[:16]}",
    )
    admin = _connect(postgres_server)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{database.name}"')
        yield database
        with admin.cursor() as cursor:
            # FORCE closes connections a dagster instance may still pool.
            cursor.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
    finally:
        admin.close()
