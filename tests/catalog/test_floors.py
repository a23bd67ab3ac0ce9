"""The catalog sits below curation and every app above it: it never imports them.

It reaches curation only by task name (``ftops.catalog.services.EXAMPLES_IMPORT_TASK``).
The scan reads every module's source, so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ftops.catalog

CATALOG = Path(ftops.catalog.__file__).parent
# Everything above the catalog (ARCHITECTURE.md's floors).
ABOVE = ("ftops.datasets", "ftops.interactions", "review", "ftops.training", "ftops.evaluation", "registry",
         "ftops.gateway", "ftops.discovery", "ftops.loop")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # ``from ftops import datasets`` names the app in the imported names.
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def is_above(module: str) -> bool:
    return any(module == app or module.startswith(app + ".") for app in ABOVE)


def test_no_catalog_module_imports_an_app_above_it() -> None:
    modules = sorted(CATALOG.rglob("*.py"))
    assert len(modules) > 10  # the scan sees the package (services, importers, migrations, ...)

    offending = [f"{path.relative_to(CATALOG.parent.parent)}:{line} imports {module}"
                 for path in modules for line, module in imported_modules(path) if is_above(module)]

    assert offending == []


def test_the_scan_catches_a_datasets_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from ftops.datasets.models import TrainingExample\n"
                      "from ftops import datasets\nimport review.services\nfrom ftops.catalog import models\n")

    assert sorted(m for _, m in imported_modules(sample) if is_above(m)) == [
        "ftops.datasets", "ftops.datasets.models", "ftops.datasets.models.TrainingExample", "review.services"]
