"""A pool of negotiated associations to one peer, reused across requests.

Associations are opened on demand up to ``size``, handed to one request at a time (or to as many
as the peer's asynchronous operations window allows), released with A-RELEASE after
``idle_timeout`` seconds unused or ``max_operations`` operations, and dropped when broken. A request
waits at most ``wait_timeout`` seconds for a free association.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .association import Association, associate
from .errors import AssociationAborted, DicomError

log = logging.getLogger("harmony_dimse.pool")

T = TypeVar("T")


class PoolTimeout(DicomError):
    """No association became free before the deadline."""

    def __init__(self, peer: str, waited: float, size: int) -> None:
        super().__init__(
            f"no free association to {peer} within {waited:g} s: all {size} pooled associations"
            " are busy (raise pool_size if the PACS serves more associations at once)"
        )
        self.waited = waited
        self.size = size


@dataclass(eq=False)
class _Entry:
    assoc: Association
    users: int = 0
    operations: int = 0
    last_used: float = 0.0


class AssociationPool:
    """Reusable associations to one peer, opened with ``associate(host, port, **kwargs)``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        size: int = 2,
        idle_timeout: float = 20.0,
        max_operations: int = 1000,
        wait_timeout: float = 10.0,
        **associate_kwargs: Any,
    ) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.host = host
        self.port = port
        self.size = size
        self.idle_timeout = idle_timeout
        self.max_operations = max_operations
        self.wait_timeout = wait_timeout
        self._kwargs = associate_kwargs
        self._entries: list[_Entry] = []
        self._opening = 0
        self._waiters: deque[asyncio.Future[object]] = deque()
        self._reaper: asyncio.TimerHandle | None = None
        self._closed = False
        self._background: set[asyncio.Future[None]] = set()
        self.opened = 0  # associations negotiated so far, for tests and stats

    @property
    def peer(self) -> str:
        return f"{self._kwargs.get('called_aet', '?')}@{self.host}:{self.port}"

    def __repr__(self) -> str:
        busy = sum(1 for e in self._entries if e.users)
        return f"<AssociationPool {self.peer} {len(self._entries)} open, {busy} busy>"

    # ------------------------------------------------------------------ handing out

    def _free_entry(self) -> _Entry | None:
        for entry in self._entries:
            assoc = entry.assoc
            if not assoc.is_open:
                continue
            if entry.users < assoc.max_operations_invoked:
                return entry
        return None

    def _drop_dead(self) -> None:
        self._entries = [e for e in self._entries if e.assoc.is_open or e.users]

    def _wake(self) -> None:
        """Let one waiting request look again (an association was returned or a slot freed)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _get(self) -> _Entry:
        # Single-threaded asyncio: the bookkeeping needs no lock, only waiting needs a future.
        # (asyncio.get_running_loop() costs a getpid() system call: not on the fast path.)
        deadline: float | None = None
        while True:
            if self._closed:
                raise AssociationAborted(0, 0, "the association pool is closed", False)
            entry = self._free_entry()
            if entry is not None:
                entry.users += 1
                self._wake_if_room(entry)
                return entry
            self._drop_dead()
            if len(self._entries) + self._opening < self.size:
                break
            if deadline is None:
                deadline = time.monotonic() + self.wait_timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PoolTimeout(self.peer, self.wait_timeout, self.size)
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[object] = loop.create_future()
            self._waiters.append(waiter)
            expiry = loop.call_later(remaining, _expire_waiter, waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # we were woken but leave: pass the turn on
                raise
            finally:
                expiry.cancel()
            if waiter.result() is _EXPIRED:
                raise PoolTimeout(self.peer, self.wait_timeout, self.size)
        self._opening += 1
        try:
            assoc = await associate(self.host, self.port, **self._kwargs)
        except BaseException:
            self._opening -= 1
            self._wake()
            raise
        self._opening -= 1
        self.opened += 1
        entry = _Entry(assoc, users=1)
        self._entries.append(entry)
        self._wake_if_room(entry)
        return entry

    def _wake_if_room(self, entry: _Entry) -> None:
        # a peer granting an asynchronous operations window takes several requests at once
        if entry.users < entry.assoc.max_operations_invoked:
            self._wake()

    def _put(self, entry: _Entry, broken: bool) -> None:
        entry.users -= 1
        entry.operations += 1
        entry.last_used = time.monotonic()
        if broken and entry.assoc.is_open:
            entry.assoc.abort()
        retire = not entry.assoc.is_open or entry.operations >= self.max_operations or self._closed
        if retire and entry.users == 0 and entry in self._entries:
            self._entries.remove(entry)
            self._release_later(entry.assoc)
        self._wake()
        self._schedule_reaper()

    def _release_later(self, assoc: Association) -> None:
        if assoc.is_open:
            task = asyncio.ensure_future(assoc.release())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def acquire(self) -> Lease:
        """``async with pool.acquire() as assoc:`` an association for the duration of the
        block; a broken one is never reused."""
        return Lease(self)

    async def run(self, operation: Callable[[Association], Awaitable[T]]) -> T:
        """Run ``operation`` on a pooled association; retried once on a fresh association when
        the pooled one turned out to be closed before anything was sent."""
        for attempt in (1, 2):
            async with self.acquire() as assoc:
                sent = assoc.messages_sent
                try:
                    return await operation(assoc)
                except AssociationAborted:
                    if attempt == 2 or assoc.messages_sent != sent:
                        raise
                    log.info("%r: pooled association was gone before use; retrying", self)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ idle release

    def _schedule_reaper(self) -> None:
        if self._reaper is None and self._entries and not self._closed:
            loop = asyncio.get_running_loop()
            self._reaper = loop.call_later(max(self.idle_timeout / 4, 0.05), self._reap)

    def _reap(self) -> None:
        self._reaper = None
        now = time.monotonic()
        for entry in list(self._entries):
            if entry.users == 0 and now - entry.last_used >= self.idle_timeout:
                self._entries.remove(entry)
                self._release_later(entry.assoc)
        self._drop_dead()
        self._schedule_reaper()

    async def close(self) -> None:
        """Release every idle association (A-RELEASE); busy ones are released when handed back."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        idle = [e for e in self._entries if e.users == 0]
        for entry in idle:
            self._entries.remove(entry)
        await asyncio.gather(
            *(e.assoc.release() for e in idle if e.assoc.is_open), *self._background
        )
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


_EXPIRED = object()


def _expire_waiter(waiter: asyncio.Future[object]) -> None:
    if not waiter.done():
        waiter.set_result(_EXPIRED)


class Lease:
    """One use of a pooled association (an async context manager, light on the hot path)."""

    __slots__ = ("_entry", "_pool")

    def __init__(self, pool: AssociationPool) -> None:
        self._pool = pool
        self._entry: _Entry | None = None

    async def __aenter__(self) -> Association:
        pool = self._pool
        entry = pool._free_entry() if not pool._closed else None
        if entry is not None:  # the usual case: no waiting, no coroutine for _get
            entry.users += 1
            pool._wake_if_room(entry)
        else:
            entry = await pool._get()
        self._entry = entry
        return entry.assoc

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        entry = self._entry
        assert entry is not None
        broken = False
        if kind is not None:
            # cancelled or failed mid-operation: unusable if an exchange is unfinished
            broken = entry.assoc.busy or (
                not issubclass(kind, asyncio.CancelledError) and not entry.assoc.is_open
            )
        self._pool._put(entry, broken)
