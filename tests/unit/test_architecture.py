"""The package's shape: its import graph has no cycle, layers only look down, commands are leaves.

Imports are read from the source (top-level and inside functions; those
under ``if TYPE_CHECKING:`` are type hints, not imports at run time).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "vhbackup"

#: Lower layers never import higher ones (docs/architecture.md draws the same picture).
LAYERS = [
    # 0: foundations: errors, parsing, processes, files on disk
    {"vhbackup", "vhbackup.errors", "vhbackup.quantities", "vhbackup.urls", "vhbackup.log",
     "vhbackup.systemd_notify", "vhbackup.proc", "vhbackup.credentials", "vhbackup.policy", "vhbackup.diskspace",
     "vhbackup.state", "vhbackup.lock", "vhbackup.events", "vhbackup.notifiers", "vhbackup.notifiers.smtp_email",
     "vhbackup.notifiers.webhook", "vhbackup.notifiers.ping"},
    # 1: alerts and the run record
    {"vhbackup.alerts", "vhbackup.metrics", "vhbackup.health", "vhbackup.journal", "vhbackup.outcome",
     "vhbackup.health_alerts", "vhbackup.monitor"},
    # 2: repositories
    {"vhbackup.restic", "vhbackup.backend", "vhbackup.runs", "vhbackup.retention", "vhbackup.treediff",
     "vhbackup.browse"},
    # 3: sources: files, database dumps, units, scratch space
    {"vhbackup.files", "vhbackup.databases", "vhbackup.databases.common", "vhbackup.databases.postgresql",
     "vhbackup.databases.mariadb", "vhbackup.databases.mongodb", "vhbackup.service_units", "vhbackup.scratch",
     "vhbackup.containers", "vhbackup.databases.runner", "vhbackup.container_check", "vhbackup.keys",
     "vhbackup.spotcheck"},
    # 4: selection and plan
    {"vhbackup.selection", "vhbackup.prechecks", "vhbackup.jobs", "vhbackup.context"},
    # 5: the command line
    {"vhbackup.commands", "vhbackup.cli", "vhbackup.__main__"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vhbackup"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("vhbackup"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if (ROOT.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                          or (ROOT.parent / candidate.replace(".", "/") / "__init__.py").exists() else base)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in ROOT.rglob("*.py")}


def layer(name: str) -> int:
    if name.startswith("vhbackup.commands."):
        return 5
    for i, members in enumerate(LAYERS):
        if name in members:
            return i
    raise AssertionError(f"{name} is in no layer: add it to LAYERS (and to docs/architecture.md)")


def test_every_module_has_a_layer_and_imports_only_downwards():
    wrong = []
    for name, deps in graph().items():
        for dep in deps:
            if dep == "vhbackup":
                continue
            if layer(dep) > layer(name):
                wrong.append(f"{name} (layer {layer(name)}) imports {dep} (layer {layer(dep)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if dep not in edges:
                continue
            if state.get(dep) == 1:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]) if dep in path else f"{node} -> {dep}")
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_no_module_outside_commands_imports_a_command_module():
    offenders = [f"{name} imports {dep}" for name, deps in graph().items() for dep in deps
                 if dep.startswith("vhbackup.commands.") and not name.startswith("vhbackup.commands")]
    assert not offenders, offenders


def test_only_proc_starts_processes():
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path.name == "proc.py":
            continue
        text = path.read_text()
        for needle in ("subprocess.Popen", "subprocess.run", "os.system", "os.popen", "os.exec", "shell=True"):
            if needle in text:
                offenders.append(f"{module_name(path)}: {needle}")
    assert not offenders, offenders
