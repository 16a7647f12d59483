"""`python run.py dead-letters`: look at a kind's dead letters, replay or drop them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Final

import orjson
from redis.asyncio import Redis

from actors import dead_letters
from config.settings import Settings
from deer.errors import DeerError, ValidationFailed

ERROR_WIDTH: Final = 70  # characters of an error shown in the table
Print = Callable[[str], None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", help="an actor kind (none: a count per kind)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--replay", nargs="+", metavar="ID", help="send these again, in order")
    action.add_argument(
        "--replay-all", action="store_true", help="send every dead letter of the kind again"
    )
    action.add_argument("--drop", nargs="+", metavar="ID", help="delete these for good")
    parser.add_argument("--after", default="", metavar="ID", help="list from after this id")
    parser.add_argument("--limit", type=int, default=50, help="dead letters listed (default 50)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


async def run(
    settings: Settings, redis: Redis, kinds: Sequence[str], args: argparse.Namespace, say: Print
) -> int:
    """The command; its exit code (1: something asked for was not done)."""
    if args.kind is None:
        if args.replay or args.replay_all or args.drop:
            raise ValidationFailed(
                "name the kind whose dead letters to change", code="kind_missing"
            )
        for kind in kinds:
            count = await dead_letters.waiting(settings, redis, kind)
            say(f"{kind}: {count} dead letter{'' if count == 1 else 's'}")
        return 0
    if args.kind not in kinds:
        raise ValidationFailed(
            f"no actor kind {args.kind!r} here (kinds: {', '.join(kinds)})", code="unknown_kind"
        )
    if args.drop:
        dropped = await dead_letters.drop(settings, redis, args.kind, args.drop)
        say(f"dropped {dropped} of {len(args.drop)}")
        return 0 if dropped == len(args.drop) else 1
    if args.replay or args.replay_all:
        return await _replay(settings, redis, args, say)
    letters = await dead_letters.dead_letters(
        settings, redis, args.kind, after=args.after, limit=args.limit
    )
    for letter in letters:
        say(orjson.dumps(letter.as_json()).decode() if args.json else _line(letter))
    if not args.json:
        total = await dead_letters.waiting(settings, redis, args.kind)
        more = f"; next page: --after {letters[-1].id}" if len(letters) == args.limit else ""
        say(f"{len(letters)} shown of {total}{more}")
    return 0


def _line(letter: dead_letters.DeadLetter) -> str:
    when = letter.at.strftime("%Y-%m-%d %H:%M:%S")
    error = (
        letter.error if len(letter.error) <= ERROR_WIDTH else letter.error[: ERROR_WIDTH - 1] + "…"
    )
    if not letter.replayable:
        return f"{letter.id}  {when}  (no command: {orjson.dumps(letter.fields).decode()})  {error}"
    tries = f"{letter.attempts} attempts" if letter.attempts else f"{letter.deliveries} deliveries"
    body = orjson.dumps(letter.body).decode()
    command = f"key {letter.key}  command {letter.command_id}  {tries}  {body}"
    return f"{letter.id}  {when}  {command}  {error}"


async def _replay(settings: Settings, redis: Redis, args: argparse.Namespace, say: Print) -> int:
    if args.replay:
        ids = list(args.replay)
    else:
        ids, after = [], ""
        while page := await dead_letters.dead_letters(
            settings, redis, args.kind, after=after, limit=dead_letters.LIST_LIMIT
        ):
            ids += [letter.id for letter in page if letter.replayable]
            after = page[-1].id
    replayed = 0
    for letter_id in ids:
        try:
            done = await dead_letters.replay(settings, redis, args.kind, letter_id)
        except DeerError as exc:
            say(f"{letter_id}: not replayed: {exc.message} ({exc.code})")
            if exc.code == "actors_overloaded":
                say("stopped: the partition's stream is full; replay the rest later")
                break
            continue
        replayed += 1
        if done.status == "sent":
            say(f"{letter_id}: sent again as {done.message_id} (command {done.command_id})")
        else:
            say(f"{letter_id}: a duplicate of command {done.command_id}, replayed already: dropped")
    say(f"replayed {replayed} of {len(ids)}")
    return 0 if replayed == len(ids) else 1
