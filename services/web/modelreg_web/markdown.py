"""Markdown that users wrote (model cards, descriptions) turned into HTML that is safe to show.

Two layers, so that a mistake in one is caught by the other: markdown-it renders with raw HTML
disabled (a `<script>` in the text comes out as text), then nh3 (the ammonia sanitiser) keeps
only the tags and attributes below and only http, https and mailto links, and marks every link
`rel="noopener noreferrer nofollow"`. The page's Content-Security-Policy would still refuse to
run any script that slipped through both.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

# Longer text is cut before rendering: a model card is documentation, not a data dump.
MAX_MARKDOWN_CHARS = 200_000

_TAGS = {
    "a", "abbr", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "img", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
}
_SCHEMES = {"http", "https", "mailto"}

_renderer = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> Markup:
    html = _renderer.render(text[:MAX_MARKDOWN_CHARS])
    clean = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above
