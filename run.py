"""Run deer: `python run.py [serve|worker|migrate|create-admin|seed-demo|check|dead-letters|
makemigrations]`.

With no configuration, the embedded PostgreSQL and Valkey start under the data folder
(`DEER_DATA_DIR`, default `./var`) and stop again when this process ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

from config.settings import Settings, SettingsError, load_settings, mask_url
from deer.embedded import EngineError, Engines
from deer.errors import DeerError
from deer.logs import setup_logging

log = logging.getLogger("deer")
T = TypeVar("T")

EXIT_CONFIG = 2
EXIT_FAILED = 1


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(coro)


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into the same clean unwinding as Ctrl-C, so the engines always stop."""

    def interrupt(signum: int, _frame: object) -> NoReturn:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


# --- commands -------------------------------------------------------------------------


def serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from deer.app import create_app
    from deer.db import migrate
    from deer.payments.registry import check_key_files

    try:
        check_key_files(settings)
    except SettingsError as exc:
        print(f"deer: invalid setting {exc}", file=sys.stderr)
        return EXIT_CONFIG
    loop = new_loop()
    asyncio.set_event_loop(loop)
    if settings.migrate_at_start:
        loop.run_until_complete(migrate(settings))
    log.info("deer listening on http://%s:%d", settings.host, settings.port)
    app = create_app(settings)
    app.on_startup.append(_settle_heap)  # after every resource opened (cleanup contexts first)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            loop=loop,
            print=None,
            access_log=None,
            shutdown_timeout=settings.shutdown_timeout,
            reuse_port=args.reuse_port,
        )
    except OSError as exc:
        if exc.errno in (98, 48):  # EADDRINUSE on Linux and macOS
            print(
                f"deer: port {settings.port} on {settings.host} is taken by another program: "
                "stop it or set DEER_PORT to a free port",
                file=sys.stderr,
            )
            return EXIT_FAILED
        raise
    finally:
        _stop_on_sigterm()  # run_app removed its handlers; keep shutdown of engines clean
    return 0


async def _settle_heap(_app: object) -> None:
    from deer.heap import settle_heap

    settle_heap()


def worker_command(settings: Settings, args: argparse.Namespace) -> int:
    """Host the entity actors without HTTP (several workers share the partitions)."""
    from actors.registry import entity_actors
    from actors.worker import run_worker
    from deer.db import migrate

    if settings.migrate_at_start:
        run_async(migrate(settings))
    from deer.shop.payment_sink import StandaloneRefunds

    kinds = entity_actors(settings, StandaloneRefunds(settings))

    def ready(_: object) -> None:
        hosted = ", ".join(actor.kind for actor in kinds) or "no kinds yet"
        log.info("worker ready: hosting %s", hosted)

    try:
        run_async(run_worker(settings, kinds, on_ready=ready))
    finally:
        _stop_on_sigterm()  # the worker's loop replaced our handlers; keep engine shutdown clean
    return 0


def migrate_command(settings: Settings, args: argparse.Namespace) -> int:
    from deer.db import migrate

    run_async(migrate(settings))
    print("migrations applied")
    return 0


