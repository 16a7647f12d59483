"""The admin endpoints of the actors' dead letters: listed page by page, replayed once however
many admins press at the same time, dropped, audited; bad input and callers without the right
change nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from actors.models import ActorState
from actors.runtime import dead_letter_key
from deer import keys
from deer.accounts.models import AuditLog
from tests.actors_support import eventually
from tests.auth_helpers import (
    call,
    error_code,
    root_fixture,  # noqa: F401 - the `root` fixture
    staff_token,
)

PATH = "/api/admin/actors/cart/dead-letters"
COMMAND = "c0ffee" + "0" * 26


async def letters(client: TestClient[Any, Any]) -> tuple[Redis, str, str, str]:
    """A cart that committed up to `5-0`; dead letters of its command `4-0` (a `clear`), of an
    entry that was no command, and of a delivery not settled yet (in 2286); their ids."""
    settings, redis = client.app[keys.SETTINGS], client.app[keys.REDIS]
    await ActorState.create(
        kind="cart", key="777", state={"lines": [], "orders": []}, last_message_id="5-0"
    )
    stream = dead_letter_key(settings, "cart")
    common = {"key": "777", "partition": "3", "attempts": "5", "deliveries": "1"}
    settled = await redis.xadd(
        stream,
        {"id": COMMAND, "body": '{"type": "clear"}', "message_id": "4-0", "error": "KeyError: 'x'"}
        | common,
    )
    junk = await redis.xadd(
        stream,
        {
            "message_id": "4-1",
            "partition": "3",
            "error": "unreadable entry: KeyError: 'id'",
            "fields": '{"junk": "x"}',
        },
    )
    unsettled = await redis.xadd(
        stream,
        {"id": "f" * 32, "body": '{"type": "clear"}', "message_id": "9999999999999-0", "error": "E"}
        | common,
    )
    return redis, *(entry.decode() for entry in (settled, junk, unsettled))


async def test_list_replay_and_drop(client: TestClient[Any, Any], root: str) -> None:
    _, settled, junk, unsettled = await letters(client)
    status, page = await call(client, "GET", PATH, root, params={"limit": 2})
    assert status == 200, page
    assert (page["total"], page["next_after"]) == (3, junk)
    first, second = page["items"]
    assert first["replayable"] and not second["replayable"]
    assert (first["id"], first["command_id"], first["key"]) == (settled, COMMAND, "777")
    assert (first["body"], first["error"], first["attempts"]) == (
        {"type": "clear"},
        "KeyError: 'x'",
        5,
    )
    assert second["fields"] == {"junk": "x"} and second["command_id"] == ""
    status, rest = await call(client, "GET", PATH, root, params={"after": junk})
    assert [item["id"] for item in rest["items"]] == [unsettled] and rest["next_after"] is None

    # Five admins press "replay" at once: the command is sent once.
    answers = await asyncio.gather(
        *(call(client, "POST", f"{PATH}/{settled}/replay", root) for _ in range(5))
    )
    assert sorted(status for status, _ in answers) == [200, 404, 404, 404, 404]
    replayed = next(body for status, body in answers if status == 200)
    assert (replayed["id"], replayed["command_id"], replayed["status"]) == (
        settled,
        COMMAND,
        "sent",
    )
    assert {error_code(body) for status, body in answers if status == 404} == {
        "dead_letter_not_found"
    }
    runtime = client.app[keys.ACTORS]

    async def handled() -> bool:
        return await runtime.outcome(COMMAND) is not None

    await eventually(handled, 10, "the replayed command handled by the cart")
    outcome = await runtime.outcome(COMMAND)
    assert outcome is not None and (outcome.ok, outcome.reply) == (True, [])

    status, body = await call(client, "POST", f"{PATH}/{junk}/replay", root)
    assert (status, error_code(body)) == (409, "dead_letter_not_replayable")
    status, body = await call(client, "POST", f"{PATH}/{unsettled}/replay", root)
    assert (status, error_code(body)) == (409, "dead_letter_in_flight")
    assert (await call(client, "DELETE", f"{PATH}/{junk}", root))[0] == 204
    assert (await call(client, "DELETE", f"{PATH}/{junk}", root))[0] == 404
    status, page = await call(client, "GET", PATH, root)
    assert [item["id"] for item in page["items"]] == [unsettled] and page["total"] == 1

    audit = await AuditLog.filter(target_type="dead_letter").order_by("id").values()
    assert [(row["action"], row["target_id"]) for row in audit] == [
        ("dead_letter.replay", f"cart/{settled}"),
        ("dead_letter.drop", f"cart/{junk}"),
    ]
    assert audit[0]["details"]["command_id"] == COMMAND and audit[0]["actor_name"]


async def test_bad_input_changes_nothing(client: TestClient[Any, Any], root: str) -> None:
    redis, *_ = await letters(client)
    for params in ({"limit": 0}, {"limit": 101}, {"after": "yesterday"}, {"sort": "new"}):
        status, body = await call(client, "GET", PATH, root, params=params)
        assert (status, error_code(body)) == (422, "validation_error"), params
    status, body = await call(client, "GET", "/api/admin/actors/nope/dead-letters", root)
    assert (status, error_code(body)) == (404, "not_found")
    assert "no actor kind 'nope'" in body["error"]["message"]
    for method, path in (("POST", "/yesterday/replay"), ("DELETE", "/yesterday")):
        status, body = await call(client, method, PATH + path, root)
        assert (status, error_code(body)) == (422, "invalid_dead_letter_id")
    for method, path in (("POST", "/1-0/replay"), ("DELETE", "/1-0")):
        status, body = await call(client, method, PATH + path, root)
        assert (status, error_code(body)) == (404, "dead_letter_not_found")
    settings = client.app[keys.SETTINGS]
    assert await redis.xlen(dead_letter_key(settings, "cart")) == 3
    assert not await AuditLog.filter(target_type="dead_letter").exists()


async def test_only_admins(client: TestClient[Any, Any]) -> None:
    redis, settled, _, _ = await letters(client)
    for role in ("sales_manager", "ops"):
        token = await staff_token(client, f"{role}_user", [role])
        for method, path in (
            ("GET", PATH),
            ("POST", f"{PATH}/{settled}/replay"),
            ("DELETE", f"{PATH}/{settled}"),
        ):
            status, body = await call(client, method, path, token)
            assert (status, error_code(body)) == (403, "forbidden"), (role, method)
        assert (await call(client, "GET", PATH))[0] == 401
    settings = client.app[keys.SETTINGS]
    assert await redis.xlen(dead_letter_key(settings, "cart")) == 3
