"""The actor runtime: partitions read from Redis Streams, one turn per actor at a time.

See docs/actors.md for the semantics. One `KindHost` per hosted kind owns leases on a share of
the kind's partitions, reads them with one fenced reader, and runs each actor's mailbox as a
task; `Runtime` holds the hosts, sends commands (`tell`, `ask`) and routes replies back.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.exceptions import RedisError, ResponseError

from actors import store
from actors.base import (
    Actor,
    AskTimeout,
    CommandFailed,
    CommandResult,
    JsonObject,
    Outcome,
    Overloaded,
    StaleOwner,
    VersionConflict,
    message_order,
    partition_of,
    raise_rejection,
    rejection,
    reminder_command_id,
)
from actors.batching import GroupCommit
from actors.leases import Leases, lease_key, lease_value
from actors.outbox import OutboxRelay
from config.settings import Settings
from deer.cache import DirectCommands, DirectScript, key
from deer.errors import DeerError

log = logging.getLogger(__name__)

READ_BATCH: Final = 100  # entries per partition and read, at most
WAKE_BLOCK_MS: Final = 1000  # longest blocking wait for new entries (shorter: renewal period)
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HANDLE_BACKOFF: Final = 0.05  # seconds, times the attempt, between failed handle attempts
INFRA_BACKOFF_MAX: Final = 2.0  # seconds: PostgreSQL or Redis failing under a turn
DEAD_LETTERS_KEPT: Final = 100_000
REMINDER_POLL: Final = 0.2  # seconds between looks for due reminders (at most the renewal period)
REMINDER_BATCH: Final = 100  # reminders fired per partition and look, at most
CANCEL_RECHECK: Final = 0.5  # seconds: a task that swallowed a cancellation is cancelled again
# A read whose group was destroyed (a new owner took the stream over) or whose stream was
# deleted (Redis lost it) is answered with one of these.
GROUP_GONE: Final = ("NOGROUP", "UNBLOCKED")
READ_HOLD: Final = 0.002  # seconds a read may wait for the commits in flight, at most
COMMIT_BATCH: Final = 256  # turns committed (and acknowledged) together, at most
APPEND_BATCH: Final = 256  # commands appended together, at most

# Take a partition's stream over for this process's consumer group, if the lease is still ours:
# destroy every other group (a previous owner's: its blocked or later XREADGROUP is answered
# NOGROUP from now on, so it can take nothing more) and create ours just before the oldest entry
# they left pending (else at their last delivered one), so the first reads bring the previous
# owner's unfinished entries, in stream order, then the new ones. KEYS: lease, stream.
# ARGV: lease value, our group. Returns false if the lease is not ours, else the id our group
# starts after and the last id delivered to a previous group (entries up to it are redelivered).
TAKE_GROUP: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local function before(id)
  local ms, seq = parse(id)
  if seq > 0 then return string.format('%d-%d', ms, seq - 1) end
  if ms > 0 then return string.format('%d-18446744073709551615', ms - 1) end
  return '0-0'
end
local start, upto, read = nil, '0-0', nil
local found, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[2])
if found then
  for _, flat in ipairs(groups) do
    local group = {}
    for i = 1, #flat, 2 do group[flat[i]] = flat[i + 1] end
    local from, last = group['last-delivered-id'], group['last-delivered-id']
    if group['pending'] > 0 then
      from = before(redis.call('XPENDING', KEYS[2], group['name'])[2])
    end
    if start == nil or less(from, start) then
      start = from
      read = nil
      if type(group['entries-read']) == 'number' then
        read = group['entries-read'] - #redis.call('XRANGE', KEYS[2], '(' .. from, last)
      end
    end
    if less(upto, last) then upto = last end
    redis.call('XGROUP', 'DESTROY', KEYS[2], group['name'])
  end
end
if start == nil then
  redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[2], '0', 'MKSTREAM')
  start = '0-0'
elseif read ~= nil then
  redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[2], start, 'ENTRIESREAD', read)
else
  redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[2], start)
end
return {start, upto}
"""


# Append commands, each unless its partition's stream already holds the most it may (entries
# are trimmed once acknowledged, so its length is the backlog): per command the check and the
# XADD are one step. The commands sent meanwhile by other tasks of the process go together.
# KEYS: the stream of each command. ARGV: the limit, then per command its id, key, body and
# reply channel. Returns per command its entry id, or false (refused: the stream is full).
APPEND: Final = """
local out = {}
for i = 1, #KEYS do
  if redis.call('XLEN', KEYS[i]) >= tonumber(ARGV[1]) then
    out[i] = false
  else
    local at = 4 * i - 2
    out[i] = redis.call('XADD', KEYS[i], '*', 'id', ARGV[at], 'key', ARGV[at + 1],
                        'body', ARGV[at + 2], 'reply', ARGV[at + 3])
  end
end
return out
"""


# Move the due reminders of every partition whose lease is still ours into its stream, each
# with XADD + ZREM + HDEL in one script: a reminder fires once, and only its owner fires it.
# KEYS per partition: lease, stream, reminders (sorted set), reminder bodies (hash).
# ARGV: now (ms), batch, then the lease value per partition. Per partition: {due, fired}.
FIRE_REMINDERS: Final = """
local out = {}
for i = 1, #KEYS / 4 do
  local due, fired = 0, 0
  if redis.call('GET', KEYS[4 * i - 3]) == ARGV[2 + i] then
    local stream, zset, bodies = KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
    due = redis.call('ZCOUNT', zset, '-inf', ARGV[1])
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', zset, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
      local body = redis.call('HGET', bodies, id)
      if body then
        local reminder = cjson.decode(body)
        redis.call('XADD', stream, '*', 'id', id, 'key', reminder[1], 'body', reminder[2],
                   'reply', '')
        fired = fired + 1
      end
      redis.call('ZREM', zset, id)
      redis.call('HDEL', bodies, id)
    end
  end
  out[i] = {due, fired}
end
return out
"""


