"""No import circles between zkpy's modules.

Every module under zkpy/ is parsed with `ast` (nothing is imported) and its imports
collected: at module level, inside functions and classes, and under `if TYPE_CHECKING:`.
An import inside a function only hides a circle until the function runs; a TYPE_CHECKING
import never runs, but it is still a dependency of the module on the one it names (the
type checker follows it, and the design wants those modules apart).  Today's one circle
(zkpy/server/{server,connection,quorum,fourletter}.py) is held by both: server.py imports
the others inside functions and they import ZkServer under TYPE_CHECKING; counting only
the imports that run would show no circle at all.  `import_graph(type_checking=False)`
gives the runtime-only graph.  Each edge in a failure says which kind of import made it.

Relative imports are resolved against the importing module's package; an import of a
package counts as its `__init__`, and `from p import x` where `p/x.py` or `p/x/` exists
counts as that submodule (otherwise as `p`).  The implicit import of parent packages
(`import a.b.c` runs `a/__init__` and `a/b/__init__` first) is not counted: a package's
`__init__` importing its own submodules is no circle.

A circle is a strongly connected component of the module graph with more than one module,
or a module importing itself; the failure lists each with the import lines that make it.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable
from pathlib import Path

import zkpy

ZKPY_DIR = Path(zkpy.__file__).resolve().parent


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under root (the directory of `package`)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if (Path(dirpath) / d / "__init__.py").exists())
        rel = Path(dirpath).relative_to(root).parts
        for name in sorted(filenames):
            if name.endswith(".py"):
                parts = (package, *rel) if name == "__init__.py" else (package, *rel, name[:-3])
                out[".".join(parts)] = Path(dirpath) / name
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterable[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement at any depth, with where it is: "", "in a function" or
    "TYPE_CHECKING"."""
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, kind = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, kind
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend((n, "TYPE_CHECKING") for n in node.body)
            stack.extend((n, kind) for n in node.orelse)
        else:
            inner = "in a function" if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else kind
            stack.extend((n, kind or inner) for n in ast.iter_child_nodes(node))


def import_graph(root: Path, package: str, type_checking: bool = True) -> dict[str, dict[str, list[str]]]:
    """module -> {imported module -> ["file:line", ...]}, for imports within `package`;
    without the `if TYPE_CHECKING:` ones if type_checking is False."""
    modules = _modules(root, package)
    graph: dict[str, dict[str, list[str]]] = {m: {} for m in modules}

    def resolve(name: str) -> str | None:
        """The module a dotted name loads: itself, or the nearest enclosing one we have."""
        while name and name not in modules:
            if "." not in name:
                return None
            name = name.rsplit(".", 1)[0]
        return name or None

    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        for node, kind in sorted(_import_nodes(tree), key=lambda nk: nk[0].lineno):
            if kind == "TYPE_CHECKING" and not type_checking:
                continue
            where = f"{path.relative_to(root.parent)}:{node.lineno}" + (f" {kind}" if kind else "")
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                for a in node.names:
                    sub = f"{prefix}.{a.name}"
                    targets.append(sub if a.name != "*" and sub in modules else prefix)
            for t in targets:
                if t != package and not t.startswith(package + "."):
                    continue
                target = resolve(t)
                if target is not None:
                    graph[mod].setdefault(target, []).append(where)
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components with more than one module, and self-importing modules
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1 or v in graph[v]:
                        out.append(sorted(comp))
    return sorted(out)


def describe(graph: dict[str, dict[str, list[str]]], found: list[list[str]]) -> str:
    lines = []
    for comp in found:
        lines.append("import circle: " + ", ".join(comp))
        members = set(comp)
        for m in comp:
            for t, wheres in sorted(graph[m].items()):
                if t in members:
                    lines.append(f"    {m} -> {t}  ({', '.join(wheres)})")
    return "\n".join(lines)


def test_no_import_circles_in_zkpy():
    graph = import_graph(ZKPY_DIR, "zkpy")
    assert len(graph) > 20 and "zkpy.server.peers" in graph  # the walk saw the package
    found = cycles(graph)
    assert not found, "\n" + describe(graph, found)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "pkg"


def test_the_checker_finds_known_circles_and_passes_a_clean_package(tmp_path):
    bad = _write(tmp_path / "bad", {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/a.py": "from ..b import g\n",  # module level
        "pkg/b.py": "def g():\n    from .sub import a\n",  # inside a function: still a circle
        "pkg/c.py": "import pkg.c\n",  # a self-loop
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import e\n",
        "pkg/e.py": "from . import d\n",  # a circle only through TYPE_CHECKING
    })
    graph = import_graph(bad, "pkg")
    assert graph["pkg.sub.a"] == {"pkg.b": ["pkg/sub/a.py:1"]}
    assert graph["pkg.b"] == {"pkg.sub.a": ["pkg/b.py:2 in a function"]}
    assert graph["pkg.d"] == {"pkg.e": ["pkg/d.py:3 TYPE_CHECKING"]}
    found = cycles(graph)
    assert found == [["pkg.b", "pkg.sub.a"], ["pkg.c"], ["pkg.d", "pkg.e"]]
    assert "    pkg.b -> pkg.sub.a  (pkg/b.py:2 in a function)" in describe(graph, found).splitlines()
    assert cycles(import_graph(bad, "pkg", type_checking=False)) == [["pkg.b", "pkg.sub.a"], ["pkg.c"]]

    good = _write(tmp_path / "good", {
        "pkg/__init__.py": "from . import a, b\n",  # a package importing its submodules: no circle
        "pkg/a.py": "import os\nfrom . import b\nfrom .b import x\n",
        "pkg/b.py": "x = 1\ndef f():\n    import json\n",
    })
    graph = import_graph(good, "pkg")
    assert graph["pkg.a"] == {"pkg.b": ["pkg/a.py:2", "pkg/a.py:3"]}
    assert cycles(graph) == []
