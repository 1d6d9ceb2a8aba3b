"""Every cloud test runs on both backends: SQLite and a throw-away PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.cloudsync.helpers import Cloud, PgCluster, start_cloud, start_pg


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_pg()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "cloud.db")
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return await cluster.new_database()


@pytest.fixture
async def cloud(db_url: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    c = await start_cloud(db_url, tmp_path)
    yield c
    await c.stop()
