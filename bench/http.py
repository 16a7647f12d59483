"""HTTP benchmark: deer against a bare aiohttp app, then cold start and warm restart.

Run it from the repository root, as a module (a script named http.py would shadow the
standard library's `http` package; run directly, it re-runs itself with `-m`):

    .venv/bin/python -m bench.http                           # wrk if on PATH, else aiohttp
    .venv/bin/python -m bench.http --tool aiohttp --duration 5 --json /tmp/http.json

What one run does, with the same load tool for every target:

1. a bare aiohttp "hello" app (uvloop if installed, no access log), GET /;
2. `run.py serve` against PostgreSQL and Redis (by default a `deer_bench` database this run
   creates and drops, and Redis database 15), DEER_LOG_LEVEL=WARNING so the INFO access log
   is off: GET /healthz and GET /api/meta (--access-log measures /api/meta with INFO too);
3. `run.py` with an empty environment (PATH, DEER_PORT and DEER_DATA_DIR only) on a fresh
   temporary data folder: seconds from spawn to the first 200 on /readyz (cold), then
   SIGTERM, a check that no postgres/valkey-server process still names the folder, and the
   same again on the same folder (warm).

All load goes to 127.0.0.1 and every load loop stops by itself after --duration seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final, TypeVar

import psutil

T = TypeVar("T")

ROOT: Final = Path(__file__).resolve().parent.parent
HOST: Final = "127.0.0.1"
POSTGRES_SERVER: Final = "postgresql://postgres@127.0.0.1:5432"
BENCH_DATABASE: Final = "deer_bench"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/15"
BARE_TARGET: Final = "bare aiohttp hello"
META_TARGET: Final = "deer GET /api/meta"

RATIO_TARGET: Final = 0.50
COLD_TARGET: Final = 15.0
WARM_TARGET: Final = 5.0

READY_TIMEOUT: Final = 120.0
STOP_TIMEOUT: Final = 60.0
POLL_SECONDS: Final = 0.02
REQUEST_TIMEOUT: Final = 5.0
LOAD_GRACE: Final = 30.0  # on top of --duration before a load process is given up on

WRK_SCRIPT: Final = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %f %f %f %f %f %f\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


class BenchError(Exception):
    """Something the benchmark needs did not work; the message says what."""


@dataclass(frozen=True)
class LoadPlan:
    tool: str
    duration: int
    warmup: int
    connections: int
    threads: int


@dataclass
class LoadResult:
    target: str
    url: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect/read/write/timeouts and non-2xx answers


@dataclass
class StartResult:
    name: str
    seconds: float | None  # spawn to the first 200 on /readyz
    stop_seconds: float | None  # SIGTERM to exit
    exit_code: int | None
    leftovers: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Report:
    date: str
    machine: dict[str, str]
    command: str
    load: dict[str, Any]
    loads: list[LoadResult] = field(default_factory=list)
    ratio: float | None = None
    startups: list[StartResult] = field(default_factory=list)


# --- small helpers ---------------------------------------------------------------------


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(coro)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def idle_driver() -> str:
    """The kernel's cpuidle driver: on a virtual machine, `none` halts an idle CPU at once and
    makes every wake-up expensive; `haltpoll` polls first (docs/actors.md, *Running it*)."""
    try:
        return Path("/sys/devices/system/cpu/cpuidle/current_driver").read_text().strip()
    except OSError:
        return "unknown"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine() -> dict[str, str]:
    return {
        "cpus": str(cpu_count()),
        "cpu_model": cpu_model(),
        "cpu_idle": idle_driver(),
        "memory_gib": f"{psutil.virtual_memory().total / 2**30:.1f}",
        "system": platform.platform(),
        "python": platform.python_version(),
        "aiohttp": version_of("aiohttp"),
        "uvloop": version_of("uvloop"),
    }


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


# --- child processes -------------------------------------------------------------------


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server with its output in `log`, in the log's folder: no `.env` is read."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=log.parent, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )


def http_status(port: int, path: str) -> int | None:
    """The status of one GET, or None when nothing answers (a tiny client, no imports)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            sock.sendall(request.encode("ascii"))
            head = sock.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def wait_ready(child: subprocess.Popen[bytes], port: int, path: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise BenchError(f"exited at start (code {child.returncode}):\n{tail(log)}")
        if http_status(port, path) == 200:
            return
        time.sleep(POLL_SECONDS)
    raise BenchError(f"GET {path} gave no 200 within {READY_TIMEOUT:.0f} s:\n{tail(log)}")


def stop(child: subprocess.Popen[bytes]) -> int:
    """SIGTERM, wait, and kill only if it does not go; returns the exit code."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


@contextlib.contextmanager
def serving(
    command: list[str], env: dict[str, str], port: int, ready_path: str, log: Path
) -> Iterator[None]:
    child = spawn(command, env, log)
    try:
        wait_ready(child, port, ready_path, log)
        yield
    finally:
        stop(child)


def names_folder(info: dict[str, Any], data_dir: Path) -> bool:
    """The command line or the working folder mentions `data_dir`. The working folder is
    needed: valkey-server and PostgreSQL's backends rewrite their command line."""
    cmdline: list[str] = info["cmdline"] or []
    cwd: str | None = info["cwd"]
    in_folder = cwd is not None and Path(cwd).is_relative_to(data_dir)
    return in_folder or any(str(data_dir) in part for part in cmdline)


def engine_processes(data_dir: Path) -> list[psutil.Process]:
    """Live postgres and valkey-server processes that belong to the data folder."""
    if not data_dir.is_absolute() or data_dir == Path(data_dir.anchor):
        raise BenchError(f"not a data folder to look for: {data_dir!r}")
    found = []
    for process in psutil.process_iter(["name", "cmdline", "cwd", "status"]):
        name = process.info["name"] or ""
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if ("postgres" in name or "valkey" in name) and names_folder(process.info, data_dir):
            found.append(process)
    return found


def describe(processes: list[psutil.Process]) -> list[str]:
    return [f"{process.info['name']} (pid {process.pid})" for process in processes]


def end_leftovers(processes: list[psutil.Process]) -> None:
    """Stop, by pid, the engine processes a run left behind, so the folder can go."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    psutil.wait_procs(processes, timeout=10)


# --- the two HTTP servers --------------------------------------------------------------


def serve_hello(port: int) -> None:
    """The bare baseline: one handler returning a small JSON object, no middlewares."""
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"message": "hello"})

    app = web.Application()
    app.router.add_get("/", hello)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    web.run_app(app, host=HOST, port=port, loop=loop, print=None, access_log=None)


def hello_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.http", "_hello", str(port)]


def child_env() -> dict[str, str]:
    """Our environment without DEER_* variables, with the repository importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def deer_env(
    port: int, database_url: str, redis_url: str, data_dir: Path, level: str
) -> dict[str, str]:
    return child_env() | {
        "DEER_PORT": str(port),
        "DEER_DATABASE_URL": database_url,
        "DEER_REDIS_URL": redis_url,
        "DEER_AUTO_MIGRATE": "true",
        "DEER_LOG_LEVEL": level,
        "DEER_DATA_DIR": str(data_dir),
    }


async def recreate_database(name: str, create: bool) -> None:
    import asyncpg

    connection = await asyncpg.connect(f"{POSTGRES_SERVER}/postgres", timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


@contextlib.contextmanager
def bench_database(url: str | None, name: str = BENCH_DATABASE) -> Iterator[str]:
    """The URL given, used as is; or a fresh database `name`, dropped at the end."""
    if url is not None:
        yield url
        return
    run_async(recreate_database(name, create=True))
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        run_async(recreate_database(name, create=False))


# --- load generators -------------------------------------------------------------------


def run_wrk(url: str, seconds: int, plan: LoadPlan, script: Path) -> LoadResult:
    command = ["wrk", f"-t{plan.threads}", f"-c{plan.connections}", f"-d{seconds}s"]
    command += ["--timeout", f"{REQUEST_TIMEOUT:.0f}s", "-s", str(script), url]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + LOAD_GRACE, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise BenchError(f"wrk failed (code {done.returncode}): {done.stderr or done.stdout}")
    requests, micros, errors, non2xx, p50, p99 = (float(v) for v in lines[0].split()[1:])
    return LoadResult(
        target="",
        url=url,
        requests=int(requests),
        seconds=micros / 1e6,
        rps=requests / (micros / 1e6),
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        errors=int(errors + non2xx),
    )


async def pool_load(url: str, seconds: float, connections: int) -> dict[str, Any]:
    """`connections` clients, each sending GETs one after another until the deadline."""
    import aiohttp

    latencies: list[int] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=connections)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while (sent := time.perf_counter()) < deadline:
            try:
                async with session.get(url) as response:
                    await response.read()
                    ok = 200 <= response.status < 300
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            latencies.append(round((time.perf_counter() - sent) * 1e6))
            if not ok:
                errors += 1
                await asyncio.sleep(0.01)  # no hot loop against a server that refuses

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "errors": errors, "latencies_us": latencies}


