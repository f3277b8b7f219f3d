"""Side-by-side benchmark: the fake upstream, the load generator and every gateway, interleaved
over rounds, with the gateways pinned to one core and the upstream and load on the other.

Run it inside a network namespace that has only loopback (the peers carry code that calls
outside hosts)::

    unshare -n -- /work/venvs/perf/bin/python bench/run.py --out bench/results/run.json

It refuses to run with other network interfaces present unless ``--allow-host-network`` is
given (the smoke test, which starts no peer). Every load is bounded in count and time; only
loopback is ever targeted. Peers that are not installed are reported as such.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
UP_PORT = 9100
MODELS = ("l0-s", "l20-s", "l0-l", "l20-l", "stream", "stream-hold")
TICK = os.sysconf("SC_CLK_TCK")
LITELLM_VENV = Path(os.environ.get("BENCH_LITELLM_VENV", "/tmp/peers/litellm-venv"))
PORTKEY_DIR = Path(
    os.environ.get("BENCH_PORTKEY_DIR", "/tmp/peers/portkey/node_modules/@portkey-ai/gateway")
)


def log(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# -- process accounting ------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK


def rss_kb(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


# -- targets -----------------------------------------------------------------------------------


class Target:
    def __init__(
        self,
        name: str,
        port: int,
        cmd: list[str] | None,
        *,
        env: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        key: str = "sk-bench",
        streams: bool = True,
    ) -> None:
        self.name, self.port, self.cmd = name, port, cmd
        self.env = env or {}
        self.headers = headers or {}
        self.key = key
        self.streams = streams
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None
        self.log_path = Path(tempfile.gettempdir()) / f"bench-{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, core: str) -> None:
        if self.cmd is None:
            return
        env = {**os.environ, **self.env}
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                ["taskset", "-c", core, *self.cmd],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 120.0) -> bool:
        body = json.dumps(
            {"model": "l0-s", "messages": [{"role": "user", "content": "hi"}]}
        ).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                self.error = f"exited with {self.proc.returncode}; see {self.log_path}"
                return False
            request = urllib.request.Request(
                self.url,
                data=body,
                headers={
                    "content-type": "application/json",
                    "authorization": f"Bearer {self.key}",
                    **self.headers,
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    if answer.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.5)
        self.error = f"not ready after {timeout:.0f}s; see {self.log_path}"
        return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pids = tree(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            for p in pids:
                with contextlib.suppress(OSError):
                    os.kill(p, 9)
            self.proc.wait(5)


def plugway_config(port: int, path: Path) -> Path:
    models = "\n".join(
        f'[[models]]\nname = "{m}"\ntargets = [{{ provider = "up", model = "{m}" }}]\n'
        for m in MODELS
    )
    path.write_text(
        f"""[server]
host = "127.0.0.1"
port = {port}

[providers.up]
type = "openai"
base_url = "http://127.0.0.1:{UP_PORT}/v1"
api_key = "sk-upstream"

{models}"""
    )
    return path


def litellm_config(path: Path) -> Path:
    lines = ["model_list:"]
    for m in MODELS:
        lines += [
            f"  - model_name: {m}",
            f"    litellm_params: {{model: openai/{m}, api_base: 'http://127.0.0.1:{UP_PORT}/v1', api_key: sk-upstream}}",
        ]
    lines += ["general_settings:", "  master_key: sk-bench"]
    path.write_text("\n".join(lines) + "\n")
    return path


def plugway_at(rev: str) -> Path:
    """A virtualenv (system site-packages for the dependencies) with plugway as of git
    revision ``rev`` installed, to measure each hot-path change against the one before."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=HERE, capture_output=True, check=True, text=True
    ).stdout.strip()
    venv = Path(tempfile.gettempdir()) / f"plugway-bench-{sha}"
    if (venv / "bin" / "plugway").exists():
        return venv
    src = venv.with_name(venv.name + "-src")
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", sha], cwd=HERE.parent, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    wheels = src / "dist"
    subprocess.run(  # built with this interpreter's setuptools, installed as a wheel
        [
            base_python,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(src),
        ],
        check=True,
    )
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", *map(str, wheels.glob("*.whl"))],
        check=True,
    )
    return venv


