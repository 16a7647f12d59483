"""At the HTTP edge an ask that times out is a `504` with the command id, and the command is
still applied once (`actor_timeout`, never a lost command); a command refused because its
partition's stream is full is a `503` (`actors_overloaded`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from actors.base import CommandResult
from actors.runtime import Runtime
from actors.testing.counter import Counter
from config.settings import Settings
from deer import keys
from deer.app import create_app
from deer.web.api import Api
from tests.actors_support import eventually

probe = Api(tags=["probe"], public=True)


@probe.post("/probe/actor-ask", summary="probe")
async def ask_slow_actor(request: web.Request) -> None:
    runtime = request.app[keys.ACTORS]
    await runtime.ask("counter", "slow", {"id": "slow", "sleep": 0.5}, timeout=0.1)


@probe.post("/probe/actor-tell", summary="probe")
async def tell_actor(request: web.Request) -> None:
    await request.app[keys.ACTORS].tell("counter", "full", {"id": "one"})


async def test_a_full_partition_is_a_503(aiohttp_client: Any, settings: Settings) -> None:
    app = create_app(settings.with_values(actor_max_stream_length=1))  # nobody hosts counters
    probe.register(app)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    assert (await client.post("/probe/actor-tell")).status == 200
    response = await client.post("/probe/actor-tell")
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "actors_overloaded"


async def test_ask_timeout_is_a_504_with_the_command_id(
    aiohttp_client: Any, settings: Settings
) -> None:
    app = create_app(settings)
    probe.register(app)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    # The app's runtime only sends; this one hosts the slow counter (the app's database).
    host = Runtime(settings, client.app[keys.REDIS], [Counter()], relay=False)
    await host.start()
    try:
        response = await client.post("/probe/actor-ask")
        assert response.status == 504
        error = (await response.json())["error"]
        command_id = error["details"]["command_id"]
        assert error == {
            "code": "actor_timeout",
            "message": "the actor did not answer in time; the command will still be applied once",
            "details": {"command_id": command_id},
        }
        assert len(command_id) == 32

        async def applied() -> bool:
            return await host.outcome(command_id) is not None

        await eventually(applied, 10, "the timed-out command applied")
        assert await host.outcome(command_id) == CommandResult(command_id, True, 1, None)
    finally:
        await host.close()
