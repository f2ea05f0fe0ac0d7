"""A loopback TCP proxy that cuts every connection through it after so many bytes were sent.

Clients reach a service through it to meet the fault a flaky network or a restarting load
balancer causes mid-upload: the connection breaks (reset), the client sees UNAVAILABLE and
continues. It cuts a bounded number of times, then only forwards, and stops with its context.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

_READ_BYTES = 256 * 1024


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to `target`; after every `cut_every` bytes sent towards the
    target (over all connections), it aborts every open connection, `cuts` times in all."""

    def __init__(self, target: str, *, cut_every: int, cuts: int) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self._cut_every = cut_every
        self._cuts = cuts
        self.cuts_done = 0
        self.forwarded = 0  # bytes sent towards the target
        self.address = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cutting-proxy", daemon=True)
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.address = f"127.0.0.1:{port}"
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, upstream_writer))
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer, towards_target=True),
                self._pipe(upstream_reader, writer, towards_target=False),
                return_exceptions=True,
            )
        finally:
            for end in (writer, upstream_writer):
                self._open.discard(end)
                end.transport.abort()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, towards_target: bool
    ) -> None:
        while data := await source.read(_READ_BYTES):
            sink.write(data)
            await sink.drain()
            if towards_target:
                self._count(len(data))
        sink.transport.abort()

    def _count(self, nbytes: int) -> None:
        self.forwarded += nbytes
        if self.cuts_done < self._cuts and self.forwarded >= (self.cuts_done + 1) * self._cut_every:
            self.cuts_done += 1
            for writer in list(self._open):
                writer.transport.abort()
