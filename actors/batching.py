"""Group commit: work submitted while a batch is being flushed goes together in the next one
(the runtime's commits, and its loads of actors not in memory).

A lone submission is flushed at once (alone, after one turn of the event loop), so a light
load pays no added latency; under load the batches grow by themselves to what arrived during
one flush, which is where round trips are saved.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

Flush = Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]]


class GroupCommit(Generic[Item, Result]):
    """Flushes submitted items in batches of at most `limit`, one batch at a time.

    `flush(items)` answers per item, in order, its result or the exception to raise in its
    submitter; an exception out of `flush` itself fails the whole batch. A submitter that was
    cancelled before its batch was taken is left out of it.
    """

    def __init__(self, flush: Flush[Item, Result], *, limit: int) -> None:
        self._flush = flush
        self._limit = limit
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Items submitted and not yet taken into a batch."""
        return len(self._queue)

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return await future

    async def close(self) -> None:
        """Stop flushing; items not flushed yet fail with `CancelledError` in their submitters."""
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail(list(self._queue))
        self._queue.clear()

    async def _run(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._queue:
                batch = []
                while self._queue and len(batch) < self._limit:
                    item, future = self._queue.popleft()
                    if not future.done():
                        batch.append((item, future))
                if not batch:
                    continue
                try:
                    results: Sequence[Result | BaseException] = await self._flush(
                        [item for item, _ in batch]
                    )
                except Exception as exc:
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                batch = []
        except BaseException:
            self._fail(batch)
            raise
        finally:
            self._task = None

    @staticmethod
    def _fail(batch: Sequence[tuple[object, asyncio.Future[Result]]]) -> None:
        for _, future in batch:
            if not future.done():
                future.cancel()