def make_targets(tmp: Path, wanted: list[str], revs: list[str]) -> dict[str, Target]:
    plugway = [str(Path(PY).parent / "plugway"), "serve", "--log-level", "INFO", "--config"]
    noop_env = {"PYTHONPATH": str(HERE / "noop_plugin")}
    null = [PY, str(HERE / "null_proxy.py"), "--upstream", f"http://127.0.0.1:{UP_PORT}/v1"]
    all_targets = {
        "direct": Target("direct", UP_PORT, None),
        "null": Target("null", 9201, [*null, "--port", "9201", "--transport", "aiohttp"]),
        "null-stock": Target("null-stock", 9202, [*null, "--port", "9202", "--transport", "stock"]),
        "null-tuned": Target("null-tuned", 9203, [*null, "--port", "9203", "--transport", "tuned"]),
        "null-direct": Target(
            "null-direct", 9204, [*null, "--port", "9204", "--transport", "direct"]
        ),
        "null-raw": Target("null-raw", 9205, [*null, "--port", "9205", "--transport", "raw"]),
        "plugway": Target(
            "plugway", 9300, [*plugway, str(plugway_config(9300, tmp / "plugway.toml"))]
        ),
        "plugway-noop": Target(
            "plugway-noop",
            9301,
            [*plugway, str(plugway_config(9301, tmp / "plugway-noop.toml"))],
            env=noop_env,
            streams=False,
        ),
    }
    for i, rev in enumerate(revs):
        name = f"plugway@{rev}"
        port = 9310 + i
        target = Target(name, port, None)
        try:
            venv = plugway_at(rev)
            target.cmd = [
                str(venv / "bin" / "plugway"),
                "serve",
                "--log-level",
                "INFO",
                "--config",
                str(plugway_config(port, tmp / f"plugway-{i}.toml")),
            ]
        except (OSError, subprocess.CalledProcessError) as exc:
            target.error = f"could not build {rev}: {exc}"
        all_targets[name] = target
        wanted.append(name)
    litellm_bin = LITELLM_VENV / "bin" / "litellm"
    litellm = Target(
        "litellm",
        9400,
        [
            str(litellm_bin),
            "--config",
            str(litellm_config(tmp / "litellm.yaml")),
            "--host",
            "127.0.0.1",
            "--port",
            "9400",
            "--num_workers",
            "1",
        ],
        env={
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY_DISABLED": "true",
            "LITELLM_LOG": "ERROR",
        },
    )
    if not litellm_bin.exists():
        litellm.error = f"not installed ({litellm_bin} missing)"
    all_targets["litellm"] = litellm
    portkey_js = PORTKEY_DIR / "build" / "start-server.js"
    portkey = Target(
        "portkey",
        9500,
        [shutil.which("node") or "node", str(portkey_js), "--port=9500", "--headless"],
        headers={
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": f"http://127.0.0.1:{UP_PORT}/v1",
        },
    )
    if not portkey_js.exists():
        portkey.error = f"not installed ({portkey_js} missing)"
    all_targets["portkey"] = portkey
    return {name: all_targets[name] for name in wanted}


# -- measurements ------------------------------------------------------------------------------


def load(target: Target, mode: str, timeout: float = 120.0, **options: Any) -> dict[str, Any]:
    cmd = ["taskset", "-c", "1", PY, str(HERE / "load.py"), mode, "--url", target.url]
    cmd += ["--key", target.key]
    for name, value in target.headers.items():
        cmd += ["--header", f"{name}:{value}"]
    for name, value in options.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    pid = target.pid
    before = cpu_seconds(pid) if pid else 0.0
    t0 = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        result: dict[str, Any] = json.loads(done.stdout or b"{}") if done.returncode == 0 else {}
        if done.returncode != 0:
            result = {"error": done.stderr.decode()[-500:]}
    except subprocess.TimeoutExpired:
        result = {"error": "load generator timed out"}
    result["wall"] = round(time.monotonic() - t0, 3)
    if pid:
        result["cpu_s"] = round(cpu_seconds(pid) - before, 3)
        ok = result.get("ok") or result.get("complete") or 0
        if ok:
            result["cpu_ms_per_req"] = round(result["cpu_s"] * 1000 / ok, 3)
    return result


