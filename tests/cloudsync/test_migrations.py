"""Migration files: one number each, per dialect, on the cloud and on the box."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "files",
    [
        sorted((ROOT / "cloudsync/migrations/postgres").glob("*.sql")),
        sorted((ROOT / "cloudsync/migrations/sqlite").glob("*.sql")),
        sorted(ROOT.glob("edge/**/migrations/*.sql")),
    ],
    ids=["cloud-postgres", "cloud-sqlite", "box"],
)
def test_every_migration_has_its_own_number(files: list[Path]) -> None:
    assert files
    numbers = Counter(int(f.name.partition("_")[0]) for f in files)
    assert [n for n, k in numbers.items() if k > 1] == []
