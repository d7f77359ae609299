"""Batch statements for the journal's writers: compiled once per dialect, rows bound without SQLAlchemy's
per-row processing (oms.journal, oms.projector)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from decimal import Decimal
from enum import Enum
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.exc import DBAPIError

from oms import events as ev

# Per event class: its field names and one getter for all of them (ev.to_payload, without looking the
# dataclass fields up for every event of every batch).
_EVENT_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}
_AS_IS = frozenset({str, int, bool, float, type(None)})


def payload(e: ev.Event) -> dict[str, Any]:
    """`ev.to_payload(e)`: the same dict, cheaper."""
    spec = _EVENT_FIELDS.get(type(e))
    if spec is None:
        names = tuple(f.name for f in dataclasses.fields(e))
        attr = attrgetter(*names)
        spec = _EVENT_FIELDS[type(e)] = (names, (lambda obj: (attr(obj),)) if len(names) == 1 else attr)
    names, values = spec
    plain = ev._plain
    return {name: v if type(v) in _AS_IS else plain(v) for name, v in zip(names, values(e), strict=True)}


def payload_json(e: ev.Event) -> str:
    """`json.dumps(payload(e))`, the text the events table's JSON column stores, written directly: one
    generated function per event class (`_event_json`), no dict and no encoder in between. The projector
    writes one events row per event; the dict and the JSON type's dumps were ~15% of a pass."""
    fn = _EVENT_JSON.get(type(e))
    if fn is None:
        fn = _EVENT_JSON[type(e)] = _event_json(type(e))
    return fn(e)


_EVENT_JSON: dict[type, Callable[[Any], str]] = {}
_ENUM_TEXT: dict[type, dict[Any, str]] = {}  # per enum class: member -> json.dumps(member.value)


def _slow_json(e: Any) -> str:
    return json.dumps(payload(e))


def _event_json(cls: type) -> Callable[[Any], str]:
    """payload_json for one event class, as straight-line code over its fields in order: per field the
    conversion `ev._plain` makes and the text json.dumps writes for its result (its default separators,
    ASCII escapes). A value of another type (a float, a list) sends the whole event to json.dumps."""
    names = [f.name for f in dataclasses.fields(cls)]
    env: dict[str, Any] = {"_str": str, "_int": int, "_bool": bool, "_Decimal": Decimal, "_datetime": datetime,
                           "_Enum": Enum, "_enc": json.encoder.encode_basestring_ascii,  # type: ignore[attr-defined]
                           "_dstr": Decimal.__str__, "_irepr": int.__repr__, "_iso": datetime.isoformat,
                           "_enums": _ENUM_TEXT, "_enum_text": _enum_text, "_slow": _slow_json}
    lines = ["def payload_json(obj):", "    parts = []"]
    for i, name in enumerate(names):
        env[f"_k{i}"] = ("{" if i == 0 else ", ") + json.dumps(name) + ": "
        lines += [
            f"    v = obj.{name}",
            "    tv = type(v)",
            "    if tv is _str:",
            "        t = _enc(v)",
            "    elif v is None:",
            "        t = 'null'",
            "    elif tv is _Decimal:",  # its text never needs escaping: digits, '.', '-', '+', 'E', NaN, Infinity
            "        t = '\"' + _dstr(v) + '\"'",
            "    elif tv is _bool:",
            "        t = 'true' if v else 'false'",
            "    elif tv is _int:",
            "        t = _irepr(v)",
            "    elif tv is _datetime:",  # isoformat: digits, '-', ':', '.', '+', 'T'
            "        t = '\"' + _iso(v) + '\"'",
            "    elif isinstance(v, _Enum):",
            "        t = (_enums.get(tv) or _enum_text(tv))[v]",
            "    else:",
            "        return _slow(obj)",
            f"    parts.append(_k{i} + t)",
        ]
    lines.append("    return ''.join(parts) + '}'" if names else "    return '{}'")
    scope: dict[str, Any] = {}
    exec("\n".join(lines), env, scope)  # noqa: S102 - code built above from the dataclass's own field names
    return scope["payload_json"]  # type: ignore[no-any-return]


