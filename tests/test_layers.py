"""The import rules of the code base (README, architecture): the HTTP edge sits on top.

- Domain code (services, repositories, models, schemas, db, observability) imports
  nothing from the HTTP edge (`app.http`, any `router` module) nor from the web
  framework: a service can be driven by a script or a test without a request.
- No module imports another package's private (`_`-prefixed) names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
WEB_FRAMEWORKS = {"fastapi", "starlette", "sse_starlette"}
ENTRY_POINTS = {"app.main", "app.lifespan", "app.__main__"}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(APP.rglob("*.py")):
        name = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
        yield name.removesuffix(".__init__"), ast.parse(path.read_text(), str(path))


def _imports(tree: ast.Module) -> Iterator[tuple[str, str | None]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None


def _is_edge(module: str) -> bool:
    return (
        module == "app.http"
        or module.startswith("app.http.")
        or module.rsplit(".", 1)[-1].endswith("router")
        or module in ENTRY_POINTS
    )


def test_domain_code_never_imports_the_http_edge_or_the_web_framework() -> None:
    upward = [
        f"{module} imports {target}"
        for module, tree in _modules()
        if not _is_edge(module)
        for target, _ in _imports(tree)
        if _is_edge(target) or target.split(".")[0] in WEB_FRAMEWORKS
    ]
    assert upward == []


def test_no_module_imports_another_packages_private_names() -> None:
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    private = [
        f"{module} imports {target}.{name}"
        for module, tree in _modules()
        for target, name in _imports(tree)
        if target.startswith("app.")
        and name is not None
        and name.startswith("_")
        and package(target) != package(module)
    ]
    assert private == []


def test_the_rules_see_the_code() -> None:
    # Guards the two tests above against passing because they read nothing.
    modules = dict(_modules())
    assert ("app.http.deps", "ContainerDep") in set(_imports(modules["app.http.health"]))
    assert _is_edge("app.documents.router") and _is_edge("app.http.deps")
    assert not _is_edge("app.documents.service") and not _is_edge("app.accounts.models")


def test_tests_import_helpers_from_support_never_from_conftest_or_each_other() -> None:
    tests = Path(__file__).resolve().parent
    crossing = [
        f"{path.name} imports {target}"
        for path in sorted(tests.glob("*.py"))
        for target, _ in _imports(ast.parse(path.read_text(), str(path)))
        if target == "tests.conftest" or target.startswith("tests.test_")
    ]
    assert crossing == []
