"""Parser and evaluator for the Drive v3 ``files.list`` ``q`` search language.

Supports the subset a folder downloader (and rclone) uses, plus a little more::

    '<id>' in parents            'someone@example.com' in owners|writers|readers
    trashed = true|false         starred / sharedWithMe likewise (also !=)
    mimeType = '…' | != '…' | contains '…'
    name = '…' | != '…' | contains '…'     (case-insensitive; contains = word prefix)
    fullText contains '…'
    modifiedTime|createdTime  = != < <= > >=  'RFC 3339'
    and / or / not / ( … )

String literals use single (or double) quotes; inside them only ``\\'``, ``\\"`` and
``\\\\`` are valid escapes. Anything else raises :class:`QueryError`, which the fake
turns into Drive's ``400 invalid`` (``location: q``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Query", "QueryError", "parse_query"]


class QueryError(ValueError):
    """The ``q`` string is not a valid (or not a supported) Drive query."""


_STRING_FIELDS = {"name": {"=", "!=", "contains"}, "mimeType": {"=", "!=", "contains"}}
_TEXT_FIELDS = {"fullText": {"contains"}}
_BOOL_FIELDS = {"trashed", "starred", "sharedWithMe"}
_TIME_FIELDS = {"modifiedTime", "createdTime"}
_COLLECTION_FIELDS = {"parents", "owners", "writers", "readers"}
_KEYWORDS = {"and", "or", "not", "in", "contains", "has", "true", "false"}

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<op>!=|<=|>=|=|<|>)
      | (?P<paren>[()])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<quote>['"])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # "op" | "paren" | "word" | "str" | "end"
    text: str


def _tokenize(q: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while True:
        while pos < len(q) and q[pos].isspace():
            pos += 1
        if pos >= len(q):
            tokens.append(_Tok("end", ""))
            return tokens
        m = _TOKEN_RE.match(q, pos)
        if not m:
            raise QueryError(f"unexpected character {q[pos]!r} at {pos}")
        if m.group("quote"):
            text, pos = _read_string(q, m.end(), m.group("quote"))
            tokens.append(_Tok("str", text))
            continue
        kind = m.lastgroup or ""
        tokens.append(_Tok(kind, m.group(kind)))
        pos = m.end()


def _read_string(q: str, pos: int, quote: str) -> tuple[str, int]:
    out: list[str] = []
    while pos < len(q):
        ch = q[pos]
        if ch == "\\":
            if pos + 1 >= len(q) or q[pos + 1] not in "'\"\\":
                raise QueryError(f"invalid escape at {pos}")
            out.append(q[pos + 1])
            pos += 2
        elif ch == quote:
            return "".join(out), pos + 1
        else:
            out.append(ch)
            pos += 1
    raise QueryError("unterminated string literal")


# --- AST -------------------------------------------------------------------------------

Record = Mapping[str, object]


@dataclass(frozen=True)
class _Compare:
    field: str
    op: str
    value: str | bool | datetime

    def matches(self, rec: Record) -> bool:
        actual = rec.get(self.field)
        if self.field in _BOOL_FIELDS:
            return (bool(actual) == self.value) == (self.op == "=")
        if self.field in _TIME_FIELDS:
            if not isinstance(actual, datetime) or not isinstance(self.value, datetime):
                return False
            return _compare_ordered(actual, self.op, self.value)
        text = str(actual or "")
        value = str(self.value)
        if self.field == "name":
            text, value = text.casefold(), value.casefold()
        if self.op == "contains":
            return _name_contains(text, value) if self.field == "name" else value in text
        return (text == value) == (self.op == "=")


def _compare_ordered(a: datetime, op: str, b: datetime) -> bool:
    return {
        "=": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


def _name_contains(name: str, value: str) -> bool:
    """Drive's ``name contains`` is a prefix match at word starts ("HelloWorld" ~ 'Hello')."""
    for i in range(len(name)):
        if (i == 0 or not name[i - 1].isalnum()) and name.startswith(value, i):
            return True
    return value == ""


@dataclass(frozen=True)
class _In:
    value: str
    field: str

    def matches(self, rec: Record) -> bool:
        collection = rec.get(self.field) or ()
        if not isinstance(collection, list | tuple | set | frozenset):
            return False
        if self.field == "parents":
            return self.value in collection
        return self.value.casefold() in {str(v).casefold() for v in collection}


@dataclass(frozen=True)
class _Not:
    expr: _Node

    def matches(self, rec: Record) -> bool:
        return not self.expr.matches(rec)


