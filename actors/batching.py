"""Group commit: work submitted while a batch is being flushed goes together in the next one
(the runtime's commits, and its loads of actors not in memory).

A lone submission is flushed at once (alone, after one turn of the event loop), so a light
load pays no added latency; under load the batches grow by themselves to what arrived during
one flush, which is where round trips are saved. Up to `concurrency` batches are flushed at
the same time: a submission that finds them all in flight waits for the first to finish; one
that finds room starts a batch at once instead of waiting behind one (for a commit: its WAL
flush).
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
    """Flushes submitted items in batches of at most `limit`, up to `concurrency` batches at
    a time.

    `flush(items)` answers per item, in order, its result or the exception to raise in its
    submitter; an exception out of `flush` itself fails the whole batch. A submitter that was
    cancelled before its batch was taken is left out of it.
    """

    def __init__(self, flush: Flush[Item, Result], *, limit: int, concurrency: int = 1) -> None:
        self._flush = flush
        self._limit = limit
        self._concurrency = concurrency
        self._queue: deque[tuple[Item, asyncio.Future[Result]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        # The flusher started and not yet running: the submissions made meanwhile are its
        # batch, so they start no other (a burst of N would otherwise make N tasks, N - 1 of
        # them finding nothing to flush).
        self._starting: asyncio.Task[None] | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []

    @property
    def waiting(self) -> int:
        """Items submitted and not yet taken into a batch."""
        return len(self._queue)

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        starting = self._starting
        if (starting is None or starting.done()) and len(self._tasks) < self._concurrency:
            task = self._starting = asyncio.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)  # also when cancelled before it ran
        return await future

    async def idle(self, within: float) -> None:
        """Return once no batch is being flushed, or after `within` seconds: a producer that
        waits for it before making more work hands over fewer, bigger batches, and the bound
        keeps it from waiting out a long backlog."""
        if not self._tasks:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._idle_waiters.append(waiter)
        timer = loop.call_later(within, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()

    async def close(self) -> None:
        """Stop flushing; items not flushed yet fail with `CancelledError` in their submitters."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail(list(self._queue))
        self._queue.clear()

    async def _run(self) -> None:
        self._starting = None  # from now on a submission may start another flusher
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
            # At once, not in the done callback: that runs a turn of the loop later, and a
            # submitter woken by this batch could find no room for a flusher and none coming.
            current = asyncio.current_task()
            if current is not None:
                self._tasks.discard(current)
            if not self._tasks:
                waiters, self._idle_waiters = self._idle_waiters, []
                for waiter in waiters:
                    _resolve(waiter)

    @staticmethod
    def _fail(batch: Sequence[tuple[object, asyncio.Future[Result]]]) -> None:
        for _, future in batch:
            if not future.done():
                future.cancel()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
