"""The house's rules, checked on the source: short functions, no private names across modules, nothing but the
evaluation and the command line importing the evaluation protocol, no branching on the hierarchy outside the code
that builds actors, one success radius, and a one-line docstring for every package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "amia"
SOURCES = sorted(PACKAGE.rglob("*.py"))
MAX_FUNCTION_LINES = 60


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def function_lengths() -> dict[str, int]:
    """Lines of every function and method, from its ``def`` line (decorators excluded) to its last line."""
    out = {}
    for path in SOURCES:
        for node in ast.walk(parsed(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[f"{module_name(path)}:{node.name}:{node.lineno}"] = node.end_lineno - node.lineno + 1
    return out


def test_the_sources_are_found():
    assert len(SOURCES) > 40 and any(p.name == "loop.py" for p in SOURCES)


def test_no_function_is_longer_than_sixty_lines():
    lengths = function_lengths()
    long = {name: n for name, n in lengths.items() if n >= MAX_FUNCTION_LINES}
    assert not long, long


def test_the_measure_counts_lines():
    tree = ast.parse("def f():\n    a = 1\n\n    return a\n")
    node = tree.body[0]
    assert node.end_lineno - node.lineno + 1 == 4


def imports(path: Path) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("amia"):
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("amia")]
    return found


def test_no_private_name_is_imported_across_modules():
    private = [(module_name(p), m, n) for p in SOURCES for m, names in imports(p) for n in names
               if n.startswith("_")]
    assert not private, private


def test_only_evaluation_and_the_command_line_import_the_protocol():
    allowed = ("amia", "amia.cli", "amia.eval")
    users = {module_name(p) for p in SOURCES for m, _ in imports(p) if m == "amia.eval.protocol"}
    assert users and all(u in allowed or u.startswith("amia.eval.") for u in users), users


def test_no_branch_on_the_hierarchy_outside_the_code_that_builds_actors():
    allowed = {"amia.agent.load", "amia.agent.hierarchical"}
    found = []
    for path in SOURCES:
        for node in ast.walk(parsed(path)):
            if isinstance(node, (ast.If, ast.IfExp, ast.While, ast.Assert)):
                names = {n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "") for n in ast.walk(node.test)}
                if "hierarchical" in names and module_name(path) not in allowed:
                    found.append(f"{module_name(path)}:{node.lineno}")
    assert not found, found


@pytest.mark.parametrize("literal", [4.5])
def test_the_success_radius_is_written_once(literal):
    places = [f"{module_name(p)}:{n.lineno}" for p in SOURCES for n in ast.walk(parsed(p))
              if isinstance(n, ast.Constant) and n.value == literal]
    assert len(places) == 1 and places[0].startswith("amia.envs:"), places


def test_every_package_says_what_lives_there():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(parsed(init))
        assert doc and len(doc.split(".")[0]) < 200, init
