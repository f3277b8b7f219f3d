"""Run the real gateway (``python -m plugway serve``) in a child process on a free loopback
port, as a user would, and collect what it logs.

Plugins that are not installed can be given as paths (a module file or a package folder):
:func:`plugin_site` makes each one look installed to the child, with a ``plugway`` entry
point named after the module, exactly as ``pip install`` would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson


def plugin_site(plugins: Sequence[str | Path], dest: Path) -> list[str]:
    """Make the plugin modules (``x.py`` files or ``x/`` package folders) in ``plugins``
    importable and discoverable: write a ``plugway_test_x-0.0.dist-info`` with the entry
    point ``x = x`` under ``dest`` for each. Returns the ``PYTHONPATH`` entries to add."""
    entries = [str(dest)]
    dest.mkdir(parents=True, exist_ok=True)
    for raw in plugins:
        path = Path(raw).resolve()
        if not path.exists():
            raise FileNotFoundError(f"plugin path {path} does not exist")
        name = path.stem if path.is_file() else path.name
        info = dest / f"plugway_test_{name}-0.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: plugway-test-{name}\nVersion: 0.0\n"
        )
        (info / "entry_points.txt").write_text(f"[plugway]\n{name} = {name}\n")
        if str(path.parent) not in entries:
            entries.append(str(path.parent))
    return entries


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_environment(
    env: Mapping[str, str] | None = None, pythonpath: Sequence[str | Path] = ()
) -> dict[str, str]:
    """This process's environment without ``PLUGWAY_*`` settings, plus ``env``, with
    ``pythonpath`` entries in front of ``PYTHONPATH``."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("PLUGWAY_")}
    out.update(env or {})
    if pythonpath:
        out["PYTHONPATH"] = os.pathsep.join(
            [str(p) for p in pythonpath] + [p for p in [out.get("PYTHONPATH")] if p]
        )
    return out


def run_plugway(
    *args: str, env: Mapping[str, str] | None = None, pythonpath: Sequence[str | Path] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the ``plugway`` CLI in a child process and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "plugway", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=child_environment(env, pythonpath),
    )


class GatewayProcess:
    """``plugway serve`` with a config given as TOML text (or a path, or nothing for the
    built-in default). ``env`` adds environment variables; ``pythonpath`` entries are put in
    front of ``PYTHONPATH`` (how tests "install" a plugin as a dist-info); ``plugins`` are
    plugin module paths made discoverable with :func:`plugin_site`; ``python`` is the
    interpreter to run (another virtualenv's, to serve what is installed there)."""

    def __init__(
        self,
        config: str | Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        pythonpath: Sequence[str | Path] = (),
        args: Sequence[str] = (),
        port: int | None = None,
        plugins: Sequence[str | Path] = (),
        python: str | Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="plugway-test-")
        self.python = str(python or sys.executable)
        self.config_path: Path | None = None
        if isinstance(config, Path):
            self.config_path = config
        elif isinstance(config, str):
            self.config_path = Path(self._tmp.name) / "plugway.toml"
            self.config_path.write_text(config)
        self.env = dict(env or {})
        self.pythonpath = [str(p) for p in pythonpath]
        if plugins:
            self.pythonpath += plugin_site(plugins, Path(self._tmp.name) / "site")
        self.args = list(args)
        self.lines: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def openai(self, **kwargs: Any) -> Any:
        """An ``openai.OpenAI`` client bound to this gateway (no SDK retries unless asked)."""
        import openai

        kwargs.setdefault("api_key", "sk-plugway-test")
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=self.base_url, **kwargs)

    def async_openai(self, **kwargs: Any) -> Any:
        """An ``openai.AsyncOpenAI`` client bound to this gateway."""
        import openai

        kwargs.setdefault("api_key", "sk-plugway-test")
        kwargs.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=self.base_url, **kwargs)

    def command(self) -> list[str]:
        cmd = [
            self.python,
            "-m",
            "plugway",
            "serve",
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
        ]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd + self.args

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        env = child_environment(self.env, self.pythonpath)
        self.process = subprocess.Popen(
            self.command(),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                time.sleep(0.1)
                raise RuntimeError(
                    f"the gateway exited with {self.process.returncode}:\n" + self.output()
                )
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the gateway did not become ready:\n" + self.output())

    def _collect(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def request_logs(self, wait_for: int = 0, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The JSON request records logged so far (waiting until there are ``wait_for``)."""
        deadline = time.monotonic() + timeout
        while True:
            records = []
            for line in list(self.lines):
                if line.startswith('{"event":"request"'):
                    records.append(orjson.loads(line))
            if len(records) >= wait_for or time.monotonic() > deadline:
                return records
            time.sleep(0.02)

    def request_record(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The request log record of one request, waiting for it to be written."""
        deadline = time.monotonic() + timeout
        while True:
            for record in self.request_logs():
                if record["request_id"] == request_id:
                    return record
            if time.monotonic() > deadline:
                raise AssertionError(f"no request log record for {request_id}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._tmp.cleanup()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
