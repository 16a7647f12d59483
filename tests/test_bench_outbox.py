"""`bench/outbox.py` runs end to end (briefly): every event relayed once, no Redis key left
beside the events stream, neither its database nor its keys left behind. Its rates are for
`docs/PERFORMANCE.md`, not for a test."""

from __future__ import annotations

import asyncio
import re
import uuid

from tests.test_bench_actors import leftovers, run_bench

ROW = re.compile(
    r"^\| (?P<round>\d+) \| (?P<events>[\d,]+) \| [\d.]+ \| [\d,]+ \| (?P<published>[\d,]+)"
    r" \| (?P<left>\d+) \|$"
)


def test_the_outbox_bench_relays_every_event_once(servers: tuple[str, str]) -> None:
    server_url, redis_url = servers
    database = f"deer_bench_test_{uuid.uuid4().hex[:8]}"
    _, before = asyncio.run(leftovers(server_url, redis_url, database, "bench-outbox-*"))
    done = run_bench(
        "bench.outbox",
        *("--postgres", server_url, "--redis-url", redis_url, "--database", database),
        *("--events", "700", "--rounds", "2"),
    )
    rows = [match.groupdict() for line in done.stdout.splitlines() if (match := ROW.match(line))]
    assert rows == [
        {"round": str(number), "events": "700", "published": "700", "left": "0"}
        for number in (1, 2)
    ]
    found, after = asyncio.run(leftovers(server_url, redis_url, database, "bench-outbox-*"))
    assert (found, sorted(set(after) - set(before))) == (0, [])
