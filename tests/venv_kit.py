"""A throwaway virtualenv that sees what this test run sees, to ``pip install`` plugin
packages into as a user would, run their tests and the gateway from it."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path


class Venv:
    def __init__(self, root: Path) -> None:
        self.root = root
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)],
            check=True,
        )
        self.python = root / "bin" / "python"
        purelib = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        # --system-site-packages shows the base interpreter's packages; when this run itself
        # is in a virtualenv, add its site-packages too (first, .pth files included), so
        # plugway and pip resolve to what the test run uses.
        ours = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
        lines = [f"import site; site.addsitedir({path!r})" for path in dict.fromkeys(ours)]
        (Path(purelib) / "_parent_site.pth").write_text("\n".join(lines) + "\n")

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        timeout: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args],
            check=False,
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            env=None if env is None else {**os.environ, **env},
        )

    def pytest(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """Run a package's own tests here with only plugway's pytest plugin loaded, so
        whatever other pytest plugins the base interpreter holds cannot change the result."""
        return self.run(
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "plugway.testing.pytest_plugin",
            *args,
            cwd=cwd,
            env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        )

    def pip_install_editable(self, *packages: Path) -> None:
        """``pip install --no-deps -e`` each package. Builds run without isolation against a
        recent setuptools installed once into this venv (an isolated build per package
        fetches setuptools each time: a minute for four packages here)."""
        if not (self.root / ".setuptools-ready").exists():
            done = self.run(
                "-m", "pip", "install", "-q", "--disable-pip-version-check", "setuptools>=70.1"
            )
            assert done.returncode == 0, done.stdout + done.stderr
            (self.root / ".setuptools-ready").touch()
        args = [
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
        ]
        for package in packages:
            args += ["-e", str(package)]
        done = self.run(*args)
        assert done.returncode == 0, done.stdout + done.stderr
