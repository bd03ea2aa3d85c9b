"""The import contract: the packages read as the data path, with no circles.

    sae  →  steering (methods, interventions, feature selection)  →  explain  →  evaluation (report)

A module may import only from its own layer or the layers before it; inside `sae`, text data comes before
training, and training before evaluation. Imports sit at the top of a module, except those of a heavy library
only a few entry points need (the live server's web stack, sentence-transformers), which say so where they are.
No source file is longer than 300 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sae", "steering", "explain", "evaluation")
LAZY_OK = ("fastapi", "starlette", "uvicorn", "sentence_transformers")  # heavy; a few entry points need them
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def resolve(target: str, known: dict[str, Path]) -> str | None:
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def dynamic_import(node: ast.AST) -> str | None:
    """The module a call `importlib.import_module("x")` / `__import__("x")` / `runpy.run_module("x")` names."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    f = node.func
    called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    return node.args[0].value if called in ("import_module", "__import__", "run_module") else None


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import in the file, by statement or by an
    importlib call: an import by name is still an edge of the graph."""
    tree = ast.parse(path.read_text())
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names]
        elif target := dynamic_import(node):
            targets = [target]
        else:
            continue
        for t in targets:
            if t.split(".")[0] in PACKAGES and (m := resolve(t, known)) and m != name:
                out.append((m, node.lineno, id(node) in in_function))
                # importing a.b.c runs a.b's __init__ first: an edge to every package above it that the importer
                # is not inside (steering.features once reached steering.methods that way, and back)
                parts = m.split(".")
                out += [(pkg, node.lineno, id(node) in in_function) for i in range(2, len(parts))
                        if (pkg := ".".join(parts[:i])) in known and not (name + ".").startswith(pkg + ".")]
    return out


def layer(name: str) -> int:
    return PACKAGES.index(name.split(".")[0])  # the packages in data-path order


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m, _, _ in imports(name, path, known)} for name, path in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert cycles(graph()) == []


def test_an_import_by_name_is_an_edge_too(tmp_path):
    """steering.intervention once reached steering.methods through importlib: a circle the graph did not see."""
    src = tmp_path / "mod.py"
    src.write_text("import importlib\n\ndef load():\n    importlib.import_module('steering.methods')\n")
    assert imports("steering.intervention", src, modules()) == [("steering.methods", 4, True)]


def test_importing_a_module_inside_a_package_is_an_edge_to_the_package(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("from steering.methods.sae_features import Amplify\n")
    assert imports("steering.features", src, modules()) == [("steering.methods.sae_features", 1, False),
                                                             ("steering.methods", 1, False)]
    assert imports("steering.methods.sae_diffmean", src, modules()) == [("steering.methods.sae_features", 1, False)]


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_import_points_back_along_the_data_path():
    bad = [f"{a} → {b}" for a, targets in graph().items() for b in targets if layer(b) > layer(a)]
    assert bad == [], "imports against the data path (sae → steering → explain → evaluation)"


SAE_ORDER = ("sae.data", "sae.train", "sae.eval")  # inside sae: text data, then training, then evaluation


def test_inside_sae_data_comes_before_training_and_training_before_evaluation():
    stage = lambda m: next((i for i, s in enumerate(SAE_ORDER) if m == s or m.startswith(s + ".")), None)
    bad = [f"{a} → {b}" for a, targets in graph().items() if a.startswith("sae") for b in targets
           if stage(a) is not None and stage(b) is not None and stage(b) > stage(a)]
    bad += [f"{a} → {b}" for a, targets in graph().items() if a.startswith("sae.data") for b in targets
            if b.startswith(("sae.model", "sae.checkpoints", "sae.train", "sae.eval"))]
    assert bad == []


def test_imports_inside_functions_are_only_heavy_optional_libraries():
    lazy = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for f in ast.walk(tree):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for n in ast.walk(f):
                    if isinstance(n, (ast.Import, ast.ImportFrom)):
                        mod = n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
                        if not (mod or "").startswith(LAZY_OK):
                            lazy.append(f"{name}:{n.lineno} {ast.unparse(n)}")
    assert lazy == []


@pytest.mark.parametrize("folder", [*PACKAGES, "tests", "bench"])
def test_no_source_file_is_longer_than_300_lines(folder):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / folder).rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
