"""Pages of the searches (ListModels, ListModelVersions): the filter and order_by parsed and bound
to the resource's fields (search.py), and opaque keyset page tokens (never offsets) made from the
sort values and key of a page's last row (`search.Cursor`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelreg_api.errors import InvalidArgument
from modelreg_common import paging

from modelreg_metadata.filtering import parse_filter, parse_order_by
from modelreg_metadata.search import Cursor, Page, Schema, Search, sort_type


def page_search(
    schema: Schema,
    *,
    page_size: int,
    page_token: str,
    query: str,
    filter_text: str,
    order_by: str,
    show_deleted: bool,
) -> Search:
    limit = paging.page_size(page_size)
    condition = schema.bind(parse_filter(filter_text))
    order = schema.order(parse_order_by(order_by))
    after = None
    key = paging.decode_token(page_token, query)
    if key is not None:
        if len(key) != len(order) + 1 or not isinstance(key[-1], str):
            raise InvalidArgument("page_token", "is not a token returned by this method")
        after = Cursor(tuple(decode_sort_value(v) for v in key[:-1]), key[-1])
    return Search(condition, order, limit, after, show_deleted)


def next_token(query: str, page: Page[Any]) -> str:
    if page.next is None:
        return ""
    return paging.encode_token(query, [*(encode_sort_value(v) for v in page.next.values), page.next.key])


# Sort values in tokens (JSON has no dates): a tag of the value's type, then the value.
_TAGS = {"number": "u", "string": "s", "bool": "b"}


def encode_sort_value(value: Any) -> list[Any]:
    kind = sort_type(value)
    if kind == "date":
        return ["t", value.isoformat()]
    if kind == "null":
        return ["n"]
    return [_TAGS[kind], value]


def decode_sort_value(item: Any, field_name: str = "page_token") -> Any:
    try:
        tag = item[0]
        if tag == "n":
            return None
        value = item[1]
        if tag == "t":
            return datetime.fromisoformat(value)
        expected = {"u": (int, float), "s": (str,), "b": (bool,)}[tag]
        if not isinstance(value, expected):
            raise TypeError(tag)
        return value
    except (KeyError, IndexError, TypeError, ValueError):
        raise InvalidArgument(field_name, "is not a token returned by this method") from None
