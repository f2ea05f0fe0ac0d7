"""Searches: the filter language's semantics (type brackets, missing keys, list-valued params),
orders across types, keyset pages that visit every row exactly once, and what a search hides
(deleted versions, the versions of a deleted model, purged versions always)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from modelreg_api.names import ModelName, NamespaceName
from modelreg_metadata.audit import changes
from modelreg_metadata.audit.events import Action
from modelreg_metadata.clock import new_etag
from modelreg_metadata.domain import Model, VersionState
from modelreg_metadata.filtering import parse_filter, parse_order_by
from modelreg_metadata.search import MODEL_SCHEMA, VERSION_SCHEMA, Cursor, Schema, Search

from tests.contract.conftest import Stores, create_version, event, model_named
from tests.support import unique


def search_of(
    schema: Schema,
    filter_text: str = "",
    order_by: str = "",
    *,
    limit: int = 100,
    after: Cursor | None = None,
    show_deleted: bool = False,
) -> Search:
    return Search(
        schema.bind(parse_filter(filter_text)),
        schema.order(parse_order_by(order_by)),
        limit,
        after,
        show_deleted,
    )


async def version_pages(
    stores: Stores,
    parent: ModelName | NamespaceName,
    filter_text: str = "",
    order_by: str = "model_id, number",
    *,
    limit: int = 100,
    show_deleted: bool = False,
) -> list[str]:
    """Every page's versions as `{model}/{number}`, following the cursors."""
    seen: list[str] = []
    after: Cursor | None = None
    while True:
        query = search_of(
            VERSION_SCHEMA, filter_text, order_by, limit=limit, after=after, show_deleted=show_deleted
        )
        page = await stores.versions.search_versions(parent, query)
        assert len(page.items) <= limit
        seen += [f"{v.name.model}/{v.number}" for v in page.items]
        if page.next is None:
            return seen
        after = page.next


async def named_model(stores: Stores, namespace: str, model_id: str, **fields: Any) -> Model:
    model = model_named(ModelName(namespace, model_id), **fields)
    return await stores.models.insert_model(model, "", event(Action.MODEL_CREATED))


@pytest.fixture
async def catalog(stores: Stores) -> str:
    """A namespace with models alpha (5 versions) and beta (2 versions)."""
    namespace = unique("ns")
    alpha = await named_model(stores, namespace, "alpha", labels={"task": "nlp"})
    beta = await named_model(stores, namespace, "beta", labels={"task": "vision"})
    for fields in (
        {"metrics": {"acc": 0.5}, "tags": {"team": "a"}, "params": {"lr": 0.01, "layers": [64, 128]}},
        {"metrics": {"acc": 0.9}, "tags": {"team": "b"}, "params": {"lr": 0.1}},
        {"tags": {"team": "a", "stage": "dev"}, "params": {"lr": "auto"}},
        {"metrics": {"acc": 0.5}},
        {"metrics": {"acc": 0.7}, "tags": {"team": "c"}, "state": VersionState.READY},
    ):
        await create_version(stores, alpha, **fields)
    for acc in (0.95, 0.1):
        await create_version(stores, beta, metrics={"acc": acc})
    return namespace


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("metrics.acc > 0.6", ["alpha/2", "alpha/5", "beta/1"]),
        ('tags.team = "a"', ["alpha/1", "alpha/3"]),
        ('NOT tags.team = "a"', ["alpha/2", "alpha/4", "alpha/5", "beta/1", "beta/2"]),
        ('tags.team != "a"', ["alpha/2", "alpha/5"]),
        ('NOT tags.team IN ("a", "b")', ["alpha/4", "alpha/5", "beta/1", "beta/2"]),
        ("params.lr = 0.01", ["alpha/1"]),
        ("params.lr > 0", ["alpha/1", "alpha/2"]),
        ('params.lr STARTS_WITH "au"', ["alpha/3"]),
        ("params.layers = 64", ["alpha/1"]),
        ('state = "ready"', ["alpha/5"]),
        ("metrics.acc IN (0.5, 0.95)", ["alpha/1", "alpha/4", "beta/1"]),
        ('model_id STARTS_WITH "al" AND number >= 4', ["alpha/4", "alpha/5"]),
        ('metrics.acc < 0.2 OR tags.stage = "dev"', ["alpha/3", "beta/2"]),
    ],
)
async def test_filters_mean_the_same_everywhere(
    stores: Stores, catalog: str, filter_text: str, expected: list[str]
) -> None:
    assert await version_pages(stores, NamespaceName(catalog), filter_text) == expected


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("metrics.acc desc", ["beta/1", "alpha/2", "alpha/5", "alpha/1", "alpha/4", "beta/2", "alpha/3"]),
        ("metrics.acc", ["alpha/3", "beta/2", "alpha/1", "alpha/4", "alpha/5", "alpha/2", "beta/1"]),
        ("params.lr", ["alpha/4", "alpha/5", "beta/1", "beta/2", "alpha/1", "alpha/2", "alpha/3"]),
        ("params.lr desc", ["alpha/3", "alpha/2", "alpha/1", "alpha/4", "alpha/5", "beta/1", "beta/2"]),
        (
            "number desc, model_id",
            ["alpha/5", "alpha/4", "alpha/3", "alpha/2", "beta/2", "alpha/1", "beta/1"],
        ),
        (
            "tags.team desc, number",
            ["alpha/5", "alpha/2", "alpha/1", "alpha/3", "beta/1", "beta/2", "alpha/4"],
        ),
    ],
)
@pytest.mark.parametrize("limit", [1, 2, 3, 100])
async def test_keyset_pages_visit_every_row_once_in_order(
    stores: Stores, catalog: str, order_by: str, expected: list[str], limit: int
) -> None:
    assert await version_pages(stores, NamespaceName(catalog), order_by=order_by, limit=limit) == expected


