"""The package's shape, without a grid: its modules import one another one
way only (no cycle, not even through an import inside a function), and the
binding takes a new session's options by name."""

import ast
import os

import pytest
import zgrid
from zgrid import _zgrid


def _package_imports():
    """{module: the package's modules it imports, anywhere in its body}."""
    root = os.path.dirname(zgrid.__file__)
    names = {f[:-3] for f in os.listdir(root) if f.endswith(".py")}
    graph = {}
    for name in names:
        with open(os.path.join(root, name + ".py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        uses = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    uses.add(node.module.split(".")[0])
                else:  # from . import x, y
                    uses.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zgrid."):
                uses.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                uses.update(a.name.split(".")[1] for a in node.names if a.name.startswith("zgrid."))
        graph[name] = {u for u in uses if u in names and u != name}
    return graph


def test_the_package_modules_import_one_another_without_a_cycle():
    graph = _package_imports()
    assert "progress" in graph["grid"]  # the edge whose reverse made the cycle
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import cycle: " + " -> ".join(path + [m])
        state[m] = "open"
        for u in sorted(graph[m]):
            visit(u, path + [m])
        state[m] = "done"

    for m in sorted(graph):
        visit(m, [])


def test_session_options_are_taken_by_name():
    o = _zgrid.SessionOptions(service="echo", durable=True, stateful=True, deadline=1.5,
                              task_timeout=2, client_idle_timeout=0.25)
    assert (o.service, o.durable, o.stateful) == ("echo", True, True)
    assert (o.deadline, o.task_timeout, o.client_idle_timeout) == (1.5, 2.0, 0.25)
    d = _zgrid.SessionOptions()
    assert (d.service, d.durable, d.stateful, d.deadline) == ("", False, False, 0.0)
    with pytest.raises(TypeError, match="no option colour"):
        _zgrid.SessionOptions(service="echo", colour="red")
    with pytest.raises(TypeError):
        _zgrid.SessionOptions("echo")  # by name only
