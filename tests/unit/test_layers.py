"""The package's shape, enforced: the pure modules load no database or SDK, no stage imports another
stage, and product code has no import cycle.

    entry points   cli, scheduler, pipeline, demo
    stages         collect, submit, poll, post, express, estimate, batchops   (never import each other)
    shared         jobs, queue, budget, locks, runtime, report, reports, ledger, metrics, logs, rules, config
    adapters       github/, batches
    pure           review/, cost
    base           db, migrate, models, errors
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reviewer"
STAGES = frozenset({"collect", "submit", "poll", "post", "express", "estimate", "batchops"})
FORBIDDEN_IN_PURE = ("sqlalchemy", "github", "anthropic", "requests", "httpx", "alembic", "psycopg")
PURE = sorted([f"reviewer.review.{p.stem}" for p in (PACKAGE / "review").glob("*.py")] + ["reviewer.cost"])


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> dict[str, Path]:
    """Every module of the package except the emulators (test infrastructure the demo uses)."""
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "emulators" not in p.parts}


def imports_of(path: Path) -> set[str]:
    """Every `reviewer.*` module a file imports: at the top, lazily inside functions, or for type checking."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reviewer"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("reviewer"))
    return found


def graph() -> dict[str, set[str]]:
    modules = product_modules()
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def stage_of(module: str) -> str | None:
    short = module.removeprefix("reviewer.")
    return short if short in STAGES else None


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_no_database_sdk_or_http_client(module: str) -> None:
    probe = (f"import sys, json; import {module}; "
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(FORBIDDEN_IN_PURE)!r})))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                       text=True).stdout)
    assert loaded == [], f"{module} loads {', '.join(loaded)}"


def test_rules_do_not_load_the_github_sdk() -> None:
    probe = "import sys; import reviewer.rules; print('github' in sys.modules or 'requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_no_stage_imports_another_stage() -> None:
    edges = sorted((name, target) for name, targets in graph().items() for target in targets
                   if stage_of(name) and stage_of(target) and stage_of(name) != stage_of(target))
    assert edges == [], "stage imports stage: " + ", ".join(f"{a} -> {b}" for a, b in edges)


def test_the_stages_are_what_this_test_thinks_they_are() -> None:
    """A new stage module must be added to STAGES (or the layer rule silently ignores it)."""
    documented = {p.stem for p in PACKAGE.glob("*.py")
                  if (ast.get_docstring(ast.parse(p.read_text())) or "").startswith("Stage ")}
    assert documented <= STAGES


def test_product_code_has_no_import_cycle() -> None:
    edges = graph()
    cycles = [cycle for cycle in _strongly_connected(edges) if len(cycle) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively deep enough for a package of this size."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_the_layer_checks_see_a_planted_edge(tmp_path: Path) -> None:
    """The AST reader finds lazy and TYPE_CHECKING imports alike, so a planted edge cannot hide."""
    planted = tmp_path / "planted.py"
    planted.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from reviewer.poll import x\n"
                       "def f() -> None:\n    from reviewer import submit\n    import reviewer.post\n")
    assert {"reviewer.poll", "reviewer.submit", "reviewer.post"} <= imports_of(planted)
    assert sorted(_strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()})) == [["a", "b"], ["c"]]


def test_the_models_load_no_alembic() -> None:
    """Migrations are `reviewer.migrate`'s business: every stage imports the models, none needs Alembic."""
    probe = "import sys; import reviewer.models, reviewer.queue; print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
