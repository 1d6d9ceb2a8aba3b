"""schemathesis fuzzes every operation of /api/openapi.json: no answer may be a 5xx."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.cloudsync.helpers import Cloud

ST = Path(sys.executable).parent / "schemathesis"


async def test_openapi_document_and_fuzzing(cloud: Cloud, tmp_path: Path) -> None:
    await cloud.community()
    status, doc = await cloud.call("GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert "/api/v1/box/upload" in doc["paths"] and "/api/v1/ops/reports" in doc["paths"]
    proc = await asyncio.create_subprocess_exec(
        str(ST),
        "run",
        f"{cloud.url}/api/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "5",
        "--phases",
        "examples,fuzzing",
        "--seed",
        "7",
        "--request-timeout",
        "10",
        "-H",
        f"Authorization: Bearer {cloud.admin}",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    async with asyncio.timeout(100):
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    assert "Server error" not in text