async def test_searches_hide_deleted_and_purged_versions_and_those_of_deleted_models(
    stores: Stores, catalog: str
) -> None:
    namespace = NamespaceName(catalog)
    alpha = ModelName(catalog, "alpha")
    for number in (3, 4):
        await stores.versions.update_version(
            alpha.version(number),
            lambda current, _: replace(current, deleted=True, etag=new_etag()),
            "",
            event(Action.MODEL_VERSION_DELETED),
        )
    await stores.versions.purge_version(alpha.version(3), lambda _: None, "", changes.purge_event)
    assert await version_pages(stores, alpha, order_by="") == ["alpha/1", "alpha/2", "alpha/5"]
    assert await version_pages(stores, alpha, order_by="", show_deleted=True) == [
        "alpha/1",
        "alpha/2",
        "alpha/4",
        "alpha/5",
    ]

    await stores.models.update_model(
        ModelName(catalog, "beta"),
        lambda m: replace(m, deleted=True, etag=new_etag()),
        "",
        event(Action.MODEL_DELETED),
    )
    # Hidden rows still move the cursor: a page may come back with fewer rows, never a row twice.
    for limit in (1, 2, 100):
        assert await version_pages(stores, namespace, order_by="number desc", limit=limit) == [
            "alpha/5",
            "alpha/2",
            "alpha/1",
        ]
    assert await version_pages(stores, namespace, show_deleted=True) == [
        "alpha/1",
        "alpha/2",
        "alpha/4",
        "alpha/5",
        "beta/1",
        "beta/2",
    ]


async def test_model_searches_filter_order_and_page(stores: Stores, catalog: str) -> None:
    namespace = NamespaceName(catalog)
    await named_model(stores, catalog, "gamma", labels={"task": "nlp"})

    async def models(
        filter_text: str = "", order_by: str = "", *, limit: int = 100, show_deleted: bool = False
    ) -> list[str]:
        seen: list[str] = []
        after: Cursor | None = None
        while True:
            page = await stores.models.search_models(
                namespace,
                search_of(
                    MODEL_SCHEMA, filter_text, order_by, limit=limit, after=after, show_deleted=show_deleted
                ),
            )
            seen += [m.name.model for m in page.items]
            if page.next is None:
                return seen
            after = page.next

    assert await models() == ["alpha", "beta", "gamma"]
    assert await models('labels.task = "nlp"', limit=1) == ["alpha", "gamma"]
    assert await models("latest_version_number >= 2", "model_id desc") == ["beta", "alpha"]
    assert await models(order_by="latest_version_number desc, model_id", limit=2) == [
        "alpha",
        "beta",
        "gamma",
    ]
    await stores.models.update_model(
        ModelName(catalog, "beta"),
        lambda m: replace(m, deleted=True, etag=new_etag()),
        "",
        event(Action.MODEL_DELETED),
    )
    assert await models(limit=1) == ["alpha", "gamma"]
    assert await models(show_deleted=True) == ["alpha", "beta", "gamma"]
