"""The floors of ARCHITECTURE.md hold: no app imports an app on a higher floor.

Every module of every app is parsed (``ast``, nothing is imported), and every ``import`` in
it counts, at module level or inside a function, under ``TYPE_CHECKING`` or not: a lazy
import still ties the lower app to the higher one. A lower app that must start work above
it sends a Celery task by name, which is a string and not an import.

Floors, lowest first (apps on one floor may import each other):
core < common, modelserver < catalog < interactions < review, datasets < training, evaluation < registry
< gateway, discovery, loop, reports < home. ``home`` sits above the loop: the dashboard composes every
app's summary selector, the loop's included.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOORS: list[tuple[str, ...]] = [
    ("core",),
    ("common", "modelserver"),  # the model server needs only the core (and the settings)
    ("catalog",),
    ("interactions",),
    ("review", "datasets"),
    ("training", "evaluation"),
    ("registry",),
    ("gateway", "discovery", "loop", "reports"),
    ("home",),
]
LEVEL = {app: n for n, floor in enumerate(FLOORS) for app in floor}
# Where each app's package lives (review and registry sit at the top level, the rest under ftops/).
PACKAGES = {app: (f"{app}" if app in ("review", "registry") else f"ftops.{app}") for app in LEVEL}

# Known imports up the floors that other work still has to remove, as (lower, higher) with the
# owner in a comment. Empty now: training -> registry and evaluation -> registry were already
# gone, and catalog -> datasets (the catalog import writing examples) left with the catalog
# import use-case of issue 11. The stale check below keeps the list from outliving a fix.
ALLOWED: set[tuple[str, str]] = set()


def app_of(module: str) -> str | None:
    for app, package in PACKAGES.items():
        if module == package or module.startswith(package + "."):
            return app
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, *, name: str | None = None) -> set[str]:
    """Absolute names of everything the module imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = name or module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # "from ftops import loop" imports an app too
            found.update(f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def app_modules() -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for app, package in PACKAGES.items():
        folder = ROOT.joinpath(*package.split("."))
        out[app] = sorted(folder.rglob("*.py")) if folder.is_dir() else []
    return out


def upward_imports() -> dict[tuple[str, str], list[str]]:
    """{(lower app, higher app): ["module imports target", ...]} for every import up the floors."""
    found: dict[tuple[str, str], list[str]] = {}
    for app, paths in app_modules().items():
        for path in paths:
            for target in sorted(imported_modules(path)):
                other = app_of(target)
                if other is not None and LEVEL[other] > LEVEL[app]:
                    found.setdefault((app, other), []).append(f"{module_name(path)} imports {target}")
    return found


def test_every_floor_app_is_found() -> None:
    modules = app_modules()
    # gateway is planned; every other app exists with modules to check
    missing = sorted(app for app, paths in modules.items() if not paths and app != "gateway")
    assert missing == []


def test_no_app_imports_a_higher_floor() -> None:
    found = upward_imports()
    new = {pair: lines for pair, lines in found.items() if pair not in ALLOWED}
    assert new == {}, "imports up the floors (send a task by name instead, or move the code up):\n" + "\n".join(
        line for lines in new.values() for line in lines)


def test_the_allow_list_only_holds_imports_that_still_exist() -> None:
    fixed = sorted(ALLOWED - set(upward_imports()))
    assert fixed == [], f"no longer imported up the floors, remove from ALLOWED: {fixed}"


def test_the_checker_sees_lazy_relative_and_from_imports(tmp_path: Path) -> None:
    source = ("from __future__ import annotations\n"
              "from . import models\n"
              "from ..loop import services\n"
              "def f() -> None:\n"
              "    import ftops.home.views\n"
              "    from registry.selectors import registry_summary\n")
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    names = imported_modules(path, name="ftops.datasets.probe")
    assert {"ftops.datasets.models", "ftops.loop.services", "ftops.home.views",
            "registry.selectors.registry_summary"} <= names
    assert {app_of(n) for n in names} >= {"datasets", "loop", "home", "registry"}
