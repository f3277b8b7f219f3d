"""The layers stay apart: plugins never import providers, providers never import plugins, and the
formats layer imports neither (translation lives once, in ``plugway.formats``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: folder -> the import prefixes its modules must not use.
FORBIDDEN = {
    "plugins": ("plugway.builtin_providers",),
    "builtin_providers": ("plugway.plugins",),
    "formats": ("plugway.builtin_providers", "plugway.plugins"),
}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def crossings(folder: str) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imported_modules(path):
            if name.startswith(FORBIDDEN[folder]):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_imports_across_layers(folder: str) -> None:
    assert crossings(folder) == []


def test_the_check_sees_an_import_across_the_line(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from plugway.builtin_providers.anthropic import X\nimport plugway.plugins.limits\n"
    )
    assert imported_modules(module) == [
        "plugway.builtin_providers.anthropic",
        "plugway.builtin_providers.anthropic.X",
        "plugway.plugins.limits",
    ]