def _enum_text(cls: type[Enum]) -> dict[Any, str]:
    text = _ENUM_TEXT[cls] = {m: json.dumps(m.value) for m in cls}
    return text


def pipeline(conn: Any) -> AbstractContextManager[Any]:
    """On PostgreSQL (psycopg) a batch's statements go out in one pipeline: one round trip for all of them
    instead of one each. An error surfaces when the block ends, still inside the transaction."""
    if conn.dialect.driver == "psycopg":
        return conn.connection.driver_connection.pipeline()  # type: ignore[no-any-return]
    return nullcontext()



class Prepared:
    """A batch statement compiled once per dialect and run with `exec_driver_sql`, its rows bound here.

    The SQL text and each column's conversion (Dec, DateTime, JSON, Boolean as the dialect stores them)
    are SQLAlchemy's own, taken from the compiled statement, so what is stored is what `conn.execute`
    would store; what is skipped is SQLAlchemy's per-row parameter processing, which cost more than the
    database's work. `rows` are dicts by column name (bind `b_x` of an update reads column `x`); the
    columns named in `raw` carry what the driver takes already (the events' JSON text: payload_json)."""

    __slots__ = ("sql", "positional", "names", "getter", "procs", "copy_sql")

    def __init__(self, stmt: Any, keys: Sequence[str] | None, dialect: Any, copy: bool = False,
                 raw: Sequence[str] = ()) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None,
                                for_executemany=True)
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self.names = names
        # `copy` (a plain INSERT) on PostgreSQL with psycopg: the rows go in one COPY FROM STDIN, where
        # executemany sends each row as a statement of its own, ~20 us of the driver's Python a row (a
        # resting order's pass writes about 15 rows: events, audit rows, its ClOrdID).
        self.copy_sql: str | None = None
        if copy and dialect.name == "postgresql" and dialect.driver == "psycopg":
            quote = dialect.identifier_preparer.quote
            self.copy_sql = (f"COPY {quote(stmt.table.name)} ({', '.join(quote(n) for n in names)}) "
                             "FROM STDIN")
        self.getter = itemgetter(*[n[2:] if n.startswith("b_") else n for n in names])
        self.procs = [(i, _once(proc) if isinstance(compiled.binds[n].type, DateTime) else proc)
                      for i, n in enumerate(names) if n not in raw
                      if (proc := compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)) is not None]
        if len(names) < 2:
            raise ValueError("a prepared statement binds at least two columns")

    def execute(self, conn: Any, rows: Sequence[dict[str, Any]]) -> None:
        self.run(conn, self.bind(rows))

    def bind(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        """The rows as the driver takes them (what `execute` runs; `run` runs rows bound earlier)."""
        getter, procs = self.getter, self.procs
        bound: list[Any] = []
        for row in rows:
            values = getter(row)
            if procs:
                values = list(values)
                for i, proc in procs:
                    values[i] = proc(values[i])
            bound.append(tuple(values) if self.positional or self.copy_sql
                         else dict(zip(self.names, values, strict=True)))
        return bound

    def run(self, conn: Any, bound: list[Any]) -> None:
        if self.copy_sql is None:
            conn.exec_driver_sql(self.sql, bound)
            return
        import psycopg  # only here: the copy is PostgreSQL's

        try:
            with conn.connection.driver_connection.cursor() as cursor, cursor.copy(self.copy_sql) as copy:
                for row in bound:
                    copy.write_row(row)
        except psycopg.Error as exc:  # as SQLAlchemy raises it for a statement (an IntegrityError, say)
            raise DBAPIError.instance(self.copy_sql, None, exc, psycopg.Error) from exc


def _once(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A DateTime bind processor that converts the same datetime object once: every row of a batch
    carries the batch's one `now` (events, orders, children), so it is formatted once, not per row.
    Only the very object last converted is reused (datetimes are immutable), never an equal one."""
    last: tuple[Any, Any] = (object(), None)

    def process(value: Any) -> Any:
        nonlocal last
        seen, out = last  # one tuple, swapped whole: a pair is never torn
        if value is seen:
            return out
        out = proc(value)
        last = (value, out)
        return out

    return process
