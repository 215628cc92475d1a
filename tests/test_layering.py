"""The package's architecture, checked on the source (AST, every import including lazy ones).

The folders read as the data flow; a module may import its own package and the layers below it,
never a layer above or a peer, and no import chain comes back to where it started.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lymphonet"

#: Bottom to top. A package may import from its own folder and from strictly lower rows.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "organs"),  # error type naming patient / file / field; canonical organ names
    ("schema", "config"),  # the data contract (units, columns, grades); YAML -> dataclasses
    ("metrics",),          # metric definitions shared by training and evaluation
    ("io",),           # files -> Volume, StructureSet, PlanRecord, Plan
    ("dosimetry",),    # DVH, EDIC, blood dose, plan features
    ("kinetics",),     # the mechanistic model and its calibration
    ("twin",),         # simulated patients and cohorts in the data contract
    ("data", "ingest"),  # cohorts -> batches; clinic archives -> cohorts
    ("models",),       # CNN, hybrid, noise, exportable head
    ("training",),     # the pieces of train.py
    ("bundle",),       # export and load of trained models
    ("evaluation",),   # baselines, metrics tables, reports
    ("scoring",),      # batch scoring, plan comparison
    ("cli",),
    ("__main__",),
]
RANK = {name: i for i, row in enumerate(LAYERS) for name in row}

#: Third-party packages that only one module may import.
ONLY_IN = {"torchio": {"lymphonet.data.images"},
           "mlflow": {"lymphonet.training.tracking", "lymphonet.scoring.mlflow_pyfunc",
                      "lymphonet.scoring.mlflow_model_code"}}
#: Packages that must stay pure numpy / scipy / torch (+ pandas / matplotlib for tables, plots).
PURE = ("dosimetry", "kinetics")
NOT_IN_PURE = ("torchio", "mlflow", "sklearn", "pydicom", "SimpleITK", "nibabel", "yaml")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str] = frozenset()) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the file, resolved to absolute names.

    ``from pkg import sub`` of a submodule in ``modules`` counts as an import of ``pkg.sub`` only.
    """
    mod = _module_name(path)
    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            if not all(sub in modules for sub in subs):
                out.append((base, node.lineno))
            out += [(sub, node.lineno) for sub in subs]
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        graph[mod] = {name for name, _ in _imports(path, set(files))
                      if name in files and name != mod}
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "errors"  # the root __init__ (the version) is base


def test_every_package_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert tops <= set(RANK), f"place {sorted(tops - set(RANK))} in LAYERS"


def test_no_module_imports_a_layer_above_or_a_peer():
    bad = []
    for mod, deps in _graph().items():
        here = _layer(mod)
        for dep in deps:
            there = _layer(dep)
            if there != here and RANK[there] >= RANK[here]:
                bad.append(f"{mod} -> {dep}")
    assert not bad, "imports against the data flow:\n" + "\n".join(sorted(bad))


def test_no_import_circles():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("package", sorted(ONLY_IN))
def test_heavy_engines_have_one_home(package):
    users = {_module_name(p) for p in PACKAGE.rglob("*.py")
             if any(n == package or n.startswith(package + ".") for n, _ in _imports(p))}
    assert users == ONLY_IN[package]


def test_dosimetry_and_kinetics_stay_pure():
    bad = [f"{p.relative_to(PACKAGE)}:{line} imports {name}"
           for layer in PURE for p in (PACKAGE / layer).rglob("*.py")
           for name, line in _imports(p) if name.split(".")[0] in NOT_IN_PURE]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """The graph walk is not vacuous: a planted upward import and a planted circle are found."""
    pkg = tmp_path / "lymphonet"
    for name, text in {"__init__.py": "", "io/__init__.py": "", "cli/__init__.py": "",
                       "io/a.py": "from lymphonet.cli import b\n",
                       "cli/b.py": "import lymphonet.io.a\n"}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    with pytest.raises(AssertionError, match="lymphonet.io.a -> lymphonet.cli.b"):
        test_no_module_imports_a_layer_above_or_a_peer()
    with pytest.raises(AssertionError, match="circles"):
        test_no_import_circles()
