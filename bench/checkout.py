"""Checkout benchmark: concurrent buyers placing and paying orders over real HTTP.

    .venv/bin/python -m bench.checkout                       # 200 buyers, 15 s
    .venv/bin/python -m bench.checkout --buyers 50 --duration 5 --no-pay

One run: a fresh `deer_bench_checkout` database (created, migrated by the server, dropped at
the end) and Redis database 15; `run.py serve` as one process on 127.0.0.1 with the dev
payment provider; `--products` products with ample stock; `--buyers` members signed in over
HTTP. Then every buyer, in a closed loop for `--duration` seconds: `POST /api/orders` (one
line, a random product, a fresh Idempotency-Key), and unless `--no-pay`, `POST
/api/orders/{id}/pay` (provider dev) and the dev provider's signed callback through
`POST /api/payments/dev/simulate`. At the end it checks that stock and orders reconcile:
for every product, stock left + quantities ordered = stock at the start; every order that
answered 201 exists; every paid order's `paid` equals its `payable`.

Load goes to 127.0.0.1 only and stops by itself after `--duration`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from bench.http import (
    DEFAULT_REDIS_URL,
    HOST,
    ROOT,
    BenchError,
    bench_database,
    deer_env,
    free_port,
    machine,
    percentile,
    run_async,
    serving,
)

DATABASE: Final = "deer_bench_checkout"
PASSWORD: Final = "bench-Passw0rd!"
START_STOCK: Final = 10_000_000
ADDRESS: Final = {
    "receiver": "压测",
    "mobile": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路 100 号",
}


@dataclass
class Timings:
    created: list[float] = field(default_factory=list)
    paid: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    order_ids: list[int] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def seed(database_url: str, products: int, buyers: int) -> tuple[list[int], list[str]]:
    """Products on sale and members with one password, straight into the database."""
    import asyncpg
    from argon2 import PasswordHasher

    connection = await asyncpg.connect(database_url)
    try:
        category = await connection.fetchval(
            "INSERT INTO category (name, sort, enabled, created_at) VALUES ('压测', 0, true,"
            " now()) RETURNING id"
        )
        product_ids = [
            await connection.fetchval(
                "INSERT INTO product (code, name, category_id, description, images, price, cost,"
                " stock, sales, channels, status, created_at, updated_at) VALUES ($1, $2, $3, '',"
                " '[]', $4, $5, $6, 0, '[\"web\", \"mini_program\"]', 'online', now(), now())"
                " RETURNING id",
                f"BENCH{index:04d}",
                f"压测商品 {index}",
                category,
                1990 + index,
                1000,
                START_STOCK,
            )
            for index in range(products)
        ]
        # Cheap argon2 parameters (the hash carries them): signing 200 buyers in is set-up,
        # not what is measured, and argon2 at the default cost takes seconds of CPU per 10.
        password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
        mobiles = [f"188{index:08d}" for index in range(buyers)]
        await connection.executemany(
            "INSERT INTO member (mobile, name, password_hash, condition, level, points,"
            " total_spent, paid_orders, tags, session_generation, created_at, updated_at)"
            " VALUES ($1, $2, $3, 'potential', 0, 0, 0, 0, '[]', 0, now(), now())",
            [(mobile, f"买家{mobile[-4:]}", password_hash) for mobile in mobiles],
        )
    finally:
        await connection.close()
    return product_ids, mobiles


async def sign_in(session: aiohttp.ClientSession, base: str, mobiles: list[str]) -> list[str]:
    gate = asyncio.Semaphore(8)

    async def one(mobile: str) -> str:
        async with gate:
            body = {"account": mobile, "password": PASSWORD, "kind": "member"}
            async with session.post(f"{base}/api/auth/login", json=body) as response:
                if response.status != 200:
                    raise BenchError(
                        f"sign-in of {mobile}: {response.status} {await response.text()}"
                    )
                token: str = (await response.json())["access_token"]
                return token

    return await asyncio.gather(*(one(mobile) for mobile in mobiles))


async def buyer(
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    products: list[int],
    until: float,
    pay: bool,
    timings: Timings,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    chooser = random.Random(token)
    while time.monotonic() < until:
        body = {
            "lines": [{"product_id": chooser.choice(products), "quantity": 1}],
            "address": ADDRESS,
        }
        began = time.perf_counter()
        async with session.post(
            f"{base}/api/orders",
            json=body,
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        ) as response:
            answer = await response.json()
        if response.status != 201:
            timings.error(f"create {response.status} {answer.get('error', {}).get('code')}")
            continue
        timings.created.append(time.perf_counter() - began)
        timings.order_ids.append(answer["id"])
        if not pay:
            continue
        began = time.perf_counter()
        async with session.post(
            f"{base}/api/orders/{answer['id']}/pay", json={"provider": "dev"}, headers=headers
        ) as response:
            if response.status != 200:
                timings.error(f"pay {response.status}")
                continue
        notice = {"event": "payment", "out_trade_no": answer["sn"], "amount": answer["payable"]}
        async with session.post(f"{base}/api/payments/dev/simulate", json=notice) as response:
            if response.status != 200:
                timings.error(f"notify {response.status}")
                continue
        timings.paid.append(time.perf_counter() - began)


async def reconcile(database_url: str, timings: Timings, products: list[int]) -> list[str]:
    """What does not add up (empty: everything does)."""
    import asyncpg

    connection = await asyncpg.connect(database_url)
    problems: list[str] = []
    try:
        ordered = {
            row["product_id"]: row["quantity"]
            for row in await connection.fetch(
                "SELECT (line->>'product_id')::bigint AS product_id,"
                " sum((line->>'quantity')::bigint) AS quantity FROM actor_state,"
                " jsonb_array_elements(state->'lines') AS line WHERE kind = 'order'"
                " AND state->>'status' IS NOT NULL GROUP BY 1"
            )
        }
        for row in await connection.fetch(
            "SELECT id, stock FROM product WHERE id = ANY($1::bigint[])", products
        ):
            if row["stock"] + ordered.get(row["id"], 0) != START_STOCK:
                problems.append(
                    f"product {row['id']}: stock {row['stock']} + ordered"
                    f" {ordered.get(row['id'], 0)} != {START_STOCK}"
                )
        found = await connection.fetchval(
            "SELECT count(*) FROM actor_state WHERE kind = 'order' AND key = ANY($1::text[])"
            " AND state->>'status' IS NOT NULL",
            [str(order_id) for order_id in timings.order_ids],
        )
        if found != len(timings.order_ids):
            problems.append(f"{len(timings.order_ids)} orders answered 201, {found} exist")
        wrong = await connection.fetchval(
            "SELECT count(*) FROM actor_state WHERE kind = 'order' AND state->>'status' = 'paid'"
            " AND (state->>'paid')::bigint <> (state->>'payable')::bigint"
        )
        if wrong:
            problems.append(f"{wrong} paid orders with paid != payable")
    finally:
        await connection.close()
    return problems


def summary(values: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": len(values),
        "per_second": len(values) / seconds if seconds else 0.0,
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
    }


async def load(args: argparse.Namespace, bases: list[str], database_url: str) -> dict[str, Any]:
    """Every buyer talks to one server, the buyers spread evenly over the servers."""
    products, mobiles = await seed(database_url, args.products, args.buyers)
    connector = aiohttp.TCPConnector(limit=args.buyers + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        tokens = await sign_in(session, bases[0], mobiles)
        served = [(bases[index % len(bases)], token) for index, token in enumerate(tokens)]
        pay = not args.no_pay
        warm = Timings()
        warm_until = time.monotonic() + args.warmup
        await asyncio.gather(
            *(buyer(session, b, t, products, warm_until, pay, warm) for b, t in served)
        )
        timings = Timings()
        began = time.monotonic()
        until = began + args.duration
        await asyncio.gather(
            *(buyer(session, b, t, products, until, pay, timings) for b, t in served)
        )
        seconds = time.monotonic() - began
    timings.order_ids += warm.order_ids
    problems = await reconcile(database_url, timings, products)
    return {
        "created": summary(timings.created, seconds),
        "paid": summary(timings.paid, seconds),
        "errors": timings.errors,
        "reconcile": problems or "ok",
        "seconds": seconds,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    namespace = f"bench-checkout-{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="deer-checkout-") as folder,
        bench_database(args.database_url, DATABASE) as database_url,
        contextlib.ExitStack() as servers,
    ):
        work = Path(folder)
        bases = []
        for index in range(args.servers):  # one after the other: the first migrates
            port = free_port()
            env = deer_env(port, database_url, args.redis_url, work / "data", "WARNING") | {
                "DEER_ENV": "development",
                "DEER_REDIS_NAMESPACE": namespace,
                "DEER_DB_POOL_MAX": str(args.pool),
            }
            command = [sys.executable, str(ROOT / "run.py"), "serve"]
            log = work / f"serve-{index}.log"
            servers.enter_context(serving(command, env, port, "/readyz", log))
            bases.append(f"http://{HOST}:{port}")
        result = run_async(load(args, bases, database_url))
    result["machine"] = machine()
    result["buyers"] = args.buyers
    result["servers"] = args.servers
    result["products"] = args.products
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.checkout", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--buyers", type=int, default=200, help="concurrent buyers (members)")
    parser.add_argument("--products", type=int, default=20, help="products on sale")
    parser.add_argument("--servers", type=int, default=1, help="`run.py serve` processes")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--no-pay", action="store_true", help="only place orders")
    parser.add_argument("--pool", type=int, default=20, help="DEER_DB_POOL_MAX of the server")
    parser.add_argument("--database-url", default=None, help="use this database as is")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = run(args)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.json is not None:
        args.json.write_text(text, encoding="utf-8")
    return 0 if result["reconcile"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
