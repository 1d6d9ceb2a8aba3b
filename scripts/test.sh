#!/usr/bin/env bash
# Set everything up and run the whole test suite (this is what CI runs: .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy (the typed packages listed in pyproject.toml [tool.mypy])"
.venv/bin/mypy
echo "==> pytest"
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=20 "$@"