# After a batch of turns committed: store each outcome, send the outcomes to the processes
# that asked (one message per process: a JSON array of its outcomes), acknowledge the entries;
# one step, one reply to parse. An outcome is kept the long TTL if nobody waits for it (a tell,
# a reminder) or its asker gave up waiting (its "wanted" key, set on a timeout), else the short
# one: the asker has it already, through its channel.
# KEYS: the outcome key of each entry (N of them), its "wanted" key (N), then the stream of
# each partition. ARGV: the long TTL, the group, N, the short TTL, then per entry its outcome
# ('': none to store) and reply channel ('': nobody waits), then per stream the number of its
# entries and their ids.
FINISH: Final = """
local n = tonumber(ARGV[3])
local replies, channels = {}, {}
for i = 1, n do
  local outcome, channel = ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  if outcome ~= '' then
    local ttl = ARGV[1]
    if channel ~= '' then
      if redis.call('EXISTS', KEYS[n + i]) == 0 then ttl = ARGV[4] end
      if replies[channel] == nil then
        replies[channel] = {}
        channels[#channels + 1] = channel
      end
      table.insert(replies[channel], outcome)
    end
    redis.call('SET', KEYS[i], outcome, 'EX', ttl)
  end
end
for _, channel in ipairs(channels) do
  redis.call('PUBLISH', channel, '[' .. table.concat(replies[channel], ',') .. ']')
end
local at = 5 + 2 * n
for k = 2 * n + 1, #KEYS do
  local count = tonumber(ARGV[at])
  redis.call('XACK', KEYS[k], ARGV[2], unpack(ARGV, at + 1, at + count))
  at = at + count + 1
end
return n
"""


def stream_key(settings: Settings, kind: str, partition: int) -> str:
    return key(settings, "actors", kind, partition)


def starts_key(settings: Settings, kind: str, partition: int) -> str:
    """Hash: message id -> handlings begun, for redelivered entries of a partition."""
    return key(settings, "actors", kind, "starts", partition)


def reminders_key(settings: Settings, kind: str, partition: int) -> str:
    """Sorted set: the reminder command ids of a partition, scored by due time (ms)."""
    return key(settings, "actors", kind, "reminders", partition)


def reminder_bodies_key(settings: Settings, kind: str, partition: int) -> str:
    """Hash: reminder command id -> `[key, command JSON]`."""
    return key(settings, "actors", kind, "reminder-bodies", partition)


def reply_channel(settings: Settings, process_id: str) -> str:
    return key(settings, "actors", "reply", process_id)


def outcome_key(settings: Settings, command_id: str) -> str:
    return key(settings, "actors", "outcome", command_id)


def wanted_key(settings: Settings, command_id: str) -> str:
    """Set when an ask timed out: its outcome is kept the long TTL (`Runtime.ask`)."""
    return key(settings, "actors", "wanted", command_id)


def answered_outcome_ttl(settings: Settings) -> int:
    """Seconds the outcome of an ask that was answered in time is kept: long enough for an
    asker whose reply was lost (its subscription reconnecting) to time out and ask it kept."""
    return min(settings.actor_outcome_ttl, int(2 * settings.actor_ask_timeout) + 60)


def dead_letter_key(settings: Settings, kind: str) -> str:
    return key(settings, "actors", kind, "dead")


def as_text(value: bytes | str) -> str:
    """A Redis reply (bytes here) as text."""
    return value.decode() if isinstance(value, bytes) else value


def _named(fields: Mapping[Any, Any] | Sequence[Any]) -> Mapping[Any, Any]:
    """An entry's fields as a mapping: as Redis sends them, names and values in turn."""
    if isinstance(fields, Mapping):
        return fields
    return dict(zip(fields[::2], fields[1::2], strict=True))  # ValueError if one is missing


def _shown(fields: Any) -> Any:
    """An unreadable entry's fields, as a mapping when they pair up."""
    try:
        return _named(fields)
    except (TypeError, ValueError):
        return fields


def _printable(fields: Any) -> Any:
    """An entry's fields as read, for a dead letter: bytes as text (undecodable ones replaced)."""
    if isinstance(fields, bytes):
        return fields.decode(errors="replace")
    if isinstance(fields, Mapping):
        return {_printable(name): _printable(value) for name, value in fields.items()}
    if isinstance(fields, list | tuple):
        return [_printable(item) for item in fields]
    return fields


