"""The shape of the code: tinybert/'s modules import one another without circles (but for the
tensor <-> ops pair, a Tensor's operators being ops), nothing in tinybert/ or train.py imports
PyTorch, train.py stays a short script over the library, and the tools use the library, not
train.py. Imports are read with ast, at module level and inside functions alike."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tinybert"
ALLOWED_CYCLES = [{"tinybert.tensor", "tinybert.ops"}]
TRAIN_LINES, TRAIN_HELP_LINES = 300, 80


def module_name(path, root=ROOT):
    """tinybert/run/files.py -> "tinybert.run.files"; tinybert/fast/__init__.py -> "tinybert.fast"."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path, modules, root=ROOT):
    """The modules of ``modules`` (dotted names) that the file ``path`` imports. ``from M import
    x`` is an import of M.x where that is a module (``from . import files``), else of M."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source)
    return {module for module in found if module in modules}


def import_graph(package=PACKAGE, root=ROOT):
    """{module: set of the package's modules it imports} for every .py file under ``package``."""
    paths = sorted(package.rglob("*.py"))
    modules = {module_name(path, root) for path in paths}
    return {module_name(path, root): imported_modules(path, modules, root) - {module_name(path, root)}
            for path in paths}


def strongly_connected_components(graph):
    """Tarjan's algorithm, iterative: the sets of modules that import one another in a circle
    (a component of one module without a self-import is no circle, and is left out)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]

    def visit(start):
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter[0]
                    counter[0] += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_graph_sees_every_kind_of_import(tmp_path):
    package = tmp_path / "tinybert"
    (package / "run").mkdir(parents=True)
    sources = {"__init__.py": "from . import a\n", "a.py": "def f():\n    from .run import b\n",
               "c.py": "import tinybert.run.b\n", "d.py": "import os\n", "g.py": "from tinybert.d import x\n",
               "run/__init__.py": "", "run/b.py": "from .. import c\nfrom . import e\n", "run/e.py": "from ..d import x\n"}
    for name, text in sources.items():
        (package / name).write_text(text)
    graph = import_graph(package, tmp_path)
    assert graph["tinybert"] == {"tinybert.a"}
    assert graph["tinybert.a"] == {"tinybert.run.b"}                 # inside a function too
    assert graph["tinybert.c"] == {"tinybert.run.b"}
    assert graph["tinybert.run.b"] == {"tinybert.c", "tinybert.run.e"}
    assert graph["tinybert.run.e"] == {"tinybert.d"} and graph["tinybert.g"] == {"tinybert.d"}
    assert graph["tinybert.d"] == set()                              # os is not one of the package's
    assert strongly_connected_components(graph) == [{"tinybert.c", "tinybert.run.b"}]


def test_the_modules_of_tinybert_import_one_another_without_circles():
    graph = import_graph()
    assert {"tinybert.seam", "tinybert.fast", "tinybert.run.session", "tinybert.tensor"} <= set(graph)
    circles = [sorted(component) for component in strongly_connected_components(graph)
               if component not in ALLOWED_CYCLES]
    assert not circles, f"modules that import one another in a circle: {circles}"


def top_level_imports(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")) + [ROOT / "train.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_and_train_never_import_pytorch(path):
    assert not {"torch", "transformers"} & top_level_imports(path)


def test_train_py_is_a_short_script():
    lines = (ROOT / "train.py").read_text(encoding="utf-8").count("\n")
    assert lines <= TRAIN_LINES, f"train.py has {lines} lines (at most {TRAIN_LINES}): move machinery into tinybert/"
    shown = subprocess.run([sys.executable, "train.py", "--help"], capture_output=True, text=True, cwd=ROOT,
                           check=True).stdout
    assert shown.startswith("usage:")
    assert len(shown.splitlines()) <= TRAIN_HELP_LINES, f"train.py --help prints {len(shown.splitlines())} lines"


@pytest.mark.parametrize("path", sorted((ROOT / "tools").rglob("*.py")), ids=lambda p: p.name)
def test_no_tool_imports_train(path):
    # the tools use the library (tinybert/); train.py is the command line, not a module to import
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(alias.name == "train" for alias in node.names), f"{path.name}: import train"
        elif isinstance(node, ast.ImportFrom):
            assert not (node.level == 0 and node.module == "train"), f"{path.name}: from train import"
