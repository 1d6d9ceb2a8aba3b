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
    # A request built from the document alone gets an answer the document names.
    create = doc["paths"]["/api/v1/ops/areas"]["post"]
    status, _ = await cloud.call("POST", "/api/v1/ops/areas", json={
        "id": "c9", "level": "community", "name": "C9", "parent_id": "quancheng"})  # fmt: skip
    assert str(status) in create["responses"], (status, sorted(create["responses"]))
    status, _ = await cloud.call("GET", "/api/v1/ops/reports", params={"area": "nowhere"})
    assert str(status) in doc["paths"]["/api/v1/ops/reports"]["get"]["responses"], status
    proc = await asyncio.create_subprocess_exec(
        str(ST),
        "run",
        f"{cloud.url}/api/openapi.json",
        "--checks",
        # and every answer one the document lists (probe 12: routes answered 201 and 404
        # that a client built from the document did not expect)
        "not_a_server_error,status_code_conformance",
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