async def cancel_all(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Cancel the tasks and wait until they ended, cancelling again any that swallowed it
    (a cancellation that lands inside a client library's own timeout can be lost)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_RECHECK)


def encode_result(result: CommandResult) -> bytes:
    return orjson.dumps(
        {"id": result.command_id, "ok": result.ok, "reply": result.reply, "error": result.error}
    )


def _result(data: Mapping[str, Any]) -> CommandResult:
    return CommandResult(data["id"], data["ok"], data["reply"], data["error"])


def decode_result(raw: bytes | str) -> CommandResult:
    return _result(orjson.loads(raw))


def decode_results(raw: bytes | str) -> list[CommandResult]:
    """The outcomes in one reply message: a JSON array (`FINISH`), or one outcome (a process
    of an earlier version)."""
    data = orjson.loads(raw)
    return [_result(item) for item in data] if isinstance(data, list) else [_result(data)]


@dataclass(slots=True)
class Entry:
    """One command as read from a partition stream."""

    partition: int
    message_id: str
    command_id: str
    key: str
    body: JsonObject
    reply_to: str
    redelivered: bool = False  # delivered to a previous owner of the partition too
    starts: int = 0  # for a redelivered entry: handlings begun, as counted in Redis

    @property
    def deliveries(self) -> int:
        """Deliveries known: the first, and each counted start after it."""
        return self.starts + 1

    @classmethod
    def parse(
        cls, partition: int, message_id: bytes | str, fields: Mapping[Any, Any] | Sequence[Any]
    ) -> Entry:
        fields = _named(fields)
        if b"id" not in fields:  # a client that decodes responses: field names are text
            fields = {as_text(name).encode(): value for name, value in fields.items()}
        return cls(
            partition=partition,
            message_id=as_text(message_id),
            command_id=as_text(fields[b"id"]),
            key=as_text(fields[b"key"]),
            body=orjson.loads(fields[b"body"]),
            reply_to=as_text(fields.get(b"reply", b"")),
        )


# An entry that is no command: partition, message id, fields as read, why it is none.
Unreadable = tuple[int, bytes | str, Any, Exception]


def _parsed(
    partition: int, message_id: bytes | str, fields: Any, unreadable: list[Unreadable]
) -> Entry | None:
    """The entry, or None after noting in `unreadable` why it is no command."""
    try:
        return Entry.parse(partition, message_id, fields)
    except (KeyError, TypeError, ValueError) as exc:  # a field missing, a body not JSON
        unreadable.append((partition, message_id, fields, exc))
        return None


@dataclass(frozen=True, slots=True, eq=False)
class Held:
    """One acquisition of a partition: the lease's token and the fencing token to commit with."""

    token: int
    fence: int


@dataclass(slots=True, eq=False)
class Cell:
    """One actor in memory: its mailbox, its running task, its last committed state."""

    key: str
    partition: int
    held: Held
    # A list, not a deque: an empty deque takes 760 bytes, an empty list 56, in every actor
    # alive; mailboxes are short (at most the in-flight bound), so popping the front is cheap.
    mailbox: list[Entry] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    stored: store.Stored | None = None
    idle_since: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True, eq=False)
class Append:
    """A command on its way to its partition's stream (`reply_to`: '' when nobody waits)."""

    stream: str
    command_id: str
    key: str
    body: bytes
    reply_to: str


@dataclass(frozen=True, slots=True, eq=False)
class Done:
    """What Redis is told once an entry's turn committed, or was found applied already: the
    reminders to schedule (`[id, at, command]`) or cancel, the outcome, the acknowledgement."""

    entry: Entry
    result: CommandResult | None
    schedule: Sequence[Sequence[Any]] = ()
    cancel: Sequence[str] = ()


@dataclass(slots=True)
class HostStats:
    """Plain numbers, bumped on the hot path and read at scrape time (actors.metrics)."""

    handled: int = 0
    redelivered: int = 0  # entries already applied, acknowledged again
    read_again: int = 0  # entries read again: after a takeover, or after a lost read reply
    dead_letters: int = 0
    stale_commits: int = 0
    commits: int = 0  # commit statements: `handled / commits` turns per batch
    reminders_fired: int = 0
    reminders_due: int = 0  # at the last look, in the owned partitions
    pending: int = 0  # read, not acknowledged, in the owned partitions (at the last tick)
    lag: int = 0  # not yet read by the group, in the owned partitions (at the last tick)
    dead_letters_waiting: int = 0  # in the kind's dead-letter stream (at the last tick)
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_count: int = 0
    latency_sum: float = 0.0

    def observe(self, seconds: float) -> None:
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_count += 1
        self.latency_sum += seconds


class KindHost:
    """Hosts one actor kind in this process: leases, the fenced reader, the mailboxes."""

    def __init__(self, runtime: Runtime, actor: Actor) -> None:
        self.settings = runtime.settings
        self.redis = runtime.redis
        self.actor = actor
        self.kind = actor.kind
        self.owner = runtime.process_id
        self.partitions = runtime.partitions(actor.kind)
        self.leases = Leases(self.settings, self.redis, self.kind, self.owner)
        # The reads and the acknowledgements each over a pool connection kept for them (one
        # command at a time each), sent and parsed directly: no pool acquire and release per
        # read or per batch, nor redis-py's per-command machinery (`deer.cache.DirectCommands`).
        self._reader = DirectCommands(runtime.redis, keep=1)
        self._acker = DirectScript(runtime.redis, FINISH, keep=1)
        self.owned: dict[int, Held] = {}  # partition -> our acquisition
        self.reading: set[int] = set()  # owned partitions whose new entries we read
        # This process's consumer group on the streams it owns: a new owner destroys it, which
        # fences this process's reads (docs/actors.md, "Single owner per partition").
        self.group = f"{self.kind}.{self.owner}.{uuid.uuid4().hex[:8]}"
        self._joining: dict[int, Held] = {}  # acquired, its stream not yet taken over
        self._redelivered: dict[int, tuple[int, int]] = {}  # partition -> last id delivered before
        self.cells: dict[int, dict[str, Cell]] = {}
        self.stats = HostStats()
        self._turns = runtime.turns
        self._held = runtime.held
        self._max_in_flight = self.settings.actor_max_in_flight
        self._in_flight = 0
        # The entries in mailboxes or in turns, by (partition, message id): a read of our
        # pending entries routes only the others (those of a read whose reply was lost).
        self._routed: set[tuple[int, str]] = set()
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: set[asyncio.Task[None]] = set()
        in_flight = self.settings.actor_commits_in_flight
        self._take_group = runtime.redis.register_script(TAKE_GROUP)
        self._commits = GroupCommit[store.Turn, int](
            self._commit_turns, limit=COMMIT_BATCH, concurrency=in_flight
        )
        # Told to Redis apart from the commit, so the next batch's commit need not wait for it.
        self._finishes = GroupCommit[Done, None](self._finish_batch, limit=COMMIT_BATCH)
        self._loads = GroupCommit[str, store.Stored | None](
            self._load_batch, limit=COMMIT_BATCH, concurrency=in_flight
        )
        self._stopping = False
        self._wake_ms = min(WAKE_BLOCK_MS, int(self.settings.actor_lease_renew * 1000))
        # A graceful release may wait this long without risking the other leases' renewal.
        renew, ttl = self.settings.actor_lease_renew, self.settings.actor_lease_ttl
        self._release_wait = max(0.05, ttl - 2 * renew)
        self._first = zlib.crc32(self.owner.encode()) % self.partitions  # spreads first picks
        # Named once: every read names each partition read, every batch each one acknowledged.
        self._streams = [stream_key(self.settings, self.kind, p) for p in range(self.partitions)]
        self._outcomes = outcome_key(self.settings, "")  # + a command id: its outcome's key
        self._wanted = wanted_key(self.settings, "")  # + a command id: asked to keep it
        self._answered_ttl = answered_outcome_ttl(self.settings)
        self._channels = reply_channel(self.settings, "")  # + a process id: its reply channel

    def _stream(self, partition: int) -> str:
        return self._streams[partition]

    # --- life cycle -------------------------------------------------------------------

    async def prepare(self) -> None:
        """Take a first share of the partitions (read from the reader's first turn)."""
        await self.tick()

    async def run(self) -> None:
        """The lease loop and the reader, until cancelled by `close`."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._lease_loop())
            group.create_task(self._read_loop())
            group.create_task(self._reminder_loop())

    def stop(self) -> None:
        """Read nothing more; the loops end at their next turn (before `close`)."""
        self._stopping = True
        self.reading.clear()

    async def close(self, grace: float) -> None:
        """Finish in-flight turns (up to `grace` seconds), then release every lease."""
        self.stop()
        busy = set(self._tasks)
        if busy:
            _, late = await asyncio.wait(busy, timeout=grace)
            await cancel_all(late)
        await self._commits.close()
        await self._finishes.close()
        await self._loads.close()
        for direct in (self._reader, self._acker):
            await direct.close()  # the kept connections back to the pool
        for partition, held in list(self.owned.items()):
            self._lose(partition)
            with contextlib.suppress(Exception):
                await self.leases.release(partition, held.token)
        with contextlib.suppress(Exception):
            await self.leases.leave()

    # --- leases -----------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.actor_lease_renew)
            try:
                await self.tick()
            except Exception:  # Redis or PostgreSQL away: leases may lapse, the next tick retries
                log.exception("actor kind %s: lease tick failed", self.kind)

    async def tick(self) -> None:
        """Heartbeat, renew, rebalance to our share, trim the streams, passivate idle actors."""
        live = await self.leases.heartbeat()
        for partition, held in list(self.owned.items()):
            renewed = await self.leases.renew(partition, held.token)
            if not renewed and self.owned.get(partition) is held:
                log.warning("actor kind %s: lease on partition %d lost", self.kind, partition)
                self._lose(partition)
        if self._stopping:
            return
        target = math.ceil(self.partitions / live)
        order = [(self._first + step) % self.partitions for step in range(self.partitions)]
        if len(self.owned) > target:
            extra = [partition for partition in reversed(order) if partition in self.owned]
            for partition in extra[: len(self.owned) - target]:
                await self._release(partition)
        elif len(self.owned) < target:
            holders = await self.redis.mget([self._lease(p) for p in order])
            for partition, holder in zip(order, holders, strict=True):
                if len(self.owned) >= target:
                    break
                if holder is None and partition not in self.owned:
                    acquired = await self.leases.acquire(partition)
                    if acquired is not None:
                        await self._take_over(partition, acquired)
        await self._trim()
        self._passivate()

    def _lease(self, partition: int) -> str:
        return lease_key(self.settings, self.kind, partition)

    async def _take_over(self, partition: int, token: int) -> None:
        """Record the token; the reader then takes the stream over (`_join`) between reads."""
        try:
            fence = await store.record_token(self.kind, partition, token)
        except Exception:
            await self.leases.release(partition, token)
            raise
        held = self.owned[partition] = Held(token, fence)
        self.cells[partition] = {}
        self._joining[partition] = held
        log.info("actor kind %s: partition %d taken, fence %d", self.kind, partition, fence)

    async def _release(self, partition: int) -> None:
        """Give a partition away: stop reading, let its turns finish (bounded), drop the lease."""
        held = self.owned.get(partition)
        if held is None:
            return
        self.reading.discard(partition)
        busy = [cell.task for cell in self.cells.get(partition, {}).values() if cell.task]
        if busy:
            await asyncio.wait(busy, timeout=self._release_wait)
        if self.owned.get(partition) is held:
            self._lose(partition)
            await self.leases.release(partition, held.token)
            log.info("actor kind %s: partition %d released", self.kind, partition)

    def _lose(self, partition: int) -> None:
        """Forget a partition at once: its actors leave memory, their entries stay pending."""
        self.owned.pop(partition, None)
        self.reading.discard(partition)
        self._joining.pop(partition, None)
        self._redelivered.pop(partition, None)
        for cell in self.cells.pop(partition, {}).values():
            for entry in cell.mailbox:
                self._routed.discard((partition, entry.message_id))
            self._done(len(cell.mailbox))
            cell.mailbox.clear()

    # --- reading and routing ----------------------------------------------------------

    async def _read_loop(self) -> None:
        """Take over the streams of partitions just acquired, then read what is new with one
        `XREADGROUP BLOCK` over the partitions read. Only this task reads, so no read of ours
        is in flight while our group is created on a stream."""
        backoff = HANDLE_BACKOFF
        gone = False  # a read found a group of ours gone: look at the leases and groups
        lost = False  # a read failed: Redis may have delivered entries whose reply we lost
        while not self._stopping:
            while self._in_flight >= self._max_in_flight:
                self._room.clear()
                await self._room.wait()
            try:
                if gone:
                    await self._check_groups()
                    gone = False
                for partition, held in list(self._joining.items()):
                    await self._join(partition, held)
                if lost:
                    await self._read_pending()
                    lost = False
                if await self._read_once():
                    # What arrives while commits run waits for the next batch anyway: read it
                    # once they are done (bounded), in one read, not in several small ones.
                    await asyncio.sleep(0)  # the turns just routed reach their commit first
                    await self._commits.idle(READ_HOLD)
                backoff = HANDLE_BACKOFF
            except Exception as exc:
                if isinstance(exc, ResponseError) and str(exc).startswith(GROUP_GONE):
                    # Another process took a partition over (or Redis lost its stream).
                    log.warning("actor kind %s: %s", self.kind, exc)
                    gone = True
                    continue
                log.exception("actor kind %s: read failed", self.kind)
                lost = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, INFRA_BACKOFF_MAX)

    async def _join(self, partition: int, held: Held) -> None:
        """Make our group the stream's only one, starting at the previous owner's oldest
        pending entry, then read the partition (if the lease is still ours)."""
        taken = await self._take_group(
            keys=[self._lease(partition), self._stream(partition)],
            args=[lease_value(self.owner, held.token), self.group],
        )
        if self._joining.get(partition) is not held:
            return
        del self._joining[partition]
        if taken is None:
            log.warning("actor kind %s: lease on %d gone before its stream", self.kind, partition)
            self._lose(partition)
            return
        start, upto = (as_text(value) for value in taken)
        if message_order(upto) > message_order(start):
            self._redelivered[partition] = message_order(upto)
        self.reading.add(partition)
        log.info("actor kind %s: stream %d read from after %s", self.kind, partition, start)

    def _read_holds(self) -> dict[int, Held]:
        """The partitions read, in order, with the acquisition each is read under."""
        return {p: self.owned[p] for p in sorted(self.reading) if p in self.owned}

    async def _check_groups(self) -> None:
        """After a NOGROUP: drop the partitions whose lease is no longer ours; a partition
        still ours whose group is gone (its stream lost) is taken over again."""
        holds = self._read_holds()
        if not holds:
            return
        values = await self.redis.mget([self._lease(p) for p in holds])
        async with self.redis.pipeline(transaction=False) as pipe:
            for partition in holds:
                pipe.xinfo_groups(self._stream(partition))
            groups = await pipe.execute(raise_on_error=False)
        for (partition, held), value, found in zip(holds.items(), values, groups, strict=True):
            if self.owned.get(partition) is not held:
                continue
            if value is None or as_text(value) != lease_value(self.owner, held.token):
                log.warning("actor kind %s: lease on %d gone at read", self.kind, partition)
                self._lose(partition)
            elif isinstance(found, BaseException) or all(
                as_text(group["name"]) != self.group for group in found
            ):
                self.reading.discard(partition)
                self._joining[partition] = held

    async def _read_once(self) -> int:
        """Route the new entries of the partitions read (one `XREADGROUP`, blocking at most a
        renewal period); how many were routed."""
        holds = self._read_holds()
        if not holds:
            await asyncio.sleep(self._wake_ms / 1000)
            return 0
        room = max(1, min(READ_BATCH, (self._max_in_flight - self._in_flight) // len(holds)))
        names = [self._stream(partition) for partition in holds]
        found: Any = await self._reader.execute(
            "XREADGROUP", "GROUP", self.group, self.owner, "COUNT", room,
            "BLOCK", self._wake_ms, "STREAMS", *names, *[">"] * len(names),
        )  # fmt: skip
        routed = 0
        unreadable: list[Unreadable] = []
        for partition, entries in self._found(found, dict(zip(names, holds, strict=True)), holds):
            before = self._redelivered.get(partition)
            for message_id, fields in entries:
                entry = _parsed(partition, message_id, fields, unreadable)
                if entry is None:
                    continue
                if before is not None:
                    if message_order(entry.message_id) <= before:
                        entry.redelivered = True
                        self.stats.read_again += 1
                    else:
                        del self._redelivered[partition]
                        before = None
                self._route(entry)
                routed += 1
        await self._set_aside(unreadable)
        return routed

    async def _read_pending(self) -> None:
        """Route the entries Redis delivered to us that are neither acknowledged nor in a
        mailbox: those of a read whose reply was lost (a connection broken mid-read). Read from
        our pending entries (`XREADGROUP ... 0`), oldest first, before anything new, so each
        actor still gets its messages in stream order."""
        holds = self._read_holds()
        after = dict.fromkeys(holds, "0")
        while after:
            names = [self._stream(partition) for partition in after]
            found: Any = await self._reader.execute(
                "XREADGROUP", "GROUP", self.group, self.owner, "COUNT", READ_BATCH,
                "STREAMS", *names, *after.values(),
            )  # fmt: skip
            seen = dict.fromkeys(after, False)
            named = dict(zip(names, after, strict=True))
            unreadable: list[Unreadable] = []
            for partition, entries in self._found(found, named, holds):
                for message_id, fields in entries:
                    after[partition] = as_text(message_id)
                    seen[partition] = True
                    if not fields or (partition, after[partition]) in self._routed:
                        continue  # trimmed away, or read already and not finished yet
                    entry = _parsed(partition, message_id, fields, unreadable)
                    if entry is not None:
                        self.stats.read_again += 1
                        self._route(entry)
            await self._set_aside(unreadable)
            after = {partition: start for partition, start in after.items() if seen[partition]}

    async def _set_aside(self, unreadable: Sequence[Unreadable]) -> None:
        """Entries that are no command (not appended by a runtime: fields missing or not JSON)
        go to the dead-letter stream and are acknowledged, in one transaction; left pending,
        each read of the pending entries would fail on them again."""
        if not unreadable:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for partition, message_id, fields, exc in unreadable:
                log.error(
                    "actor kind %s: entry %s of partition %d is no command: %r",
                    self.kind, as_text(message_id), partition, exc,
                )  # fmt: skip
                pipe.xadd(
                    dead_letter_key(self.settings, self.kind),
                    {
                        "message_id": message_id,
                        "partition": partition,
                        "error": f"unreadable entry: {type(exc).__name__}: {exc}",
                        "fields": orjson.dumps(_printable(_shown(fields))),
                    },
                    maxlen=DEAD_LETTERS_KEPT,
                    approximate=True,
                )
                pipe.xack(self._stream(partition), self.group, message_id)
            await pipe.execute()
        self.stats.dead_letters += len(unreadable)

    def _found(
        self, found: Any, named: Mapping[str, int], holds: Mapping[int, Held]
    ) -> Iterator[tuple[int, list[Any]]]:
        """The entries of an `XREADGROUP` reply (streams `named` by partition) by partition,
        for the partitions still read under the acquisition the read was made with (others
        stay pending in our group: the next owner reads them again)."""
        for stream, entries in found.items() if isinstance(found, dict) else found or ():
            partition = named[as_text(stream)]
            if self.owned.get(partition) is holds[partition] and partition in self.reading:
                yield partition, entries

    async def _reminder_loop(self) -> None:
        pause = min(REMINDER_POLL, self.settings.actor_lease_renew)
        while not self._stopping:
            await asyncio.sleep(pause)
            try:
                await self.fire_reminders()
            except Exception:
                log.exception("actor kind %s: firing reminders failed", self.kind)

    async def fire_reminders(self) -> int:
        """Append the due reminders of the owned partitions to their streams; how many."""
        holds = dict(self.owned)
        if not holds:
            self.stats.reminders_due = 0
            return 0
        keys: list[str] = []
        values: list[str] = []
        for partition, held in holds.items():
            keys += [
                self._lease(partition),
                self._stream(partition),
                reminders_key(self.settings, self.kind, partition),
                reminder_bodies_key(self.settings, self.kind, partition),
            ]
            values.append(lease_value(self.owner, held.token))
        now_ms = int(time.time() * 1000)
        replies = await self.redis.eval(
            FIRE_REMINDERS, len(keys), *keys, now_ms, REMINDER_BATCH, *values
        )
        fired = sum(int(reply[1]) for reply in replies)
        self.stats.reminders_due = sum(int(reply[0]) for reply in replies) - fired
        self.stats.reminders_fired += fired
        return fired

    def _route(self, entry: Entry) -> None:
        cells = self.cells.setdefault(entry.partition, {})
        cell = cells.get(entry.key)
        if cell is None:
            cell = cells[entry.key] = Cell(entry.key, entry.partition, self.owned[entry.partition])
        cell.mailbox.append(entry)
        self._routed.add((entry.partition, entry.message_id))
        self._in_flight += 1
        if cell.task is None:
            task = asyncio.create_task(self._drain(cell))
            cell.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        """Entries read and not yet acknowledged: the depth of all mailboxes together."""
        return self._in_flight

    def _done(self, count: int) -> None:
        self._in_flight -= count
        self._room.set()

    def _current(self, cell: Cell) -> bool:
        return (
            self.owned.get(cell.partition) is cell.held
            and self.cells.get(cell.partition, {}).get(cell.key) is cell
        )

    # --- turns ------------------------------------------------------------------------

    async def _drain(self, cell: Cell) -> None:
        """Run an actor's mailbox, one message at a time, in stream order."""
        try:
            while cell.mailbox and self._current(cell):
                entry = cell.mailbox.pop(0)
                try:
                    async with self._turns:
                        began = time.perf_counter()
                        await self._turn(cell, entry)
                        self.stats.observe(time.perf_counter() - began)
                finally:
                    self._routed.discard((cell.partition, entry.message_id))
                    self._done(1)
        finally:
            cell.task = None
            cell.idle_since = time.monotonic()

    async def _turn(self, cell: Cell, entry: Entry) -> None:
        """Apply one entry exactly once, or leave it pending if this process lost the actor.

        Infrastructure failures retry here, holding the mailbox: letting a later message of the
        actor commit first would make this one look like a duplicate.
        """
        backoff = HANDLE_BACKOFF
        while self._current(cell):
            try:
                await self._apply(cell, entry)
                return
            except StaleOwner:
                self.stats.stale_commits += 1
                log.warning("actor kind %s: partition %d fenced off", self.kind, cell.partition)
                if self.owned.get(cell.partition) is cell.held:
                    self._lose(cell.partition)
                return
            except VersionConflict:
                log.warning("actor %s/%s: stale copy, reloading", self.kind, cell.key)
                cell.stored = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, INFRA_BACKOFF_MAX)
            except Exception:
                log.exception("actor %s/%s: turn failed, retrying", self.kind, cell.key)
                cell.stored = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, INFRA_BACKOFF_MAX)

    async def _apply(self, cell: Cell, entry: Entry) -> None:
        if cell.stored is None:
            loaded = await self._loads.submit(cell.key)  # with the loads of other actors
            cell.stored = loaded or store.Stored(
                self.actor.initial_state(cell.key), "", "", None, 0
            )
        stored = cell.stored
        if stored.last_message_id and message_order(entry.message_id) <= message_order(
            stored.last_message_id
        ):
            self.stats.redelivered += 1
            again, remembered = None, stored.last_reply
            if entry.command_id == stored.last_command_id and remembered is not None:
                # The last applied command: its ack (and its reminders) may have been lost.
                again = CommandResult(
                    entry.command_id, remembered["ok"], remembered["reply"], remembered["error"]
                )
                done = Done(
                    entry, again, remembered.get("remind", ()), remembered.get("cancel", ())
                )
            else:
                done = Done(entry, None)
            await self._finishes.submit(done)
            return
        if await self._killed_before(entry):
            outcome = None
            error = f"delivered {entry.deliveries} times, never completed"
            attempts = 0
        else:
            outcome, error, attempts = await self._handle(cell.key, stored.state, entry)
        schedule: list[list[Any]] = []
        if outcome is None:
            await self._dead_letter(entry, error, attempts)
            outcome = Outcome(state=stored.state)
            result = CommandResult(entry.command_id, False, None, error)
        else:
            result = CommandResult(entry.command_id, True, outcome.reply)
            schedule = [
                [reminder.id or f"{entry.command_id}.{index}", reminder.at, reminder.command]
                for index, reminder in enumerate(outcome.reminders)
            ]
        remembered = {"ok": result.ok, "reply": result.reply, "error": result.error}
        if schedule or outcome.cancel_reminders:  # kept to schedule them again if the ack is lost
            remembered["remind"] = schedule
            remembered["cancel"] = list(outcome.cancel_reminders)
        turn = store.Turn(
            partition=cell.partition,
            token=cell.held.fence,
            key=cell.key,
            state=outcome.state,
            message_id=entry.message_id,
            command_id=entry.command_id,
            reply=remembered,
            version=stored.version,
            events=outcome.events,
        )
        # Committed, then acknowledged, each in a batch with the turns of other actors ready
        # meanwhile. If Redis fails after the commit, the retry finds the entry applied.
        version = await self._commits.submit(turn)
        cell.stored = store.Stored(
            outcome.state, entry.message_id, entry.command_id, remembered, version
        )
        self.stats.handled += 1
        await self._finishes.submit(Done(entry, result, schedule, outcome.cancel_reminders))

    async def _load_batch(self, keys: list[str]) -> list[store.Stored | None]:
        found = await store.load(self.kind, keys, self._held)
        return [found.get(key_) for key_ in keys]

    async def _finish_batch(self, done: list[Done]) -> list[None]:
        await self._finish(done)
        return [None] * len(done)

    async def _commit_turns(self, batch: list[store.Turn]) -> list[int | BaseException]:
        """Commit turns in one statement; per turn its new version or its error (a stale
        owner or copy)."""
        try:
            results = await store.commit_turns(self.kind, batch, self._held)
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            # One turn's write can fail the whole statement (a value or a unique index that
            # PostgreSQL refuses): one by one then, so only that actor waits and retries.
            return [result for turn in batch for result in await self._commit_turns([turn])]
        self.stats.commits += 1
        return list(results)

    async def _killed_before(self, entry: Entry) -> bool:
        """Whether a redelivered entry was begun too often without completing: a command that
        kills its process (in-process attempts never reach their limit then).

        Redis's delivery count (XPENDING) says an entry was handed out again; it counts entries
        that merely waited in a mailbox too, so begun handlings of redelivered entries are
        counted apart (`HINCRBY`, only on this rare path). The first delivery is not counted:
        a command is handled at most `max(2, DEER_ACTOR_MAX_ATTEMPTS)` times by dying processes.
        """
        if not entry.redelivered:
            return False
        if not entry.starts:  # once per delivery: retries of the turn in this process are free
            entry.starts = await self.redis.hincrby(
                starts_key(self.settings, self.kind, entry.partition), entry.message_id, 1
            )
        return entry.starts > max(1, self.settings.actor_max_attempts - 1)

    async def _handle(
        self, key_: str, state: JsonObject, entry: Entry
    ) -> tuple[Outcome | None, str, int]:
        error = ""
        for attempt in range(1, self.settings.actor_max_attempts + 1):
            try:
                return await self.actor.handle(key_, state, entry.body), "", attempt
            except DeerError as exc:  # the command is refused: the error is the reply
                return Outcome(state=state, reply=rejection(exc)), "", attempt
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("actor %s/%s: attempt %d failed: %s", self.kind, key_, attempt, error)
                if attempt < self.settings.actor_max_attempts:
                    await asyncio.sleep(HANDLE_BACKOFF * attempt)
        return None, error, self.settings.actor_max_attempts

    async def _dead_letter(self, entry: Entry, error: str, attempts: int) -> None:
        """Record the entry in the dead-letter stream (`attempts`: handled this delivery)."""
        self.stats.dead_letters += 1
        await self.redis.xadd(
            dead_letter_key(self.settings, self.kind),
            {
                "id": entry.command_id,
                "key": entry.key,
                "body": orjson.dumps(entry.body),
                "message_id": entry.message_id,
                "partition": entry.partition,
                "error": error,
                "attempts": attempts,
                "deliveries": entry.deliveries,
            },
            maxlen=DEAD_LETTERS_KEPT,
            approximate=True,
        )

    async def _finish(self, done: Sequence[Done]) -> None:
        """After the commit: store and send the outcomes, acknowledge the entries, in one
        script (`FINISH`). With reminders to schedule or cancel, or redelivery counts to drop,
        those go first in one MULTI with it: a reminder is never scheduled again by a
        redelivery after it fired."""
        keys, args = self._finish_arguments(done)
        if not any(item.schedule or item.cancel or item.entry.starts for item in done):
            await self._acker(keys, args)
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for item in done:
                entry = item.entry
                if item.schedule or item.cancel:
                    self._remind(pipe, entry, item.schedule, item.cancel)
                if entry.starts:
                    pipe.hdel(
                        starts_key(self.settings, self.kind, entry.partition), entry.message_id
                    )
            pipe.eval(FINISH, len(keys), *keys, *args)
            await pipe.execute()

    def _finish_arguments(self, done: Sequence[Done]) -> tuple[list[str], list[Any]]:
        """`FINISH`'s keys and arguments for the entries of `done`."""
        keys = [self._outcomes + item.entry.command_id for item in done]
        keys += [self._wanted + item.entry.command_id for item in done]
        args: list[Any] = [self.settings.actor_outcome_ttl, self.group, len(done)]
        args.append(self._answered_ttl)
        acks: dict[int, list[str]] = {}
        for item in done:
            entry = item.entry
            if item.result is None:
                args += ["", ""]
            else:
                channel = self._channels + entry.reply_to if entry.reply_to else ""
                args += [encode_result(item.result), channel]
            acks.setdefault(entry.partition, []).append(entry.message_id)
        for partition, message_ids in acks.items():
            keys.append(self._stream(partition))
            args += [len(message_ids), *message_ids]
        return keys, args

    def _remind(
        self,
        pipe: Pipeline,
        entry: Entry,
        schedule: Sequence[Sequence[Any]],
        cancel: Sequence[str],
    ) -> None:
        zset = reminders_key(self.settings, self.kind, entry.partition)
        bodies = reminder_bodies_key(self.settings, self.kind, entry.partition)
        for reminder_id in cancel:
            command_id = reminder_command_id(self.kind, entry.key, reminder_id)
            pipe.zrem(zset, command_id)
            pipe.hdel(bodies, command_id)
        for reminder_id, at, command in schedule:
            command_id = reminder_command_id(self.kind, entry.key, reminder_id)
            pipe.zadd(zset, {command_id: math.ceil(at * 1000)})  # never early
            pipe.hset(bodies, command_id, orjson.dumps([entry.key, orjson.dumps(command).decode()]))

    # --- hygiene ----------------------------------------------------------------------

    async def _trim(self) -> None:
        """Drop acknowledged entries: keep from the oldest pending (or first unread) one. Also
        counts the kind's dead letters waiting for an operator (one XLEN a tick)."""
        partitions = [p for p in self.owned if p in self.reading]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(dead_letter_key(self.settings, self.kind))
            for partition in partitions:
                pipe.xpending(self._stream(partition), self.group)
                pipe.xinfo_groups(self._stream(partition))
            waiting, *answers = await pipe.execute(raise_on_error=False)
        if not isinstance(waiting, BaseException):
            self.stats.dead_letters_waiting = int(waiting)
        if not partitions:
            self.stats.pending = self.stats.lag = 0
            return
        total_pending = total_lag = 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for index, partition in enumerate(partitions):
                pending, groups = answers[2 * index], answers[2 * index + 1]
                if isinstance(pending, BaseException) or isinstance(groups, BaseException):
                    continue  # our group is gone: the reader finds out and lets it go
                group = next((g for g in groups if as_text(g["name"]) == self.group), None)
                if group is None:
                    continue
                total_pending += int(pending["pending"])
                total_lag += int(group.get("lag") or 0)  # None when Redis cannot tell
                if pending["pending"]:
                    threshold = as_text(pending["min"])
                else:
                    ms, seq = message_order(as_text(group["last-delivered-id"]))
                    threshold = f"{ms}-{seq + 1}"
                pipe.xtrim(self._stream(partition), minid=threshold, approximate=False)
            await pipe.execute()
        self.stats.pending, self.stats.lag = total_pending, total_lag

    def _passivate(self) -> None:
        """Drop idle actors from memory; their next message reloads them."""
        horizon = time.monotonic() - self.settings.actor_idle_timeout
        for partition, cells in list(self.cells.items()):
            kept = {
                name: cell
                for name, cell in cells.items()
                if cell.task is not None or cell.mailbox or cell.idle_since >= horizon
            }
            if len(kept) < len(cells):
                # A new dict, not deletions: a dict never shrinks its table when entries are
                # deleted, so one that once held many keys would keep their slots for good.
                self.cells[partition] = kept

    def snapshot(self) -> dict[str, int]:
        stats = self.stats
        return {
            "partitions_owned": len(self.owned),
            "actors_in_memory": sum(len(cells) for cells in self.cells.values()),
            "in_flight": self._in_flight,
            "handled": stats.handled,
            "redelivered": stats.redelivered,
            "read_again": stats.read_again,
            "dead_letters": stats.dead_letters,
            "stale_commits": stats.stale_commits,
            "commits": stats.commits,
            "reminders_fired": stats.reminders_fired,
            "reminders_due": stats.reminders_due,
            "pending": stats.pending,
            "lag": stats.lag,
        }


