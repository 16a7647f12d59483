"""`run.py migrate` on external servers: nothing embedded starts, concurrent runs are safe."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from config.settings import Settings

RUN = Path(__file__).resolve().parent.parent / "run.py"
TABLES = {"category", "department", "member", "product", "role", "staff_user", "user_role"}


def other_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(other_database(url, "postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


@pytest.fixture
def empty_database(base_settings: Settings) -> Iterator[str]:
    assert base_settings.database_url is not None
    server = base_settings.database_url.get_secret_value()
    name = f"deer_migrate_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin(server, f'CREATE DATABASE "{name}"'))
    yield other_database(server, name)
    asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_concurrent_migrate_commands(
    empty_database: str, base_settings: Settings, tmp_path: Path
) -> None:
    assert base_settings.redis_url is not None
    env = {
        "DEER_DATABASE_URL": empty_database,
        "DEER_REDIS_URL": base_settings.redis_url.get_secret_value(),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, str(RUN), "migrate"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert all("migrations applied" in output for output in outputs)
    assert asyncio.run(tables(empty_database)) >= TABLES
    assert not (tmp_path / "var").exists()  # the URLs are set: nothing embedded started
    again = subprocess.run(
        [sys.executable, str(RUN), "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr


def test_worker_command_starts_and_stops_cleanly(base_settings: Settings, tmp_path: Path) -> None:
    assert base_settings.database_url is not None and base_settings.redis_url is not None
    env = {
        "DEER_DATABASE_URL": base_settings.database_url.get_secret_value(),
        "DEER_REDIS_URL": base_settings.redis_url.get_secret_value(),
        "DEER_REDIS_NAMESPACE": f"worker-{uuid.uuid4().hex[:8]}",
    }
    worker = subprocess.Popen(
        [sys.executable, str(RUN), "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert worker.stdout is not None
    lines = []
    for line in worker.stdout:  # the log writer prints "worker ready" once it hosts
        lines.append(line)
        if "worker ready" in line:
            break
    worker.send_signal(signal.SIGTERM)
    rest, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, "".join(lines) + rest
    assert "Traceback" not in "".join(lines) + rest
    assert not (tmp_path / "var").exists()
