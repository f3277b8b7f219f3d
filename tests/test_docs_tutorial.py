"""docs/plugin-tutorial.md works as written: its pyproject, plugin module and tests are cut
from the page's code blocks into a package, which is pip-installed into a throwaway
virtualenv, listed by ``plugway plugins`` and passes its own tests there."""

from __future__ import annotations

import json
import re
from pathlib import Path

from venv_kit import Venv

PAGE = Path(__file__).parent.parent / "docs" / "plugin-tutorial.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), re.S)


def test_tutorial_package_installs_is_listed_and_passes_its_tests(
    throwaway_venv: Venv, tmp_path: Path
) -> None:
    pyproject = next(b for b in blocks("toml") if "[project.entry-points.plugway]" in b)
    module = next(b for b in blocks("python") if "def register_strategies" in b)
    tests = next(b for b in blocks("python") if "def test_" in b)
    root = tmp_path / "plugway-cheapest-first"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text(pyproject)
    (root / "plugway_cheapest_first.py").write_text(module)
    (root / "tests" / "test_cheapest_first.py").write_text(tests)

    throwaway_venv.pip_install_editable(root)
    listed = throwaway_venv.run("-m", "plugway", "plugins", "--json")
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins["cheapest_first"]["strategies"] == ["cheapest_first"]
    run = throwaway_venv.pytest(str(root / "tests"), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
