"""``plugway new plugin NAME --kind KIND``: write an installable, tested plugin package.

The templates are package data under ``plugway/templates/plugin/`` (``common/`` for every
kind, then one folder per kind holding ``module.py.tmpl`` and ``test.py.tmpl``), filled with
:class:`string.Template` placeholders: ``$dist``, ``$module``, ``$entry``, ``$kind`` and
``$classname``.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from string import Template

KINDS = ("provider", "strategy", "filter", "logger")
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


class ScaffoldError(ValueError):
    """The name, kind or target folder cannot be used; the message says why and what would."""


def names(name: str, kind: str) -> dict[str, str]:
    """The placeholders for plugin ``name`` (``my-router`` -> distribution
    ``plugway-my-router``, module ``plugway_my_router``, entry point ``my_router``)."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"plugin name {name!r} is not usable: use lowercase letters, digits and single "
            "dashes or underscores, starting with a letter (for example 'my-router')"
        )
    if kind not in KINDS:
        raise ScaffoldError(f"--kind {kind!r} is unknown; choose one of {', '.join(KINDS)}")
    base = name.removeprefix("plugway-").removeprefix("plugway_")
    entry = base.replace("-", "_")
    return {
        "dist": "plugway-" + base,
        "module": "plugway_" + entry,
        "entry": entry,
        "kind": kind,
        "classname": "".join(part.capitalize() for part in entry.split("_")),
    }


def new_plugin(name: str, kind: str, parent: Path) -> Path:
    """Write the package into ``parent / dist`` and return that folder. Refuses to write
    into a folder that exists."""
    values = names(name, kind)
    root = parent / values["dist"]
    if root.exists():
        raise ScaffoldError(f"{root} already exists; choose another name or remove it")
    templates = files("plugway") / "templates" / "plugin"

    def fill(folder: str, template: str) -> str:
        return Template((templates / folder / template).read_text()).substitute(values)

    outputs = {
        root / "pyproject.toml": fill("common", "pyproject.toml.tmpl"),
        root / "README.md": fill("common", "README.md.tmpl"),
        root / f"{values['module']}.py": fill(kind, "module.py.tmpl"),
        root / "tests" / f"test_{values['module']}.py": fill(kind, "test.py.tmpl"),
    }
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