def settle(target: Target, limit: float = 20.0) -> None:
    """Wait until the target stops burning CPU (a slow peer works off its backlog), so it does
    not disturb the next measurement on the shared core."""
    if not target.pid:
        return
    deadline = time.monotonic() + limit
    last = cpu_seconds(target.pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = cpu_seconds(target.pid)
        if now - last < 0.03:
            return
        last = now


def rotate(items: list[Target], n: int) -> list[Target]:
    n %= max(1, len(items))
    return items[n:] + items[:n]


def median(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return round(statistics.median(clean), 3) if clean else None


def closed_points(
    targets: list[Target], points: list[tuple[str, int]], rounds: int, duration: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in range(rounds):
        for model, conc in points:
            for target in rotate(targets, r):
                result = load(
                    target, "closed", model=model, concurrency=conc, duration=duration, warmup=0.5
                )
                settle(target)
                out.setdefault(f"{model}@{conc}", {}).setdefault(target.name, []).append(result)
                log(
                    f"r{r} {model}@{conc} {target.name}: rps={result.get('rps')} "
                    f"p50={result.get('p50')} p99={result.get('p99')} err={result.get('errors')} "
                    f"cpu/req={result.get('cpu_ms_per_req')}ms"
                )
    return out


def open_ladder(
    targets: list[Target], rates: list[int], duration: float, direct: Target
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    alive = [t for t in targets if t is not direct]
    strikes: set[str] = set()
    for rate in rates:
        if not alive:
            break
        base = load(direct, "open", model="l0-s", rate=rate, duration=duration, timeout=30)
        out.setdefault(str(rate), {})["direct"] = base
        for target in list(alive):
            result = load(target, "open", model="l0-s", rate=rate, duration=duration, timeout=30)
            settle(target)
            if result.get("p99") is not None and base.get("p99") is not None:
                result["added_p99"] = round(result["p99"] - base["p99"], 3)
                result["added_p50"] = round(result["p50"] - base["p50"], 3)
            out[str(rate)][target.name] = result
            log(
                f"open {rate}/s {target.name}: ok={result.get('ok')}/{result.get('sent')} "
                f"added p99={result.get('added_p99')} err={result.get('errors')}"
            )
            # Out after errors, or over 50 ms added at two rates in a row (one spike from
            # another tenant of the machine does not end a target's ladder).
            over = bool(result.get("errors")) or (result.get("added_p99") or 1e9) > 50
            if over and (result.get("errors") or target.name in strikes):
                alive.remove(target)
            elif over:
                strikes.add(target.name)
            else:
                strikes.discard(target.name)
    return out


def streams_with_peak_rss(target: Target, **options: Any) -> dict[str, Any]:
    """Run a ``stream`` load against ``target`` while a thread reads its resident memory
    every 50 ms; the result gains ``rss_before_kb``, ``rss_peak_kb`` and ``kb_per_stream``
    (the growth divided by the streams open at once, as the load generator counts them)."""
    import threading

    pid = target.pid
    before = rss_kb(pid) if pid else 0
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while pid and not stop.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = load(target, "stream", **options)
    stop.set()
    sampler.join()
    settle(target)
    if pid:
        opened = result.get("max_open") or 0
        result["rss_before_kb"], result["rss_peak_kb"] = before, peak[0]
        result["kb_per_stream"] = round((peak[0] - before) / opened, 2) if opened else None
    return result


def stream_ladder(
    targets: list[Target], counts: list[int], ramp: float, *, stop_on_failure: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    alive = [t for t in targets if t.streams]
    for count in counts:
        for target in list(alive):
            result = streams_with_peak_rss(
                target, model="stream", streams=count, ramp=ramp, timeout=60
            )
            out.setdefault(str(count), {})[target.name] = result
            log(
                f"streams {count} {target.name}: held={result.get('held')} "
                f"stalled={result.get('stalled')} failed={result.get('failed')} "
                f"maxgap p99={(result.get('max_gap') or {}).get('p99')} "
                f"kb/stream={result.get('kb_per_stream')}"
            )
            if stop_on_failure and result.get("held") != count:
                alive.remove(target)
    return out


def memory(targets: list[Target], count: int, ramp: float) -> dict[str, Any]:
    """Resident memory per open stream: 50 streams first (lazily built code paths, pools),
    then ``count`` streams paced at 100 ms (6.4 s each), so all of them are open at once while
    the peak is read; per stream = (peak - RSS after the warm-up) / streams open at once."""
    out: dict[str, Any] = {}
    for target in [t for t in targets if t.streams and t.pid]:
        load(target, "stream", model="stream", streams=50, ramp=0.2, timeout=30)
        settle(target)
        time.sleep(1.0)
        result = streams_with_peak_rss(
            target,
            model="stream-hold",
            streams=count,
            ramp=ramp,
            stall_ms=1000,
            expect_events=64,
            timeout=120,
        )
        opened = result.get("max_open") or 0
        before, peak = result.get("rss_before_kb"), result.get("rss_peak_kb")
        out[target.name] = result
        log(
            f"memory {target.name}: {opened} open at once, {before} -> {peak} kB, "
            f"kb/stream={result['kb_per_stream']} failed={result.get('failed')}"
        )
    return {str(count): out}


def ttft(targets: list[Target], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in range(rounds):
        for target in rotate([t for t in targets if t.streams], r):
            result = load(target, "stream", model="stream", streams=4, ramp=0.2, timeout=30)
            out.setdefault(target.name, []).append(result)
            log(f"ttft r{r} {target.name}: {(result.get('ttft') or {}).get('p50')}")
    return out


def soak(targets: list[Target], duration: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in targets:
        if not target.pid:
            continue
        before = rss_kb(target.pid)
        result = load(target, "closed", model="l0-s", concurrency=64, duration=duration, warmup=0)
        settle(target)
        result["rss_before_kb"], result["rss_after_kb"] = before, rss_kb(target.pid)
        out[target.name] = result
        log(f"soak {target.name}: {before} -> {result['rss_after_kb']} kB, ok={result.get('ok')}")
    return out


# -- summary -----------------------------------------------------------------------------------


def summarize(data: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    main = data.get("closed", {})
    names = [n for n in data["targets"] if data["targets"][n]["status"] == "ok"]

    def med(point: str, name: str, key: str) -> float | None:
        return median([r.get(key) for r in main.get(point, {}).get(name, [])])

    def added(point: str, name: str, key: str) -> float | None:
        pairs = zip(
            main.get(point, {}).get(name, []), main.get(point, {}).get("direct", []), strict=False
        )
        return median(
            [a[key] - b[key] for a, b in pairs if a.get(key) is not None and b.get(key) is not None]
        )

    add(
        "| target | status | rps @16 | rps @64 | rps @64 10KB/20ms | added p50 @1 (ms) | added p99 @1 (ms) | CPU ms/req @64 | idle RSS (MB) |"
    )
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, info in data["targets"].items():
        if info["status"] != "ok":
            add(f"| {name} | {info['status']} | | | | | | | |")
            continue
        if not main.get("l0-s@16", {}).get(name):  # the transport study's variants
            continue
        idle = info.get("idle_rss_kb")
        add(
            f"| {name} | ok | {med('l0-s@16', name, 'rps')} | {med('l0-s@64', name, 'rps')} | "
            f"{med('l20-l@64', name, 'rps')} | {added('l0-s@1', name, 'p50')} | "
            f"{added('l0-s@1', name, 'p99')} | {med('l0-s@64', name, 'cpu_ms_per_req')} | "
            f"{round(idle / 1024, 1) if idle else ''} |"
        )
    ref = "null"
    if ref in names:
        add("")
        add("Ratios against the null proxy (same run, medians over rounds):")
        for name in names:
            if name in ("direct", ref) or not main.get("l0-s@16", {}).get(name):
                continue
            parts = []
            for point in ("l0-s@16", "l0-s@64", "l20-l@64"):
                a, b = med(point, name, "rps"), med(point, ref, "rps")
                if a and b:
                    parts.append(f"rps {point} {a / b:.2f}x")
            for key in ("p50", "p99"):
                a, b = added("l0-s@1", name, key), added("l0-s@1", ref, key)
                if a is not None and b:
                    parts.append(f"added {key}@1 {a / b:.2f}x")
            add(f"- {name}: " + ", ".join(parts))
        if "plugway" in names:
            for peer, goal in (("portkey", 2), ("litellm", 10)):
                if peer not in names:
                    continue
                parts = []
                for point in ("l0-s@16", "l0-s@64"):
                    a, b = med(point, "plugway", "rps"), med(point, peer, "rps")
                    if a and b:
                        parts.append(f"{point} {a / b:.1f}x")
                add(f"- plugway / {peer} (goal >= {goal}x): " + ", ".join(parts))
    transport = data.get("transport", {})
    if transport:
        kinds = [k for k in ("null-stock", "null-tuned", "null", "null-direct") if k in names]
        add("")
        add("Transport study (null proxy; req/s and p99 ms, medians over rounds):")
        add("")
        add("| upstream model @ in flight | " + " | ".join(kinds) + " |")
        add("| --- |" + " --- |" * len(kinds))
        for point, results in transport.items():
            cells = []
            for kind in kinds:
                rows = results.get(kind, [])
                rps = median([r.get("rps") for r in rows])
                p99 = median([r.get("p99") for r in rows])
                errs = sum(r.get("errors") or 0 for r in rows)
                cells.append(f"{rps} / {p99}" + (f" ({errs} err)" if errs else ""))
            add(f"| {point} | " + " | ".join(cells) + " |")
    opened = data.get("open", {})
    if opened:
        add("")
        add("| target | highest rate (req/s) with added p99 < 1 ms | < 5 ms | < 50 ms |")
        add("| --- | --- | --- | --- |")
        for name in names:
            if name == "direct" or not any(name in r for r in opened.values()):
                continue
            best = {1: None, 5: None, 50: None}
            for rate, results in sorted(opened.items(), key=lambda kv: int(kv[0])):
                r = results.get(name)
                if not r or r.get("errors") or r.get("added_p99") is None:
                    continue
                for limit in best:
                    if r["added_p99"] < limit:
                        best[limit] = int(rate)
            add(f"| {name} | {best[1] or '-'} | {best[5] or '-'} | {best[50] or '-'} |")
        add("")
        add("Open-loop ladder, p99 (ms) at each rate; added p99 in brackets:")
        add("")
        ladder_names = [n for n in names if any(n in r for r in opened.values())]
        add("| rate | " + " | ".join(ladder_names) + " |")
        add("| --- |" + " --- |" * len(ladder_names))
        for rate, results in sorted(opened.items(), key=lambda kv: int(kv[0])):
            cells = []
            for name in ladder_names:
                r = results.get(name)
                if not r:
                    cells.append("")
                    continue
                text = f"{r.get('p99')}"
                if r.get("added_p99") is not None:
                    text += f" ({r['added_p99']})"
                if r.get("errors"):
                    text += f" {r['errors']} err"
                cells.append(text)
            add(f"| {rate} | " + " | ".join(cells) + " |")
    streams = data.get("streams", {})
    if streams:
        add("")
        add(
            "| target | streams held (no gap > 200 ms) | added TTFT p50 (ms) | KB per open stream at 1000 | soak RSS before -> after (MB) |"
        )
        add("| --- | --- | --- | --- | --- |")
        direct_ttft = median(
            [(r.get("ttft") or {}).get("p50") for r in data.get("ttft", {}).get("direct", [])]
        )
        for name in names:
            if not any(name in r for r in streams.values()):
                continue
            held = 0
            for count, results in sorted(streams.items(), key=lambda kv: int(kv[0])):
                r = results.get(name)
                if r and r.get("held") == int(count):
                    held = int(count)
            per = (data.get("memory", {}).get("1000", {}).get(name) or {}).get("kb_per_stream")
            t = median(
                [(r.get("ttft") or {}).get("p50") for r in data.get("ttft", {}).get(name, [])]
            )
            added_ttft = (
                round(t - direct_ttft, 3) if t is not None and direct_ttft is not None else None
            )
            s = data.get("soak", {}).get(name)
            soak_text = (
                f"{s['rss_before_kb'] / 1024:.1f} -> {s['rss_after_kb'] / 1024:.1f} ({s.get('ok')} req)"
                if s
                else ""
            )
            add(
                f"| {name} | {held} | {added_ttft} | {per if per is not None else ''} | {soak_text} |"
            )
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


def check_namespace(allow: bool) -> None:
    # /proc/net/dev is per network namespace (sysfs is not, unless remounted).
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    interfaces = sorted(line.split(":")[0].strip() for line in lines)
    if interfaces != ["lo"] and not allow:
        sys.exit(
            f"network interfaces {interfaces}: run inside `unshare -n` (loopback only), "
            "or pass --allow-host-network for a peer-free smoke run"
        )
    if interfaces == ["lo"]:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets",
        default="direct,null,plugway,plugway-noop,litellm,portkey",
        help="comma-separated; also null-stock, null-tuned, null-raw (aiohttp without httpx)",
    )
    parser.add_argument(
        "--phases", default="memory,transport,closed,open,streams,ttft,soak", help="comma-separated"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rates", default="50,100,200,400,700,1000,1500,2000")
    parser.add_argument("--stream-counts", default="64,128,256,384,512,768,1000")
    parser.add_argument("--stream-ramp", type=float, default=0.5)
    parser.add_argument("--soak", type=float, default=20.0)
    parser.add_argument(
        "--transport-points", default="l0-s:1,l0-s:8,l0-s:64,l0-s:256,l0-s:512,l20-s:64,l20-s:512"
    )
    parser.add_argument(
        "--revs", default="", help="also run plugway as of these git revisions (comma-separated)"
    )
    parser.add_argument("--out", type=Path, help="write the raw results (JSON) here")
    parser.add_argument("--allow-host-network", action="store_true")
    args = parser.parse_args(argv)
    if args.duration > 30 or args.soak > 120 or args.rounds > 10:
        parser.error("bounded: --duration <= 30, --soak <= 120, --rounds <= 10")
    check_namespace(args.allow_host_network)
    # A terminated run still stops what it started (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    phases = args.phases.split(",")
    wanted = args.targets.split(",")
    if "transport" in phases:
        wanted += [t for t in ("null-stock", "null-tuned", "null") if t not in wanted]
    if "direct" not in wanted:
        wanted.insert(0, "direct")
    tmp = Path(tempfile.mkdtemp(prefix="plugway-bench-"))
    upstream = subprocess.Popen(
        ["taskset", "-c", "1", PY, str(HERE / "upstream.py"), "--port", str(UP_PORT)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    revs = [r for r in args.revs.split(",") if r]
    targets = make_targets(tmp, wanted, revs)
    data: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv,
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
        "targets": {},
    }
    try:
        for target in targets.values():
            if target.error is None:
                target.start("0")
        for target in targets.values():
            ok = target.error is None and target.wait_ready()
            status = "ok" if ok else f"unavailable: {target.error}"
            data["targets"][target.name] = {"status": status}
            log(f"{target.name}: {status}")
        live = [t for t in targets.values() if data["targets"][t.name]["status"] == "ok"]
        for target in live:  # warm up, then idle memory
            load(target, "closed", model="l0-s", concurrency=8, duration=1.0, warmup=0.2)
            settle(target)
            if target.pid:
                data["targets"][target.name]["idle_rss_kb"] = rss_kb(target.pid)
        data["memory"] = {}
        if "memory" in phases:  # first, so earlier phases' allocations do not hide its growth
            log("== memory")
            data["memory"] = memory(
                [t for t in live if t.name not in ("null-stock", "null-tuned")], 1000, 3.0
            )
        direct = targets["direct"]
        main_live = [t for t in live if t.name not in ("null-stock", "null-tuned")]
        steps: dict[str, Callable[[], Any]] = {
            "transport": lambda: closed_points(
                [t for t in live if t.name in ("null-stock", "null-tuned", "null", "null-direct")],
                [(p.split(":")[0], int(p.split(":")[1])) for p in args.transport_points.split(",")],
                max(1, args.rounds - 1),
                min(args.duration, 2.0),
            ),
            "closed": lambda: closed_points(
                main_live,
                [("l0-s", 1), ("l0-s", 16), ("l0-s", 64), ("l20-l", 64)],
                args.rounds,
                args.duration,
            ),
            "open": lambda: open_ladder(
                [t for t in main_live if t.name != "plugway-noop" and "@" not in t.name],
                [int(r) for r in args.rates.split(",")],
                min(args.duration, 3.0),
                direct,
            ),
            "streams": lambda: stream_ladder(
                main_live,
                [int(c) for c in args.stream_counts.split(",")],
                args.stream_ramp,
            ),
            "ttft": lambda: ttft(main_live, args.rounds),
            "soak": lambda: soak(
                [t for t in main_live if t.name != "plugway-noop" and "@" not in t.name], args.soak
            ),
        }
        for phase in [p for p in phases if p != "memory"]:
            log(f"== {phase}")
            data[phase] = steps[phase]()
        data["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    finally:
        for target in targets.values():
            target.stop()
        upstream.terminate()
        upstream.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1))
    print(summarize(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
