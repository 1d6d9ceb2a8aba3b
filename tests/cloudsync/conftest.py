"""Every cloud test runs on both backends: SQLite and a throw-away PostgreSQL cluster."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.cloudsync.helpers import VENV_BIN, Cloud, PgCluster, pg_bindir, start_cloud, start_pg


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_pg(in_memory=True)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_migrated(pg_cluster: PgCluster) -> str:
    """A database the real `qilu-cloudsync migrate` brought up to date once per session;
    the `cloud` fixture's PostgreSQL databases are copies of it (CREATE DATABASE ... TEMPLATE
    takes ~0.2 s where migrating a fresh one takes 1-2 s). Nothing ever connects to it again,
    which a template needs."""
    name = "t_migrated"
    subprocess.run([*pg_cluster.proc_user, str(pg_bindir() / "createdb"), "-h", "127.0.0.1",
                    "-p", str(pg_cluster.port), "-U", "postgres", name],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    subprocess.run([str(VENV_BIN / "qilu-cloudsync"), "migrate", "--db", pg_cluster.url(name)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    return name


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database (tests that migrate step by step or start their own cloud)."""
    if backend == "sqlite":
        return str(tmp_path / "cloud.db")
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return await cluster.new_database()


@pytest.fixture
async def cloud(backend: str, request: pytest.FixtureRequest, tmp_path: Path
                ) -> AsyncIterator[Cloud]:
    if backend == "sqlite":
        db = str(tmp_path / "cloud.db")
    else:  # already migrated: a copy of the session's template (start_cloud checks it)
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        db = await cluster.new_database(template=request.getfixturevalue("pg_migrated"))
    c = await start_cloud(db, tmp_path)
    yield c
    await c.stop()
