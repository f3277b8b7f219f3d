"""``plugway new plugin NAME --kind K`` writes a package that installs, passes its own tests
and is listed by ``plugway plugins``: each kind generated into tmp, ``pip install``-ed into a
throwaway virtualenv, its tests run there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugway.cli import main
from plugway.scaffold import KINDS, ScaffoldError, names
from venv_kit import Venv


def test_names_are_normalised_and_checked() -> None:
    assert names("my-router", "strategy") == {
        "dist": "plugway-my-router",
        "module": "plugway_my_router",
        "entry": "my_router",
        "kind": "strategy",
        "classname": "MyRouter",
    }
    assert names("plugway-x", "logger")["dist"] == "plugway-x"
    with pytest.raises(ScaffoldError, match="lowercase letters"):
        names("My Router", "strategy")
    with pytest.raises(ScaffoldError, match="choose one of provider, strategy, filter, logger"):
        names("ok", "router")


def test_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "plugin", "twice", "--kind", "filter", "--dir", str(tmp_path)]) == 0
    assert main(["new", "plugin", "twice", "--kind", "filter", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_every_kind_installs_passes_its_tests_and_is_listed(
    tmp_path: Path, throwaway_venv: Venv
) -> None:
    for kind in KINDS:
        assert main(["new", "plugin", f"kit-{kind}", "--kind", kind, "--dir", str(tmp_path)]) == 0
    packages = sorted(tmp_path.glob("plugway-kit-*"))
    assert [p.name for p in packages] == sorted(f"plugway-kit-{k}" for k in KINDS)
    venv = throwaway_venv
    venv.pip_install_editable(*packages)

    tests = venv.pytest(*(str(p / "tests") for p in packages), cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "skipped" not in tests.stdout

    listed = venv.run("-m", "plugway", "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    for kind in KINDS:
        info = plugins[f"kit_{kind}"]
        assert info["distribution"] == f"plugway-kit-{kind}" and info["version"] == "0.1.0"
    assert plugins["kit_provider"]["provider_types"] == ["kit_provider"]
    assert plugins["kit_strategy"]["strategies"] == ["kit_strategy"]
    assert "pre_route" in plugins["kit_filter"]["hooks"]
    assert "post_response" in plugins["kit_logger"]["hooks"]
