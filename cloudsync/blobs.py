"""Content-addressed blob directory: a file's name is its SHA-256, so a blob is written once,
is immutable, and can be cached and resumed (HTTP Range) by boxes on poor links."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

SHA256 = frozenset("0123456789abcdef")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        if len(sha) != 64 or not set(sha) <= SHA256:
            raise ValueError("sha256: expected 64 lowercase hex digits")
        return self.root / sha[:2] / sha

    def put(self, data: bytes) -> str:
        """Store bytes (worker thread); returns the SHA-256. Writing twice is a no-op."""
        sha = hashlib.sha256(data).hexdigest()
        dest = self.path(sha)
        if dest.exists():
            return sha
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Write aside then rename: a crash never leaves a partial file under the final name.
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def exists(self, sha: str) -> bool:
        return self.path(sha).exists()