async def _with_database(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    from deer.db import database, migrate

    if settings.migrate_at_start:
        await migrate(settings)
    async with database(settings):
        return await work()


def _ask(value: str | None, prompt: str, *, secret: bool = False, optional: bool = False) -> str:
    if value is not None:
        return value
    if not sys.stdin.isatty():
        if optional:
            return ""
        raise SystemExit(f"deer: {prompt} is missing: pass it as a flag (see --help)")
    if secret:
        first = getpass.getpass(f"{prompt}: ")
        if getpass.getpass(f"{prompt} again: ") != first:
            raise SystemExit("deer: the two passwords differ")
        return first
    return input(f"{prompt}{' (optional)' if optional else ''}: ").strip()


def create_admin_command(settings: Settings, args: argparse.Namespace) -> int:
    from deer.accounts.passwords import check_policy
    from deer.accounts.service import create_admin

    username = _ask(args.username, "username")
    name = _ask(args.name, "name (姓名)", optional=True) or username
    mobile = _ask(args.mobile, "mobile", optional=True) or None
    password = _ask(args.password, "password", secret=True)
    check_policy(password)
    user = run_async(
        _with_database(settings, lambda: create_admin(username, password, name, mobile))
    )
    print(f"admin {user.username!r} created (id {user.id})")
    return 0


def seed_demo_command(settings: Settings, args: argparse.Namespace) -> int:
    from deer.demo import seed_demo

    summary = run_async(_with_database(settings, lambda: seed_demo(progress=not args.quiet)))
    print("demo data ready: " + ", ".join(f"{count} {what}" for what, count in summary.items()))
    return 0


def check_command(settings: Settings, args: argparse.Namespace) -> int:
    from deer.checks import ping_backends

    width = max(len(name) for name in settings.described())
    for name, value in settings.described().items():
        print(f"{name:<{width}}  {value}")
    print()
    results = run_async(ping_backends(settings))
    for backend, (ok, detail) in results.items():
        print(f"{'ok  ' if ok else 'FAIL'} {backend:<10} {detail}")
    return 0 if all(ok for ok, _ in results.values()) else EXIT_FAILED


def dead_letters_command(settings: Settings, args: argparse.Namespace) -> int:
    """List a kind's dead letters, replay or drop them (`actors.cli`)."""
    from actors import cli
    from actors.registry import entity_actors
    from deer.cache import redis_client

    kinds = [actor.kind for actor in entity_actors(settings)]

    async def work() -> int:
        async with redis_client(settings) as redis:
            return await cli.run(settings, redis, kinds, args, print)

    return run_async(_with_database(settings, work))


def makemigrations_command(settings: Settings, args: argparse.Namespace) -> int:
    """For developers: write a migration for model changes (tortoise's autodetector)."""
    from deer.db import make_migrations

    run_async(make_migrations(settings, args.name))
    return 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "serve": serve,
    "worker": worker_command,
    "migrate": migrate_command,
    "create-admin": create_admin_command,
    "seed-demo": seed_demo_command,
    "check": check_command,
    "dead-letters": dead_letters_command,
    "makemigrations": makemigrations_command,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run.py", description="Run the deer service.")
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve", help="run the HTTP service (the default)")
    serve_parser.add_argument(
        "--reuse-port", action="store_true", help="let several processes share the port"
    )
    sub.add_parser("worker", help="run the entity actors without HTTP")
    sub.add_parser("migrate", help="apply database migrations")
    admin = sub.add_parser(
        "create-admin", help="create the first admin (prompts for what is missing)"
    )
    admin.add_argument("--username")
    admin.add_argument("--name")
    admin.add_argument("--mobile")
    admin.add_argument("--password", help="prefer the prompt: arguments show up in `ps`")
    seed = sub.add_parser("seed-demo", help="load a realistic Chinese demo data set")
    seed.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("check", help="print the configuration (secrets masked) and ping backends")
    from actors.cli import add_arguments

    add_arguments(
        sub.add_parser("dead-letters", help="list a kind's dead letters, replay or drop them")
    )
    make = sub.add_parser("makemigrations", help="(developers) write a migration for model changes")
    make.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or [])])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"deer: invalid setting {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.json_logs)
    _stop_on_sigterm()
    engines = Engines(settings)
    try:
        effective = engines.start(exclusive=args.command == "serve")
        if engines.owner:
            log.info(
                "embedded engines up in %s: %s",
                engines.data_dir,
                ", ".join(
                    mask_url(url.get_secret_value())
                    for url in (effective.database_url, effective.redis_url)
                    if url is not None
                ),
            )
        return COMMANDS[args.command](effective, args)
    except EngineError as exc:
        print(f"deer: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except DeerError as exc:
        print(f"deer: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            engines.close()


if __name__ == "__main__":
    sys.exit(main())
