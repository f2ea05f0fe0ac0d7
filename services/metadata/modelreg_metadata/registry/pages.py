"""Pages of the searches (ListModels, ListModelVersions): the filter and order_by parsed and
compiled against the resource's schema, and opaque keyset page tokens (never offsets) made from
the sort values and key of a page's last row.
"""

from __future__ import annotations

from typing import Any

from modelreg_api.errors import InvalidArgument
from modelreg_common import paging

from modelreg_metadata.filtering import parse_filter, parse_order_by
from modelreg_metadata.store import Page
from modelreg_metadata.store.query import (
    FilterCompiler,
    Schema,
    decode_sort_value,
    encode_sort_value,
    sort_paths,
)


def page_query(
    schema: Schema,
    *,
    page_size: int,
    page_token: str,
    query: str,
    filter_text: str,
    order_by: str,
) -> tuple[int, dict[str, Any], list[tuple[str, bool]], tuple[list[Any], str] | None]:
    limit = paging.page_size(page_size)
    condition = FilterCompiler(schema).compile(parse_filter(filter_text))
    sort = sort_paths(schema, parse_order_by(order_by))
    after = None
    key = paging.decode_token(page_token, query)
    if key is not None:
        if len(key) != len(sort) + 1 or not isinstance(key[-1], str):
            raise InvalidArgument("page_token", "is not a token returned by this method")
        after = ([decode_sort_value(v) for v in key[:-1]], key[-1])
    return limit, condition, sort, after


def next_token(query: str, rows: Page, limit: int) -> str:
    if len(rows) <= limit:
        return ""
    _, values, last_id = rows[limit - 1]
    return paging.encode_token(query, [*(encode_sort_value(v) for v in values), last_id])
