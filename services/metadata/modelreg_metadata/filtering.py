"""The registry's filter language: a hand-written tokenizer and parser producing a typed AST.

The grammar (docs/filter-language.md has the user's version):

    filter     := or
    or         := and ("OR" and)*
    and        := unary ("AND" unary)*
    unary      := "NOT" unary | "(" or ")" | condition
    condition  := path op literal
                | path "IN" "(" literal ("," literal)* ")"
                | path "STARTS_WITH" string
    path       := segment ("." segment)*
    segment    := word | `backtick quoted`          (a word is letters, digits, `_` or `-`)
    op         := "=" | "!=" | "<" | "<=" | ">" | ">="
    literal    := string | number | "true" | "false"
    string     := "double quoted" | 'single quoted'  (backslash escapes the next character)

Keywords are case-insensitive. Nothing here knows MongoDB: the store compiles the AST, and user
text only ever becomes values and field-path segments there, never operators.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from modelreg_api.errors import InvalidArgument, quoted

MAX_FILTER_CHARS = 4096
MAX_CONDITIONS = 64
MAX_IN_VALUES = 100
MAX_ORDER_KEYS = 4
# Parentheses and NOTs nested deeper than this are refused as a syntax error: the parser, the
# binder and the store's compiler all recurse once per level, and no real filter needs more.
MAX_NESTING = 32

Literal = str | float | bool


class Op(enum.Enum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@dataclass(frozen=True)
class Path:
    segments: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(quote_segment(s) for s in self.segments)


@dataclass(frozen=True)
class Compare:
    path: Path
    op: Op
    value: Literal


@dataclass(frozen=True)
class In:
    path: Path
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class StartsWith:
    path: Path
    prefix: str


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Compare | In | StartsWith | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    path: Path
    descending: bool = False


def quote_segment(segment: str) -> str:
    """A path segment as the filter language writes it: bare when it is a word, else in backticks."""
    if segment and all(ch.isalnum() or ch in "_-" for ch in segment):
        return segment
    return "`" + segment.replace("\\", "\\\\").replace("`", "\\`") + "`"


class _Kind(enum.Enum):
    WORD = "word"
    QUOTED_SEGMENT = "quoted segment"
    STRING = "string"
    NUMBER = "number"
    OP = "operator"
    DOT = "."
    COMMA = ","
    LPAREN = "("
    RPAREN = ")"
    END = "end of filter"


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str
    position: int


_OPERATORS = ("!=", "<=", ">=", "=", "<", ">")
_KEYWORDS = {"AND", "OR", "NOT", "IN", "STARTS_WITH", "TRUE", "FALSE"}


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_-"


class _Lexer:
    def __init__(self, text: str, field: str):
        self._text = text
        self._field = field
        self._i = 0

    def error(self, position: int, message: str) -> InvalidArgument:
        return InvalidArgument(self._field, f"{message} at position {position + 1}", reason="INVALID_FILTER")

    def tokens(self) -> list[_Token]:  # noqa: PLR0912 - one branch per kind of token reads best
        out: list[_Token] = []
        text = self._text
        while True:
            while self._i < len(text) and text[self._i].isspace():
                self._i += 1
            start = self._i
            if self._i >= len(text):
                out.append(_Token(_Kind.END, "", start))
                return out
            ch = text[self._i]
            if ch in "\"'":
                out.append(_Token(_Kind.STRING, self._quoted(ch), start))
            elif ch == "`":
                out.append(_Token(_Kind.QUOTED_SEGMENT, self._quoted("`"), start))
            elif self._starts_number(out):
                out.append(_Token(_Kind.NUMBER, self._number(), start))
            elif _is_word_char(ch):
                while self._i < len(text) and _is_word_char(text[self._i]):
                    self._i += 1
                out.append(_Token(_Kind.WORD, text[start : self._i], start))
            elif ch == ".":
                self._i += 1
                out.append(_Token(_Kind.DOT, ".", start))
            elif ch == ",":
                self._i += 1
                out.append(_Token(_Kind.COMMA, ",", start))
            elif ch == "(":
                self._i += 1
                out.append(_Token(_Kind.LPAREN, "(", start))
            elif ch == ")":
                self._i += 1
                out.append(_Token(_Kind.RPAREN, ")", start))
            else:
                for op in _OPERATORS:
                    if text.startswith(op, self._i):
                        self._i += len(op)
                        out.append(_Token(_Kind.OP, op, start))
                        break
                else:
                    raise self.error(start, f"unexpected character {ch!r}")

    def _starts_number(self, previous: list[_Token]) -> bool:
        # Numbers appear only where a value is expected (after an operator, `(` of IN, or `,`);
        # elsewhere digits and `-` are part of a word (`params.layers.0`) and `.` joins a path.
        if not previous or previous[-1].kind not in (_Kind.OP, _Kind.LPAREN, _Kind.COMMA):
            return False
        ch = self._text[self._i]
        rest = self._text[self._i + 1 : self._i + 2]
        return ch.isdigit() or (ch in "-+." and (rest.isdigit() or rest == "."))

    def _number(self) -> str:
        text = self._text
        start = self._i
        if text[self._i] in "+-":
            self._i += 1
        while self._i < len(text) and (text[self._i].isalnum() or text[self._i] in ".+-"):
            # exponent signs (1e-3) are part of the number; anything else ends it
            if text[self._i] in "+-" and text[self._i - 1] not in "eE":
                break
            self._i += 1
        return text[start : self._i]

    def _quoted(self, quote: str) -> str:
        text = self._text
        start = self._i
        self._i += 1
        chars: list[str] = []
        while self._i < len(text):
            ch = text[self._i]
            if ch == "\\" and self._i + 1 < len(text):
                chars.append(text[self._i + 1])
                self._i += 2
                continue
            if ch == quote:
                self._i += 1
                return "".join(chars)
            chars.append(ch)
            self._i += 1
        raise self.error(start, f"unterminated {quote}quoted{quote} text")


class _Parser:
    def __init__(self, text: str, field: str):
        self._lexer = _Lexer(text, field)
        self._tokens = self._lexer.tokens()
        self._i = 0
        self._conditions = 0
        self._depth = 0

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _next(self) -> _Token:
        token = self._tokens[self._i]
        if token.kind is not _Kind.END:
            self._i += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token.kind is _Kind.WORD and token.text.upper() == word:
            self._i += 1
            return True
        return False

    def _expect(self, kind: _Kind, what: str) -> _Token:
        token = self._next()
        if token.kind is not kind:
            raise self._unexpected(token, what)
        return token

    def _unexpected(self, token: _Token, expected: str) -> InvalidArgument:
        found = token.kind.value if token.kind is _Kind.END else repr(token.text)
        return self._lexer.error(token.position, f"expected {expected}, found {found}")

    def parse_filter(self) -> Expr:
        expr = self._or()
        token = self._peek()
        if token.kind is not _Kind.END:
            raise self._unexpected(token, "AND, OR or the end of the filter")
        return expr

    def _or(self) -> Expr:
        items = [self._and()]
        while self._keyword("OR"):
            items.append(self._and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self) -> Expr:
        items = [self._unary()]
        while self._keyword("AND"):
            items.append(self._unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _unary(self) -> Expr:
        token = self._peek()
        if self._keyword("NOT"):
            with self._nested(token):
                return Not(self._unary())
        if token.kind is _Kind.LPAREN:
            self._next()
            with self._nested(token):
                expr = self._or()
            self._expect(_Kind.RPAREN, "')'")
            return expr
        return self._condition()

    @contextmanager
    def _nested(self, token: _Token) -> Iterator[None]:
        """One more level of NOT or parentheses, refused past MAX_NESTING."""
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise self._lexer.error(
                token.position, f"NOT and parentheses nest more than {MAX_NESTING} levels deep"
            )
        try:
            yield
        finally:
            self._depth -= 1

    def path(self) -> Path:
        segments = [self._segment()]
        while self._peek().kind is _Kind.DOT:
            self._next()
            segments.append(self._segment())
        return Path(tuple(segments))

    def _segment(self) -> str:
        token = self._next()
        if token.kind is _Kind.QUOTED_SEGMENT:
            if not token.text:
                raise self._lexer.error(token.position, "empty `` segment")
            return token.text
        if token.kind is _Kind.WORD and token.text.upper() not in _KEYWORDS:
            return token.text
        if token.kind is _Kind.NUMBER and token.text.isdigit():
            return token.text  # e.g. a params key "0" written params.layers.0
        raise self._unexpected(token, "a field name (quote unusual names in backticks)")

    def _condition(self) -> Expr:
        self._conditions += 1
        if self._conditions > MAX_CONDITIONS:
            raise self._lexer.error(self._peek().position, f"more than {MAX_CONDITIONS} conditions")
        path = self.path()
        if self._keyword("IN"):
            self._expect(_Kind.LPAREN, "'(' after IN")
            values = [self._literal()]
            while self._peek().kind is _Kind.COMMA:
                self._next()
                values.append(self._literal())
            self._expect(_Kind.RPAREN, "')' closing the IN list")
            if len(values) > MAX_IN_VALUES:
                raise self._lexer.error(
                    self._peek().position, f"IN lists hold at most {MAX_IN_VALUES} values"
                )
            return In(path, tuple(values))
        if self._keyword("STARTS_WITH"):
            token = self._next()
            if token.kind is not _Kind.STRING:
                raise self._unexpected(token, "a quoted prefix after STARTS_WITH")
            return StartsWith(path, token.text)
        token = self._next()
        if token.kind is not _Kind.OP:
            raise self._unexpected(token, "an operator (= != < <= > >= IN STARTS_WITH)")
        return Compare(path, Op(token.text), self._literal())

    def _literal(self) -> Literal:
        token = self._next()
        if token.kind is _Kind.STRING:
            return token.text
        if token.kind is _Kind.NUMBER:
            try:
                value = float(token.text)
            except ValueError:
                raise self._lexer.error(token.position, f"{quoted(token.text)} is not a number") from None
            if not math.isfinite(value):
                raise self._lexer.error(token.position, f"{quoted(token.text)} is not a finite number")
            return value
        if token.kind is _Kind.WORD and token.text.upper() in ("TRUE", "FALSE"):
            return token.text.upper() == "TRUE"
        raise self._unexpected(token, "a value (a quoted string, a number, true or false)")

    def parse_order_by(self) -> list[OrderKey]:
        keys: list[OrderKey] = []
        while True:
            path = self.path()
            descending = False
            if self._keyword("DESC"):
                descending = True
            else:
                self._keyword("ASC")
            keys.append(OrderKey(path, descending))
            token = self._next()
            if token.kind is _Kind.END:
                break
            if token.kind is not _Kind.COMMA:
                raise self._unexpected(token, "',' or the end of order_by")
        if len(keys) > MAX_ORDER_KEYS:
            raise self._lexer.error(0, f"at most {MAX_ORDER_KEYS} order_by keys")
        return keys


def parse_filter(text: str, field: str = "filter") -> Expr | None:
    """The AST of a filter, or None for an empty one; InvalidArgument(field) names the position."""
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidArgument(field, f"is {len(text)} characters long; the limit is {MAX_FILTER_CHARS}")
    if not text.strip():
        return None
    return _Parser(text, field).parse_filter()


def parse_order_by(text: str, field: str = "order_by") -> list[OrderKey]:
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidArgument(field, f"is {len(text)} characters long; the limit is {MAX_FILTER_CHARS}")
    if not text.strip():
        return []
    return _Parser(text, field).parse_order_by()