def load_worker(url: str, seconds: float, connections: int) -> None:
    print(json.dumps(run_async(pool_load(url, seconds, connections))))


def share(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_pool(url: str, seconds: int, plan: LoadPlan) -> LoadResult:
    """The aiohttp load generator, in `threads` processes so it is not one core's worth."""
    commands = [
        [sys.executable, "-m", "bench.http", "_load", url, str(seconds), str(count)]
        for count in share(plan.connections, plan.threads)
    ]
    workers = [
        subprocess.Popen(c, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, text=True)
        for c in commands
    ]
    try:
        outputs = [w.communicate(timeout=seconds + LOAD_GRACE)[0] for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    if any(w.returncode != 0 for w in workers):
        raise BenchError("an aiohttp load process failed (see its traceback above)")
    parts = [json.loads(output) for output in outputs]
    latencies = sorted(v for part in parts for v in part["latencies_us"])
    rps = sum(len(part["latencies_us"]) / part["seconds"] for part in parts)
    return LoadResult(
        target="",
        url=url,
        requests=len(latencies),
        seconds=max(part["seconds"] for part in parts),
        rps=rps,
        p50_ms=percentile(latencies, 0.50) / 1000,
        p99_ms=percentile(latencies, 0.99) / 1000,
        errors=sum(part["errors"] for part in parts),
    )


def load_once(url: str, seconds: int, plan: LoadPlan, script: Path) -> LoadResult:
    if plan.tool == "wrk":
        return run_wrk(url, seconds, plan, script)
    return run_pool(url, seconds, plan)


def measure(target: str, url: str, plan: LoadPlan, script: Path) -> LoadResult:
    """A warm-up (results thrown away), then the measured run, both with the same tool."""
    if plan.warmup > 0:
        load_once(url, plan.warmup, plan, script)
    result = load_once(url, plan.duration, plan, script)
    result.target = target
    print(f"  {target:<34} {result.rps:>9.0f} req/s", flush=True)
    return result


# --- the benchmark steps ---------------------------------------------------------------


def bench_bare(plan: LoadPlan, work: Path, script: Path) -> LoadResult:
    port = free_port()
    with serving(hello_command(port), child_env(), port, "/", work / "hello.log"):
        return measure(BARE_TARGET, f"http://{HOST}:{port}/", plan, script)


def bench_deer(
    plan: LoadPlan, work: Path, script: Path, urls: tuple[str, str], level: str
) -> list[LoadResult]:
    port = free_port()
    data_dir = work / f"data-{level.lower()}"
    data_dir.mkdir()
    env = deer_env(port, urls[0], urls[1], data_dir, level)
    command = [sys.executable, str(ROOT / "run.py"), "serve"]
    base = f"http://{HOST}:{port}"
    with serving(command, env, port, "/readyz", work / f"deer-{level.lower()}.log"):
        if level != "WARNING":
            return [measure(f"deer /api/meta, log {level}", f"{base}/api/meta", plan, script)]
        return [
            measure("deer GET /healthz", f"{base}/healthz", plan, script),
            measure(META_TARGET, f"{base}/api/meta", plan, script),
        ]


def empty_env(port: int, data_dir: Path) -> dict[str, str]:
    """What `env -i PATH=$PATH DEER_PORT=… DEER_DATA_DIR=…` would give."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "DEER_PORT": str(port),
        "DEER_DATA_DIR": str(data_dir),
    }


def start_once(name: str, data_dir: Path, log: Path) -> StartResult:
    port = free_port()
    started = time.perf_counter()
    child = spawn([sys.executable, str(ROOT / "run.py")], empty_env(port, data_dir), log)
    result = StartResult(name=name, seconds=None, stop_seconds=None, exit_code=None)
    try:
        wait_ready(child, port, "/readyz", log)
        result.seconds = time.perf_counter() - started
    except BenchError as exc:
        result.error = str(exc)
    stopping = time.perf_counter()
    result.exit_code = stop(child)
    result.stop_seconds = time.perf_counter() - stopping
    leftovers = engine_processes(data_dir)
    result.leftovers = describe(leftovers)
    end_leftovers(leftovers)
    shown = f"{result.seconds:.2f} s" if result.seconds is not None else "failed"
    print(f"  {name:<34} {shown}", flush=True)
    return result


def bench_startup(work: Path) -> list[StartResult]:
    """Cold start on an empty data folder, then a warm restart on the same folder."""
    data_dir = Path(tempfile.mkdtemp(prefix="deer-bench-data-")).resolve()
    try:
        cold = start_once("cold start (empty data folder)", data_dir, work / "cold.log")
        if cold.seconds is None:
            return [cold]
        return [cold, start_once("warm restart (same folder)", data_dir, work / "warm.log")]
    finally:
        end_leftovers(engine_processes(data_dir))
        shutil.rmtree(data_dir, ignore_errors=True)


# --- output ----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def load_lines(report: Report) -> list[str]:
    head = f"{'target':<34} {'req/s':>9} {'÷ bare':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    bare = next((r.rps for r in report.loads if r.target == BARE_TARGET), math.nan)
    lines = [head]
    for r in report.loads:
        lines.append(
            f"{r.target:<34} {r.rps:>9.0f} {r.rps / bare:>7.0%} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.errors:>7}"
        )
    if report.ratio is not None:
        lines.append(
            f"deer /api/meta ÷ bare: {report.ratio:.0%} (target ≥ {RATIO_TARGET:.0%}) "
            f"{verdict(report.ratio >= RATIO_TARGET)}"
        )
    return lines


def start_lines(report: Report) -> list[str]:
    if not report.startups:
        return []
    targets = [COLD_TARGET, WARM_TARGET]
    lines = [f"{'start-up, empty environment':<34} {'seconds':>9} {'target':>8} {'stop s':>8}"]
    for result, target in zip(report.startups, targets, strict=False):
        if result.seconds is None:
            lines.append(f"{result.name:<34} FAILED: {result.error}")
            continue
        lines.append(
            f"{result.name:<34} {result.seconds:>9.2f} {'≤ ' + format(target, 'g'):>8} "
            f"{result.stop_seconds or 0:>8.2f}  {verdict(result.seconds <= target)}"
        )
        left = ", ".join(result.leftovers) or "none"
        lines.append(f"  exit code {result.exit_code}; engine processes left after exit: {left}")
    return lines


def header_lines(report: Report) -> list[str]:
    m, load = report.machine, report.load
    return [
        f"deer HTTP benchmark, {report.date}",
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['system']}",
        f"python {m['python']}, aiohttp {m['aiohttp']}, uvloop {m['uvloop']}",
        f"command: {report.command}",
        f"load: {load['tool_version']}, {load['threads']} {load['workers']}, "
        f"{load['connections']} connections, {load['duration']} s per target after "
        f"{load['warmup']} s warm-up",
        "servers: one process each on 127.0.0.1; deer at DEER_LOG_LEVEL=WARNING, so its "
        "access log (INFO) is off",
    ]


def tool_note(report: Report) -> list[str]:
    if report.load["tool"] == "wrk":
        return []
    return [
        "note: the aiohttp client pool is Python too and often slower than the servers; when",
        "bare and deer come out alike, the load generator is the limit: prefer wrk for the ratio",
    ]


def print_report(report: Report) -> None:
    print()
    blocks = (header_lines(report), load_lines(report), tool_note(report), start_lines(report))
    for block in blocks:
        if block:
            print("\n".join(block))
            print()


# --- command line ----------------------------------------------------------------------


def default_threads() -> int:
    """Half the cores for the load tool, the other half for the server (at least one)."""
    return max(1, cpu_count() // 2)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http", description=(__doc__ or "").split("\n", 1)[0]
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per target (10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each (2)")
    parser.add_argument("--connections", type=int, default=64, help="open connections (64)")
    parser.add_argument("--threads", type=int, default=default_threads(), help="load threads")
    parser.add_argument("--tool", choices=["wrk", "aiohttp"], help="default: wrk if on PATH")
    parser.add_argument("--database-url", help=f"default: a fresh {BENCH_DATABASE} database")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="default: %(default)s")
    parser.add_argument("--access-log", action="store_true", help="also /api/meta at INFO")
    parser.add_argument("--skip-startup", action="store_true", help="no cold/warm start")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--duration must be ≥ 1, --warmup ≥ 0, --threads ≥ 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    args.tool = args.tool or ("wrk" if shutil.which("wrk") else "aiohttp")
    if args.tool == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not on PATH (apt-get install wrk), or use --tool aiohttp")
    return args


def tool_version(tool: str) -> str:
    if tool == "aiohttp":
        return f"aiohttp client pool (bench/http.py, aiohttp {version_of('aiohttp')})"
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


def new_report(args: argparse.Namespace, argv: list[str]) -> Report:
    plan = {
        "tool": args.tool,
        "tool_version": tool_version(args.tool),
        "duration": args.duration,
        "warmup": args.warmup,
        "connections": args.connections,
        "threads": args.threads,
        "workers": "wrk thread(s)" if args.tool == "wrk" else "load process(es)",
    }
    return Report(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine(),
        command=" ".join(["python -m bench.http", *argv]),
        load=plan,
    )


def run_http(args: argparse.Namespace, report: Report, work: Path) -> None:
    plan = LoadPlan(args.tool, args.duration, args.warmup, args.connections, args.threads)
    script = work / "report.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    print(f"loading with {report.load['tool_version']} …", flush=True)
    report.loads.append(bench_bare(plan, work, script))
    with bench_database(args.database_url) as database_url:
        urls = (database_url, args.redis_url)
        report.loads += bench_deer(plan, work, script, urls, "WARNING")
        if args.access_log:
            report.loads += bench_deer(plan, work, script, urls, "INFO")
    rps = {result.target: result.rps for result in report.loads}
    report.ratio = rps[META_TARGET] / rps[BARE_TARGET]


def run(args: argparse.Namespace, argv: list[str]) -> int:
    report = new_report(args, argv)
    work = Path(tempfile.mkdtemp(prefix="deer-bench-"))
    try:
        run_http(args, report, work)
        if not args.skip_startup:
            print("timing the embedded default …", flush=True)
            report.startups = bench_startup(work)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped, temporary folders removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(dataclasses.asdict(report), indent=2) + "\n")
        print(f"results written to {args.json}")
    return 1 if any(result.error for result in report.startups) else 0


def rerun_as_module() -> None:
    """Run as `python bench/http.py`, this file would shadow the stdlib `http` package."""
    env = child_env()
    os.execve(sys.executable, [sys.executable, "-m", "bench.http", *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    if not __package__:
        rerun_as_module()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_hello"]:
        serve_hello(int(argv[1]))
        return 0
    if argv[:1] == ["_load"]:
        load_worker(argv[1], float(argv[2]), int(argv[3]))
        return 0
    return run(parse_args(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
