"""`Client`: the blocking API, for scripts, notebooks and training jobs.

It is `AsyncClient` run on a private event loop in a background thread. One implementation means
the two can never disagree, and it works where the caller's thread already runs a loop
(Jupyter). Calls may come from several threads at once; their transfers share the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from modelreg.aio import AsyncClient
from modelreg.settings import ClientSettings

P = ParamSpec("P")
T = TypeVar("T")

# How long an interrupted call (Ctrl-C) may take to clean up its temporary files.
_CANCEL_GRACE_SECONDS = 10.0


class _LoopThread:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modelreg-client", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C in the caller's thread: cancel the work so it removes its temporary files.
            if not future.done():
                future.cancel()
                concurrent.futures.wait([future], timeout=_CANCEL_GRACE_SECONDS)
            raise

    def iterate(self, iterator: AsyncIterator[T]) -> Generator[T, None, None]:
        async def step() -> tuple[bool, T | None]:
            try:
                return True, await anext(iterator)
            except StopAsyncIteration:
                return False, None

        async def close() -> None:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

        try:
            while True:
                more, item = self.run(step())
                if not more:
                    return
                yield item  # type: ignore[misc]  # `more` is True exactly when an item came
        finally:
            self.run(close())

    @property
    def stopped(self) -> bool:
        return self._loop.is_closed()

    def stop(self) -> None:
        if self.stopped:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


F = TypeVar("F", bound=Callable[..., Any])


def _documented(wrapper: F, method: Callable[..., Any]) -> F:
    # functools.wraps would also copy the async signature, which help() would then show.
    wrapper.__name__ = method.__name__
    wrapper.__qualname__ = f"Client.{method.__name__}"
    wrapper.__doc__ = method.__doc__
    return wrapper


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Awaitable[T]],
) -> Callable[Concatenate[Client, P], T]:
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async def run() -> T:
            return await method(self._client, *args, **kwargs)

        return self._loop.run(run())

    return _documented(call, method)


def _blocking_iterator(
    method: Callable[Concatenate[AsyncClient, P], AsyncIterator[T]],
) -> Callable[Concatenate[Client, P], Generator[T, None, None]]:
    # A generator, so a caller that stops early can close() it and end the server stream.
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> Generator[T, None, None]:
        return self._loop.iterate(method(self._client, *args, **kwargs))

    return _documented(call, method)


class Client:
    """The registry, blocking. Use it as `with Client() as registry:` or call `close()`.

    Takes the same arguments as `AsyncClient` and has the same methods; see there.
    """

    def __init__(
        self,
        *,
        metadata_addr: str | None = None,
        artifact_addr: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
        cache_dir: str | Path | None = None,
        parallel_files: int | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        self._loop = _LoopThread()
        self._client = AsyncClient(
            metadata_addr=metadata_addr,
            artifact_addr=artifact_addr,
            token=token,
            timeout=timeout,
            cache_dir=cache_dir,
            parallel_files=parallel_files,
            settings=settings,
        )
        self.settings = self._client.settings

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.stopped:
            return
        try:
            self._loop.run(self._client.close())
        finally:
            self._loop.stop()

    whoami = _blocking(AsyncClient.whoami)
    create_token = _blocking(AsyncClient.create_token)
    list_tokens = _blocking_iterator(AsyncClient.list_tokens)
    revoke_token = _blocking(AsyncClient.revoke_token)
    grant_role = _blocking(AsyncClient.grant_role)
    revoke_role = _blocking(AsyncClient.revoke_role)
    list_role_bindings = _blocking_iterator(AsyncClient.list_role_bindings)
    get_namespace = _blocking(AsyncClient.get_namespace)
    list_namespaces = _blocking_iterator(AsyncClient.list_namespaces)
    list_namespaces_page = _blocking(AsyncClient.list_namespaces_page)
    update_namespace = _blocking(AsyncClient.update_namespace)
    create_model = _blocking(AsyncClient.create_model)
    get_model = _blocking(AsyncClient.get_model)
    ensure_model = _blocking(AsyncClient.ensure_model)
    list_models = _blocking_iterator(AsyncClient.list_models)
    list_models_page = _blocking(AsyncClient.list_models_page)
    create_version = _blocking(AsyncClient.create_version)
    get_version = _blocking(AsyncClient.get_version)
    list_versions = _blocking_iterator(AsyncClient.list_versions)
    list_versions_page = _blocking(AsyncClient.list_versions_page)
    metric_history = _blocking(AsyncClient.metric_history)
    search_versions = _blocking_iterator(AsyncClient.search_versions)
    compare_versions = _blocking(AsyncClient.compare_versions)
    seal_version = _blocking(AsyncClient.seal_version)
    delete_version = _blocking(AsyncClient.delete_version)
    undelete_version = _blocking(AsyncClient.undelete_version)
    purge_version = _blocking(AsyncClient.purge_version)
    push = _blocking(AsyncClient.push)
    set_alias = _blocking(AsyncClient.set_alias)
    get_alias = _blocking(AsyncClient.get_alias)
    list_aliases = _blocking_iterator(AsyncClient.list_aliases)
    list_aliases_page = _blocking(AsyncClient.list_aliases_page)
    delete_alias = _blocking(AsyncClient.delete_alias)
    protect_alias = _blocking(AsyncClient.protect_alias)
    get_alias_protection = _blocking(AsyncClient.get_alias_protection)
    unprotect_alias = _blocking(AsyncClient.unprotect_alias)
    submit_for_review = _blocking(AsyncClient.submit_for_review)
    approve_version = _blocking(AsyncClient.approve_version)
    reject_version = _blocking(AsyncClient.reject_version)
    list_events = _blocking_iterator(AsyncClient.list_events)
    list_events_page = _blocking(AsyncClient.list_events_page)
    watch_events = _blocking_iterator(AsyncClient.watch_events)
    state_at = _blocking(AsyncClient.state_at)
    aliases_at = _blocking(AsyncClient.aliases_at)
    pull = _blocking(AsyncClient.pull)
    verify_version = _blocking(AsyncClient.verify_version)
