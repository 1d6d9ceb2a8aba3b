"""The import rules of docs/architecture.md, read from the source (AST), so a change that
breaks them fails here rather than as a circle at run time.

Layers, each importing only itself and what is below it:

    edge composition root  edge/daemon.py, edge/cli.py, edge/demo.py, edge/features.py
    edge features          edge/<feature>/ (may use other features, never in a circle)
    edge core              edge/core/
    drivers                drivers/
    common                 common/ (what the box and the cloud share)

The cloud (cloudsync/) uses common only: the box never imports it, it never imports the box.
Every import counts, also those inside functions and under ``if TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "drivers", "edge", "cloudsync")
COMPOSITION_ROOT = {
    "edge.cli", "edge.daemon", "edge.demo", "edge.features", "edge.openapi", "edge.__main__"
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, me: str | None = None) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file (the module ``me``, by default
    the one its path names), relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = me or module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            found.append((node.lineno, base))
            # "from edge import access" imports the module edge.access
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return found


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top != "edge":
        return top
    if module in COMPOSITION_ROOT or module == "edge":
        return "edge-root"
    if module.startswith("edge.core"):
        return "edge-core"
    return "edge-feature"


def feature_of(module: str) -> str | None:
    parts = module.split(".")
    if layer(module) == "edge-feature" and len(parts) > 1:
        return parts[1]
    return None


# What each layer may import (besides the standard library and third-party packages).
ALLOWED = {
    "common": {"common"},
    "drivers": {"common", "drivers"},
    "edge-core": {"common", "drivers", "edge-core"},
    "edge-feature": {"common", "drivers", "edge-core", "edge-feature"},
    "edge-root": {"common", "drivers", "edge-core", "edge-feature", "edge-root"},
    "cloudsync": {"common", "cloudsync"},
}


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def project_imports() -> list[tuple[str, Path, int, str]]:
    out = []
    for path in source_files():
        me = module_name(path)
        for line, target in imports_of(path):
            if target.split(".")[0] in PACKAGES and target not in PACKAGES:
                out.append((me, path, line, target))
    return out


def test_every_layer_imports_only_downward() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {layer(me)} imports {target} ({layer(target)})"
        for me, path, line, target in project_imports()
        if layer(target) not in ALLOWED[layer(me)]
    ]
    assert not bad, "imports against the layer rules (docs/architecture.md):\n" + "\n".join(bad)


def test_features_never_import_each_other_in_a_circle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for me, path, line, target in project_imports():
        a, b = feature_of(me), feature_of(target)
        if a and b and a != b:
            graph[a].add(b)
            where.setdefault((a, b), f"{path.relative_to(ROOT)}:{line}")
    cycle = _find_cycle(graph) or []
    lines = [where[(x, y)] for x, y in itertools.pairwise(cycle)]
    assert not cycle, f"features import each other in a circle: {' -> '.join(cycle)}\n" + (
        "\n".join(lines)
    )


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*path[path.index(m) :], m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        ("edge.faces.service", "edge.core.box", True),
        ("edge.faces.service", "edge.cli", False),
        ("edge.core.box", "edge.faces", False),
        ("edge.portal.relay", "cloudsync.relay", False),
        ("cloudsync.app", "edge.core.store", False),
        ("cloudsync.app", "common.protocol", True),
        ("common.logs", "edge.core", False),
    ],
)
def test_the_rules_themselves(source: str, target: str, ok: bool) -> None:
    # The checker can fail: an upward or cross import is refused, a downward one allowed.
    assert (layer(target) in ALLOWED[layer(source)]) is ok


def test_the_checker_finds_a_planted_upward_import(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from edge.cli import main\n    from . import y\n")
    targets = [t for _, t in imports_of(f, "edge.faces.x")]
    assert "edge.cli" in targets and "edge.faces.y" in targets
