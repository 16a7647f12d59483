"""Actor benchmark: ask round trips per second and latency with 1 and 2 worker processes,
beside the Redis ceiling measured in the same run; then a worker's memory after many keys.

    .venv/bin/python -m bench.actors                              # about 6 minutes
    .venv/bin/python -m bench.actors --duration 5 --memory-keys 100000

What one run does (PostgreSQL on 127.0.0.1:5432 or `--postgres`, a `deer_actors_bench` database
it creates, migrates and drops; Redis database 15 or `--redis-url`, under a namespace of its
own, deleted at the end):

For 1 and then 2 server processes:

1. **Actor asks** (`run_worker` hosting an `Echo` actor, 16 partitions): the bench process
   asks through a sender `Runtime`.
2. **Redis ceiling**: the same shape of work without the runtime. Each asker XADDs
   `{id, key, body, reply}` to one of 16 streams (plain XADDs, one per ask, over connections
   kept for them, `deer.cache.DirectCommands`, as many as askers) and waits on the bench
   process's pub/sub channel; each server process reads its share of the streams with
   XREADGROUP (COUNT 100), publishes a reply of the runtime's shape and XACKs.

Each target is first loaded closed with `--concurrency` askers in turn (32, 64, 128, 256; each
asker waits for its reply before the next ask, over `--keys` keys): the target's peak is the
highest rate of those loads (with too few askers a target waits on its own latency, not on its
capacity; all of them run, since a search that stopped at the first load not 5% faster than the
best before it ended early on a noisy minute). Then the same target is paced at half its peak
rate (asks started on a fixed schedule) for the latency at a sustainable load, then at the fixed
`--paced` rates. The ceiling is paced once more at the actors' half rate ("actors' half"): what
plain Redis round trips do on this machine at the load of the actors' latency target, measured
right after it. Every load reports the CPU each process used per ask while it was measured. The
bench process collects and freezes its heap before the loads, as a serving process does once
started (`deer.heap`): the garbage of the migrations, collected in the middle of a load, was a
pause of 80-95 ms.

3. **Memory**: one worker, `--memory-keys` distinct keys told once each; its RSS before, after
   they were all committed, and after a passivation sweep (`DEER_ACTOR_IDLE_TIMEOUT`=2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import platform
import sys
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import psutil
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from actors.base import Actor, CommandResult, JsonObject, Outcome, Overloaded
from actors.leases import lease_key
from actors.runtime import Runtime, encode_result
from bench.http import cpu_count, cpu_model, idle_driver
from config.settings import Settings, load_settings
from deer.cache import DirectCommands, create_redis, key
from deer.heap import settle_heap
from run import run_async

ROOT: Final = Path(__file__).resolve().parent.parent
POSTGRES_SERVER: Final = "postgresql://postgres@127.0.0.1:5432"
BENCH_DATABASE: Final = "deer_actors_bench"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/15"
STREAMS: Final = 16  # ceiling streams = actor partitions
KIND: Final = "bench"
GROUP: Final = "ceiling"
READY_WITHIN: Final = 60.0


class Echo(Actor):
    """The smallest stateful actor: counts its commands and replies the count."""

    kind: ClassVar[str] = KIND

    def initial_state(self, key: str) -> JsonObject:
        return {"n": 0}

    async def handle(self, key: str, state: JsonObject, command: JsonObject) -> Outcome:
        n = int(state["n"]) + 1
        return Outcome(state={"n": n}, reply=n)


@dataclass(slots=True)
class Load:
    target: str
    processes: int
    mode: str  # "N askers" (a closed load), "half", "R/s"
    asks: int
    seconds: float
    latencies: list[float]
    # CPU seconds used while measured, by part: "server" (the ceiling's server or
    # the actor workers), "redis", "postgres" (the bench database's backends), "client" (this
    # process: the askers, and the sender runtime).
    cpu: dict[str, float] = field(default_factory=dict)
    peak: bool = False  # the highest rate of the target's closed loads

    @property
    def name(self) -> str:
        return f"peak, {self.mode}" if self.peak else self.mode

    @property
    def rate(self) -> float:
        return self.asks / self.seconds

    def cpu_per_ask(self, part: str) -> float:
        """CPU (user + system) of `part` per ask, in microseconds: what a shared machine's
        noise changes least."""
        return self.cpu.get(part, math.nan) / self.asks * 1e6

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def bench_settings(
    redis_url: str,
    namespace: str,
    database: str = BENCH_DATABASE,
    postgres: str = POSTGRES_SERVER,
    **changes: Any,
) -> Settings:
    """The bench process's settings (`redis_pool_max` in `changes`: enough for the ceiling's
    askers, each of which keeps a connection)."""
    return load_settings(
        _env_file=None,
        database_url=database_url(postgres, database),
        redis_url=redis_url,
        redis_namespace=namespace,
        log_level="WARNING",
        actor_partitions=STREAMS,
        **changes,
    )


def database_url(postgres: str, database: str) -> str:
    """The URL of `database` on the server `postgres` names (its own database part ignored)."""
    return urlunsplit(urlsplit(postgres)._replace(path=f"/{database}"))


def ceiling_stream(settings: Settings, index: int) -> str:
    return key(settings, "ceiling", index)


# --- child processes -------------------------------------------------------------------


async def serve_ceiling(settings: Settings, share: list[int]) -> None:
    """Read `share` of the ceiling streams, reply over pub/sub, acknowledge: no runtime."""
    redis = create_redis(settings)  # the runtime's client, as the workers have it
    streams = {ceiling_stream(settings, index): ">" for index in share}
    for stream in streams:
        with contextlib.suppress(ResponseError):
            await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    print("ready", flush=True)
    while True:
        read: Any = await redis.xreadgroup(GROUP, "server", streams, count=100, block=1000)  # type: ignore[arg-type]
        if not read:
            continue
        async with redis.pipeline(transaction=False) as pipe:
            for stream, entries in read:
                for message_id, fields in entries:
                    result = CommandResult(fields[b"id"].decode(), True, 1)
                    channel = key(settings, "actors", "reply", fields[b"reply"].decode())
                    pipe.publish(channel, encode_result(result))
                    pipe.xack(stream, GROUP, message_id)
            await pipe.execute()


def child_main(role: str, share: str) -> int:
    from actors.worker import run_worker

    settings = load_settings()
    if role == "ceiling":
        run_async(serve_ceiling(settings, [int(part) for part in share.split(",")]))
    else:
        run_async(run_worker(settings, [Echo()], lambda _: print("ready", flush=True)))
    return 0


@contextlib.asynccontextmanager
async def children(
    settings: Settings, role: str, count: int, **env: str
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """`count` child processes of `role`, each ready; killed at the end."""
    assert settings.database_url is not None and settings.redis_url is not None
    environment = {name: value for name, value in os.environ.items() if "DEER_" not in name}
    environment.update(
        DEER_DATABASE_URL=settings.database_url.get_secret_value(),
        DEER_REDIS_URL=settings.redis_url.get_secret_value(),
        DEER_REDIS_NAMESPACE=settings.redis_namespace,
        DEER_ACTOR_PARTITIONS=str(STREAMS),
        DEER_LOG_LEVEL="WARNING",
        DEER_DB_POOL_MAX="10",
        **env,
    )
    processes: list[asyncio.subprocess.Process] = []
    try:
        for index in range(count):
            share = ",".join(str(s) for s in range(index, STREAMS, count))
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.actors",
                "--role",
                role,
                "--share",
                share,
                cwd=ROOT,
                env=environment,
                stdout=asyncio.subprocess.PIPE,
            )
            processes.append(process)
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), READY_WITHIN)
            assert line.startswith(b"ready"), line
        if role == "worker":
            await spread(settings, count)
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def spread(settings: Settings, workers: int) -> None:
    """Wait until the workers hold an equal share of the partitions each: a rebalance during
    a load (a lease released, taken on the next renewal tick) stalls its asks for seconds."""
    redis = create_redis(settings)
    try:
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            leases = [lease_key(settings, KIND, partition) for partition in range(STREAMS)]
            values = await redis.mget(leases)
            holders = [
                value.split(b":")[0] if isinstance(value, bytes) else value for value in values
            ]
            if None not in holders and all(
                holders.count(holder) == STREAMS // workers for holder in set(holders)
            ):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"the partitions were not spread over {workers} workers")
    finally:
        await redis.aclose(close_connection_pool=True)


# --- load ------------------------------------------------------------------------------


class CeilingClient:
    """XADD plus a wait on this process's reply channel: the ask without the runtime."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.process_id = uuid.uuid4().hex[:16]
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.pubsub = redis.pubsub()
        # Plain XADDs, one per ask, over connections kept for them (deer.cache.DirectCommands):
        # the bench keeps as many as the most askers, so no asker waits for the pool.
        self.commands = DirectCommands(redis, keep=settings.redis_pool_max // 2)
        # As many appends at once as connections kept: a paced load that fell behind queues
        # its asks here (their wait counts in their latency) instead of emptying the pool,
        # which failed thousands of asks (docs/PERFORMANCE.md, Actors, 10:20-12:15 UTC).
        self.sending = asyncio.Semaphore(settings.redis_pool_max // 2)
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pubsub.subscribe(key(self.settings, "actors", "reply", self.process_id))
        await self.pubsub.get_message(timeout=5.0)
        self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            future = self.waiting.pop(orjson.loads(message["data"])["id"], None)
            if future is not None and not future.done():
                future.set_result(None)

    async def ask(self, key_: str, command: JsonObject) -> None:
        command_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self.waiting[command_id] = future
        stream = ceiling_stream(self.settings, zlib.crc32(key_.encode()) % STREAMS)
        fields = ["id", command_id, "key", key_, "body", orjson.dumps(command)]
        async with self.sending:
            await self.commands.execute("XADD", stream, "*", *fields, "reply", self.process_id)
        await asyncio.wait_for(future, 10)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.commands.close()


Ask = Callable[[str, JsonObject], Awaitable[Any]]


async def closed_load(
    ask: Ask, askers: int, args: argparse.Namespace
) -> tuple[int, float, list[float]]:
    """`askers` asking back to back; (asks, seconds, latencies) after the warm-up."""
    latencies: list[float] = []
    begin = time.perf_counter() + args.warmup
    end = begin + args.duration

    async def asker(number: int) -> None:
        n = 0
        while (now := time.perf_counter()) < end:
            n += 1
            await ask(f"k{(number * 7919 + n) % args.keys}", {"n": n})
            if now >= begin:
                latencies.append(time.perf_counter() - now)

    await asyncio.gather(*(asker(number) for number in range(askers)))
    return len(latencies), args.duration, latencies


async def paced_load(
    ask: Ask, rate: float, args: argparse.Namespace
) -> tuple[int, float, list[float]]:
    """Asks started on a fixed schedule at `rate` per second; latencies after the warm-up."""
    latencies: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    begin, end = start + args.warmup, start + args.warmup + args.duration

    async def one(n: int, due: float) -> None:
        await ask(f"k{n % args.keys}", {"n": n})
        if due >= begin:
            latencies.append(time.perf_counter() - due)

    n = 0
    while (due := start + n / rate) < end:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(n, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    failed = [r for r in await asyncio.gather(*tasks, return_exceptions=True) if r is not None]
    if failed:
        print(f"  {len(failed)} asks failed, e.g. {failed[0]!r}", flush=True)
    return len(latencies), args.duration, latencies


CPU_PARTS: Final = ("server", "redis", "postgres", "client")
REFERENCE: Final = "actors' half"  # the ceiling's load at the actors' half rate


async def watched_processes(
    settings: Settings, redis_pid: int, servers: list[asyncio.subprocess.Process]
) -> dict[str, list[psutil.Process]]:
    """The processes of each CPU part (PostgreSQL: the backends of the bench database now)."""
    assert settings.database_url is not None
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        backends = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return {
        "server": [psutil.Process(server.pid) for server in servers],
        "redis": [psutil.Process(redis_pid)],
        "postgres": [psutil.Process(row["pid"]) for row in backends],
        "client": [psutil.Process()],
    }


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(process.cpu_times()[:2])
    return total


async def measure(
    target: str,
    servers: list[asyncio.subprocess.Process],
    ask: Ask,
    args: argparse.Namespace,
    settings: Settings,
    redis: Redis,
    reference: float | None = None,
) -> list[Load]:
    """The closed loads (one per `--concurrency`: the fastest is the peak), then half of the
    peak paced, then the fixed `--paced` rates, then `reference` asks per second paced (the
    ceiling at the actors' half rate); each with the CPU every part used while it was
    measured."""
    settle_heap()  # as a serving process does once started (`deer.heap`)
    processes = len(servers)
    # Asked once, before the loads: during a paced load that fell behind, the asks in flight
    # can hold every connection of the pool.
    redis_pid = int((await redis.info("server"))["process_id"])

    async def metered(mode: str, load: Awaitable[tuple[int, float, list[float]]]) -> Load:
        async def meter() -> dict[str, float]:
            await asyncio.sleep(args.warmup)  # the loads measure after the same warm-up
            watched = await watched_processes(settings, redis_pid, servers)
            before = {part: cpu_seconds(found) for part, found in watched.items()}
            await asyncio.sleep(args.duration)
            return {part: cpu_seconds(found) - before[part] for part, found in watched.items()}

        metering = asyncio.create_task(meter())
        measured = Load(target, processes, mode, *await load)
        measured.cpu = await metering
        return measured

    loads: list[Load] = []
    for askers in args.concurrency:
        named = f"{askers} asker" + ("s" if askers != 1 else "")
        load = await metered(named, closed_load(ask, askers, args))
        loads.append(load)
    peak = max(loads, key=lambda load: load.rate)
    peak.peak = True
    loads.append(await metered("half", paced_load(ask, peak.rate / 2, args)))
    for rate in args.paced:
        loads.append(await metered(f"{rate:g}/s", paced_load(ask, rate, args)))
    if reference is not None:
        loads.append(await metered(REFERENCE, paced_load(ask, reference, args)))
    for load in loads:
        print(
            f"  {target}, {processes} process(es), {load.name}: {load.rate:,.0f}/s,"
            f" p50 {load.percentile(0.5) * 1000:.2f} ms, p99 {load.percentile(0.99) * 1000:.2f} ms,"
            f" CPU {sum(load.cpu_per_ask(part) for part in CPU_PARTS):.0f} us/ask",
            flush=True,
        )
    return loads


def asker(sender: Runtime) -> Ask:
    async def ask(key_: str, command: JsonObject) -> Any:
        return await sender.ask(KIND, key_, command)

    return ask


# --- memory ----------------------------------------------------------------------------


async def committed(settings: Settings) -> int:
    assert settings.database_url is not None
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM actor_state WHERE kind = $1", KIND
        )
    finally:
        await connection.close()
    return count


async def tell_patiently(sender: Runtime, key_: str) -> None:
    """Tell once; when the partition is full (the worker is behind), wait and send again."""
    while True:
        try:
            await sender.tell(KIND, key_, {"n": 1})
            return
        except Overloaded:
            await asyncio.sleep(0.5)


async def memory(settings: Settings, redis: Redis, keys_: int) -> dict[str, float]:
    """RSS (MiB) of one worker before, at its highest and at the end of `keys_` distinct keys
    told once each, and after a passivation sweep."""
    sender = Runtime(settings, redis)
    async with children(settings, "worker", 1, DEER_ACTOR_IDLE_TIMEOUT="2") as (worker,):
        rss = psutil.Process(worker.pid)
        before = peak = rss.memory_info().rss / 2**20
        base = await committed(settings)
        began = time.perf_counter()
        for start in range(0, keys_, 100):
            await asyncio.gather(
                *(tell_patiently(sender, f"m{n}") for n in range(start, start + 100))
            )
            if start % 10_000 == 0:
                peak = max(peak, rss.memory_info().rss / 2**20)
        while (done := await committed(settings)) < base + keys_:
            peak = max(peak, rss.memory_info().rss / 2**20)
            await asyncio.sleep(0.5)
        seconds = time.perf_counter() - began
        after = rss.memory_info().rss / 2**20
        await asyncio.sleep(settings.actor_lease_renew + 3)  # a sweep after the idle timeout
        swept = rss.memory_info().rss / 2**20
    assert done == base + keys_
    return {
        "before": before,
        "peak": max(peak, after),
        "after": after,
        "swept": swept,
        "seconds": seconds,
    }


# --- the run ---------------------------------------------------------------------------


async def admin(postgres: str, sql: str) -> None:
    connection = await asyncpg.connect(database_url(postgres, "postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def measure_ceiling(
    settings: Settings,
    redis: Redis,
    processes: int,
    args: argparse.Namespace,
    reference: float | None,
) -> list[Load]:
    ceiling = CeilingClient(settings, redis)
    await ceiling.start()
    try:
        async with children(settings, "ceiling", processes) as servers:
            return await measure(
                "Redis ceiling", servers, ceiling.ask, args, settings, redis, reference
            )
    finally:
        await ceiling.close()


async def run(args: argparse.Namespace) -> None:
    from deer import db

    namespace = f"bench-actors-{uuid.uuid4().hex[:8]}"
    settings = bench_settings(
        args.redis_url,
        namespace,
        args.database,
        args.postgres,
        redis_pool_max=max(50, 2 * max(args.concurrency)),  # kept: half of them
    )
    await admin(args.postgres, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    await admin(args.postgres, f'CREATE DATABASE "{args.database}"')
    await db.migrate(settings)
    redis = create_redis(settings)  # the runtime's own pool: blocking, bounded
    loads: list[Load] = []
    mem: dict[str, float] | None = None
    try:
        for processes in args.processes if args.loads else ():
            # The actors first: the ceiling then also runs at their half rate, the latency
            # target's load, so the table shows what plain Redis round trips do at that rate
            # on this machine (the reference for their p99), minutes apart at most.
            sender = Runtime(settings, redis)
            await sender.start()
            try:
                async with children(settings, "worker", processes, **args.worker_env) as servers:
                    actor_loads = await measure(
                        "actor ask", servers, asker(sender), args, settings, redis
                    )
            finally:
                await sender.close()
            if not args.skip_ceiling:
                half = next(load.rate for load in actor_loads if load.peak) / 2
                loads += await measure_ceiling(settings, redis, processes, args, half)
            loads += actor_loads
        if args.memory_keys:
            mem = await memory(settings, redis, args.memory_keys)
    finally:
        found: list[Any] = []
        async for name in redis.scan_iter(match=f"{namespace}:*", count=1000):
            found.append(name)
            if len(found) == 1000:  # a million outcomes after a memory run: not one by one
                await redis.unlink(*found)
                found.clear()
        if found:
            await redis.unlink(*found)
        await redis.aclose(close_connection_pool=True)
        await admin(args.postgres, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    report(loads, mem, args)


SHARE_TARGET: Final = 0.5  # of the ceiling's peak, at the actors' peak
P99_TARGET: Final = 0.010  # seconds, at half the actors' peak
MEMORY_KEYS_TARGET: Final = 1_000_000  # distinct keys told once ...
MEMORY_TARGET_MIB: Final = 100  # ... grow a worker by about this much at most


def shares(loads: list[Load]) -> dict[int, float]:
    """Per process count, the actors' peak rate over the ceiling's (both measured)."""
    peaks = {(load.target, load.processes): load.rate for load in loads if load.peak}
    return {
        processes: rate / peaks[("Redis ceiling", processes)]
        for (target, processes), rate in peaks.items()
        if target == "actor ask" and ("Redis ceiling", processes) in peaks
    }


def busy(load: Load) -> float:
    """The share of the machine's CPUs the measured processes used during `load`: at half the
    peak, what is left for a wake-up to find a CPU free (docs/PERFORMANCE.md, Actors)."""
    return sum(load.cpu.values()) / load.seconds / cpu_count()


def verdicts(loads: list[Load]) -> list[str]:
    """The issue's latency and throughput targets per process count, met or not, each beside
    what the Redis ceiling did: its peak, and its p99 at the actors' half rate."""
    lines: list[str] = []
    share_of = shares(loads)
    for processes in sorted({load.processes for load in loads}):
        mine = [load for load in loads if load.processes == processes]
        actor = {load.name: load for load in mine if load.target == "actor ask"}
        ceiling = {load.name: load for load in mine if load.target != "actor ask"}
        half = actor.get("half")
        if half is None:
            continue
        parts = []
        share = share_of.get(processes)
        if share is not None:
            parts.append(
                f"share {share:.0%} ({'met' if share >= SHARE_TARGET else 'NOT met'},"
                f" target {SHARE_TARGET:.0%})"
            )
        p99 = half.percentile(0.99)
        verdict = "met" if p99 <= P99_TARGET else "NOT met"
        text = (
            f"p99 at half the peak {p99 * 1000:.2f} ms ({verdict}, target {P99_TARGET * 1000:g} ms"
        )
        reference = ceiling.get(REFERENCE)
        if reference is not None:
            text += f"; plain Redis at that rate {reference.percentile(0.99) * 1000:.2f} ms"
        parts.append(text + f"; the machine {busy(half):.0%} busy there)")
        lines.append(f"targets, {processes} process(es): " + "; ".join(parts))
    return ["", *lines] if lines else []


def report(loads: list[Load], mem: dict[str, float] | None, args: argparse.Namespace) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"\n{now}; {cpu_count()} CPUs ({cpu_model()}), cpuidle {idle_driver()};"
        f" Python {platform.python_version()}"
    )
    print(
        f"askers {', '.join(map(str, args.concurrency))}, {args.keys} keys,"
        f" {args.duration:g} s per load after {args.warmup:g} s warm-up\n"
    )
    print(
        "| target | processes | load | asks/s | p50 ms | p99 ms | of ceiling |"
        " CPU us/ask: server + Redis + PostgreSQL + client = total |"
    )
    print("|---|---|---|---|---|---|---|---|")
    share_of = shares(loads)
    for load in loads:
        share = share_of.get(load.processes) if load.target == "actor ask" and load.peak else None
        ratio = "" if share is None else f"{share:.0%}"
        parts = [load.cpu_per_ask(part) for part in CPU_PARTS]
        cpu = (
            " + ".join(f"{part:.0f}" for part in parts) + f" = {sum(parts):.0f}" if load.cpu else ""
        )
        print(
            f"| {load.target} | {load.processes} | {load.name} | {load.rate:,.0f} |"
            f" {load.percentile(0.5) * 1000:.2f} | {load.percentile(0.99) * 1000:.2f} | {ratio} |"
            f" {cpu if load.cpu else ''} |"
        )
    for line in verdicts(loads):
        print(line)
    if mem is not None:
        print(
            f"\nmemory: {args.memory_keys:,} distinct keys told once in {mem['seconds']:.0f} s;"
            f" worker RSS {mem['before']:.0f} MiB before, {mem['peak']:.0f} MiB at most,"
            f" {mem['after']:.0f} MiB after (+{mem['after'] - mem['before']:.0f}),"
            f" {mem['swept']:.0f} MiB after passivation"
        )
        if args.memory_keys >= MEMORY_KEYS_TARGET:  # the target is for a million keys
            growth = mem["after"] - mem["before"]
            verdict = "met" if growth <= MEMORY_TARGET_MIB else "NOT met"
            target = f"target ~{MEMORY_TARGET_MIB} MiB"
            print(f"targets, memory: +{growth:.0f} MiB ({verdict}, {target})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[32, 64, 128, 256],
        metavar="N,...",
        help="askers of the closed loads, in turn; the fastest is the peak (default 32,64,128,256)",
    )
    parser.add_argument("--keys", type=int, default=1000, help="distinct keys asked")
    parser.add_argument("--memory-keys", type=int, default=100_000, help="0: no memory check")
    parser.add_argument(
        "--no-loads", dest="loads", action="store_false", help="only the memory check"
    )
    parser.add_argument(
        "--processes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[1, 2],
        help="server processes per load, in turn (default 1,2)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="DEER_NAME=VALUE",
        help="a setting for the actor workers (repeatable)",
    )
    parser.add_argument(
        "--paced",
        type=lambda text: [float(part) for part in text.split(",")],
        default=[],
        metavar="RATE,...",
        help="also measure latency at these fixed rates (asks per second)",
    )
    parser.add_argument("--skip-ceiling", action="store_true", help="measure the actors only")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--postgres", default=POSTGRES_SERVER, help="the PostgreSQL server (any database part)"
    )
    parser.add_argument(
        "--database", default=BENCH_DATABASE, help="made, migrated and dropped by the run"
    )
    parser.add_argument("--role", choices=["ceiling", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--share", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.worker_env = dict(item.split("=", 1) for item in args.worker_env)
    if args.role is not None:
        return child_main(args.role, args.share)
    run_async(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