class Replies:
    """This process's reply channel: resolves the futures of its pending asks."""

    def __init__(self, settings: Settings, redis: Redis, process_id: str) -> None:
        self.channel = reply_channel(settings, process_id)
        self.redis = redis
        self.waiting: dict[str, asyncio.Future[CommandResult]] = {}
        self._pubsub: PubSub | None = None

    async def start(self) -> None:
        """Subscribe and wait for the confirmation, so no reply can come before we listen."""
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self.channel)
        confirmation = await self._pubsub.get_message(timeout=5.0)
        if confirmation is None or confirmation["type"] != "subscribe":
            raise RuntimeError(f"no confirmation of the subscription to {self.channel}")

    async def run(self) -> None:
        """Resolve waiting asks; resubscribe after a lost connection (asks may time out then:
        their outcomes stay available by command id)."""
        while True:
            try:
                await self._listen()
            except Exception:
                log.exception("actor replies: subscription lost, subscribing again")
                await asyncio.sleep(INFRA_BACKOFF_MAX)
                with contextlib.suppress(Exception):
                    await self.close()
                with contextlib.suppress(Exception):
                    await self.start()

    async def _listen(self) -> None:
        while self._pubsub is not None:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message["type"] != "message":
                continue
            for result in decode_results(message["data"]):
                future = self.waiting.get(result.command_id)
                if future is not None and not future.done():
                    future.set_result(result)
        raise RuntimeError("not subscribed")

    async def close(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis 8.1
            self._pubsub = None


class Runtime:
    """Sends commands to actors and hosts the kinds given (none: a sender only)."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        actors: Sequence[Actor] = (),
        *,
        partitions: Mapping[str, int] | None = None,
        process_id: str | None = None,
        relay: bool = True,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.process_id = process_id or uuid.uuid4().hex[:16]
        self._partitions = dict(partitions or {})
        self.turns = asyncio.Semaphore(settings.actor_concurrency)
        # The hosts' commits and loads: a connection per batch in flight, kept between them.
        self.held = store.HeldConnections(keep=settings.actor_commits_in_flight + 1)
        # Appends made while others are on their way go together, in one script run: a burst
        # of asks (a page's requests, a peak) costs Redis one command, not one each.
        senders = max(1, settings.redis_pool_max // 2)
        self._append = DirectScript(redis, APPEND, keep=senders)
        self._appends = GroupCommit(self._append_batch, limit=APPEND_BATCH, concurrency=senders)
        self.hosts = {actor.kind: KindHost(self, actor) for actor in actors}
        self.replies = Replies(settings, redis, self.process_id)
        # Hosts relay the outbox (one at a time across processes: an advisory lock).
        self.relay = OutboxRelay(settings, redis) if actors and relay else None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    def partitions(self, kind: str) -> int:
        return self._partitions.get(kind, self.settings.actor_partitions)

    async def start(self) -> None:
        await self.replies.start()
        self._tasks.append(asyncio.create_task(self.replies.run()))
        for host in self.hosts.values():
            await host.prepare()
            self._tasks.append(asyncio.create_task(host.run()))
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run()))
        self._started = True

    async def close(self, grace: float | None = None) -> None:
        """Stop reading, finish in-flight turns within `grace` s, release leases, unsubscribe."""
        for host in self.hosts.values():
            host.stop()
        await cancel_all(self._tasks)
        self._tasks.clear()
        wait = self.settings.shutdown_timeout if grace is None else grace
        for host in self.hosts.values():
            await host.close(wait)
        await self.held.close()
        await self.replies.close()
        await self._appends.close()
        await self._append.close()
        self._started = False

    async def _send(
        self, kind: str, key_: str, command: JsonObject, command_id: str, reply_to: str
    ) -> None:
        """Append the command to its partition's stream; `Overloaded` if that one is full."""
        partition = partition_of(key_, self.partitions(kind))
        stream = stream_key(self.settings, kind, partition)
        body = orjson.dumps(command)
        if await self._appends.submit(Append(stream, command_id, key_, body, reply_to)) is None:
            raise Overloaded(kind, partition)

    async def _append_batch(self, batch: list[Append]) -> list[bytes | None]:
        """Append commands in one script run; per command its entry id, or None if refused."""
        args: list[Any] = [self.settings.actor_max_stream_length]
        for append in batch:
            args += [append.command_id, append.key, append.body, append.reply_to]
        appended: list[bytes | None] = await self._append([append.stream for append in batch], args)
        return appended

    async def tell(self, kind: str, key_: str, command: JsonObject) -> str:
        """Send a command without waiting; its id, for `outcome` later.

        Raises `Overloaded` (503, nothing sent) when the partition's stream is full."""
        command_id = uuid.uuid4().hex
        await self._send(kind, key_, command, command_id, "")
        return command_id

    async def ask(
        self,
        kind: str,
        key_: str,
        command: JsonObject,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the issue's API; AskTimeout carries the id
    ) -> Any:
        """Send a command and wait for the actor's reply.

        Raises `AskTimeout` (with the command id: the command is not lost), `CommandFailed`,
        or `Overloaded` (503, nothing sent: the partition's stream is full).
        """
        assert self._started, "start the runtime before asking"
        command_id = uuid.uuid4().hex
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self.replies.waiting[command_id] = future
        try:
            await self._send(kind, key_, command, command_id, self.process_id)
            result = await asyncio.wait_for(
                future, self.settings.actor_ask_timeout if timeout is None else timeout
            )
        except TimeoutError:
            await self._keep_outcome(command_id)
            raise AskTimeout(command_id) from None
        finally:
            self.replies.waiting.pop(command_id, None)
        if not result.ok:
            raise CommandFailed(command_id, result.error or "")
        raise_rejection(result.reply)
        return result.reply

    async def _keep_outcome(self, command_id: str) -> None:
        """After an ask timed out: keep its outcome the long TTL, whether it is stored already
        (its reply lost) or not yet (then `FINISH` finds the wanted key). One MULTI, so no
        `FINISH` falls between the two. Never raises: the timeout is the caller's news."""
        ttl = self.settings.actor_outcome_ttl
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(wanted_key(self.settings, command_id), 1, ex=ttl)
                pipe.expire(outcome_key(self.settings, command_id), ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("command %s: its outcome may not be kept: %s", command_id, exc)

    async def cancel_reminder(self, kind: str, key_: str, reminder_id: str) -> bool:
        """Cancel a reminder of actor `(kind, key_)` by its id; False if none was waiting
        (never scheduled, cancelled, or already fired: then its command is in the stream)."""
        partition = partition_of(key_, self.partitions(kind))
        command_id = reminder_command_id(kind, key_, reminder_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(reminders_key(self.settings, kind, partition), command_id)
            pipe.hdel(reminder_bodies_key(self.settings, kind, partition), command_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def outcome(self, command_id: str) -> CommandResult | None:
        """The stored outcome of a command, or None if it was not handled (yet).

        Outcomes of tells, reminders and asks that timed out are kept `DEER_ACTOR_OUTCOME_TTL`;
        an ask answered in time had its outcome already, which is kept only a little longer
        than asks wait (`answered_outcome_ttl`)."""
        raw = await self.redis.get(outcome_key(self.settings, command_id))
        return None if raw is None else decode_result(raw)

    def stats(self) -> dict[str, dict[str, int]]:
        return {kind: host.snapshot() for kind, host in self.hosts.items()}


@asynccontextmanager
async def actor_runtime(
    settings: Settings, redis: Redis, actors: Sequence[Actor] = ()
) -> AsyncIterator[Runtime]:
    """The runtime as one resource: started, yielded, drained and closed (a cleanup context)."""
    runtime = Runtime(settings, redis, actors)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()
