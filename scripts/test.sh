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
# Two workers (the CI machine has 2 cores and most tests wait on real peers): one file per
# worker at a time (tests/conftest.py groups them); QILU_TEST_WORKERS=0 runs in one process.
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=20 \
    -n "${QILU_TEST_WORKERS:-2}" --dist loadgroup "$@"
