"""Meta-tests, datasette style: every hook in hooks/hookspecs.py has a documentation section
titled with its exact signature, the page is what the generator makes from the docstrings,
and every hook has a ``test_hook_<name>`` test somewhere under tests/."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest
from plugway.hooks import hookspecs

ROOT = Path(__file__).parent.parent


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_hooks", ROOT / "docs" / "generate_hooks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
HOOKS = GENERATOR.hook_names()


def test_the_generator_finds_every_hookspec() -> None:
    specs = {
        name
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, "plugway_spec")
    }
    assert set(HOOKS) == specs and len(HOOKS) >= 11


def test_hooks_page_is_generated_from_the_docstrings() -> None:
    assert (ROOT / "docs" / "hooks.md").read_text() == GENERATOR.render(), (
        "docs/hooks.md is stale: run python docs/generate_hooks.py"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hook_is_documented(hook: str) -> None:
    page = (ROOT / "docs" / "hooks.md").read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"\n### {hook}({params})\n" in page
    section = page.split(f"### {hook}(", 1)[1].split("\n### ", 1)[0]
    first_line = inspect.cleandoc(getattr(hookspecs, hook).__doc__ or "").splitlines()[0]
    assert first_line and first_line in section


def test_no_section_documents_a_hook_that_does_not_exist() -> None:
    page = (ROOT / "docs" / "hooks.md").read_text()
    assert set(re.findall(r"^### (\w+)\(", page, re.M)) == set(HOOKS)


def _test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        names.update(re.findall(r"^(?:def |async def )?(test_hook_\w+)\b", path.read_text(), re.M))
    return names


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hook_has_a_test(hook: str) -> None:
    assert f"test_hook_{hook}" in _test_names(), f"no test named test_hook_{hook} under tests/"


def test_generator_check_mode_reports_a_stale_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GENERATOR, "PAGE", tmp_path / "hooks.md")
    (tmp_path / "hooks.md").write_text("# old\n")
    assert GENERATOR.main(["--check"]) == 1
    assert GENERATOR.main([]) == 0
    assert GENERATOR.main(["--check"]) == 0


def test_plugway_exports_what_plugins_need() -> None:
    import plugway

    assert "hookimpl" in plugway.__all__
    assert all(hasattr(plugway, name) for name in plugway.__all__)