@dataclass(frozen=True)
class _BoolOp:
    op: str  # "and" | "or"
    operands: tuple[_Node, ...]

    def matches(self, rec: Record) -> bool:
        results = (o.matches(rec) for o in self.operands)
        return all(results) if self.op == "and" else any(results)


_Node = _Compare | _In | _Not | _BoolOp


class Query:
    """A parsed ``q``; ``matches(record)`` evaluates it against a dict of File values."""

    def __init__(self, root: _Node | None) -> None:
        self._root = root

    def matches(self, record: Record) -> bool:
        return True if self._root is None else self._root.matches(record)

    def required_parents(self) -> set[str] | None:
        """Parent ids one of which every match must have, or None if unconstrained.

        Lets the fake look only at the children of ``'<id>' in parents`` queries.
        """
        return _required_parents(self._root)


def _required_parents(node: _Node | None) -> set[str] | None:
    if isinstance(node, _In) and node.field == "parents":
        return {node.value}
    if isinstance(node, _BoolOp) and node.op == "and":
        for operand in node.operands:
            found = _required_parents(operand)
            if found is not None:
                return found
    if isinstance(node, _BoolOp) and node.op == "or":
        parts = [_required_parents(o) for o in node.operands]
        if all(p is not None for p in parts):
            return set().union(*(p for p in parts if p is not None))
    return None


# --- parser ----------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self._tokens = tokens
        self._i = 0

    def _peek(self) -> _Tok:
        return self._tokens[self._i]

    def _next(self) -> _Tok:
        tok = self._tokens[self._i]
        self._i += 1
        return tok

    def _is_kw(self, tok: _Tok, word: str) -> bool:
        return tok.kind == "word" and tok.text.lower() == word

    def parse(self) -> _Node:
        node = self._or()
        if self._peek().kind != "end":
            raise QueryError(f"unexpected {self._peek().text!r}")
        return node

    def _or(self) -> _Node:
        operands = [self._and()]
        while self._is_kw(self._peek(), "or"):
            self._next()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else _BoolOp("or", tuple(operands))

    def _and(self) -> _Node:
        operands = [self._not()]
        while self._is_kw(self._peek(), "and"):
            self._next()
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else _BoolOp("and", tuple(operands))

    def _not(self) -> _Node:
        if self._is_kw(self._peek(), "not"):
            self._next()
            return _Not(self._not())
        return self._primary()

    def _primary(self) -> _Node:
        tok = self._next()
        if tok.kind == "paren" and tok.text == "(":
            node = self._or()
            close = self._next()
            if close.kind != "paren" or close.text != ")":
                raise QueryError("missing ')'")
            return node
        if tok.kind == "str":
            return self._membership(tok.text)
        if tok.kind == "word" and tok.text.lower() not in _KEYWORDS:
            return self._comparison(tok.text)
        raise QueryError(f"unexpected {tok.text or 'end of query'!r}")

    def _membership(self, value: str) -> _In:
        if not self._is_kw(self._next(), "in"):
            raise QueryError("expected 'in' after a string literal")
        field = self._next()
        if field.kind != "word" or field.text not in _COLLECTION_FIELDS:
            raise QueryError(f"'in' needs one of {sorted(_COLLECTION_FIELDS)}")
        return _In(value, field.text)

    def _comparison(self, field: str) -> _Compare:
        op_tok = self._next()
        op = op_tok.text if op_tok.kind == "op" else op_tok.text.lower()
        value = self._next()
        if field in _BOOL_FIELDS:
            if op not in {"=", "!="} or value.kind != "word":
                raise QueryError(f"{field} takes = or != and true/false")
            if value.text.lower() not in {"true", "false"}:
                raise QueryError(f"{field} takes true or false")
            return _Compare(field, op, value.text.lower() == "true")
        if value.kind != "str":
            raise QueryError(f"{field} needs a quoted string")
        if field in _TIME_FIELDS:
            if op not in {"=", "!=", "<", "<=", ">", ">="}:
                raise QueryError(f"bad operator {op!r} for {field}")
            return _Compare(field, op, _parse_time(value.text))
        allowed = _STRING_FIELDS.get(field) or _TEXT_FIELDS.get(field)
        if allowed is None:
            raise QueryError(f"unsupported query term {field!r}")
        if op not in allowed:
            raise QueryError(f"bad operator {op!r} for {field}")
        return _Compare(field, op, value.text)


def _parse_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as e:
        raise QueryError(f"bad RFC 3339 time {text!r}") from e
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def parse_query(q: str | None) -> Query:
    """Parse a ``q`` string (None or blank = match everything); raise QueryError."""
    if q is None or not q.strip():
        return Query(None)
    return Query(_Parser(_tokenize(q)).parse())
