"""The audit trail: a hash chain of who did what, when (pure: no database, no threads).

Every row is `(seq, ts, who, kind, summary, prev_hash, hash)` with
`hash = sha256(prev_hash + canonical JSON of {kind, prev_hash, seq, summary, ts, who})`, so changing,
inserting or deleting any row breaks the link to the next one. `kind` is `inbound` (a client request or
a venue report the engine handled), `outbound` (a message the engine sent to a client or a venue) or
`admin` (an operator action through the admin socket or the CLI).

The journal (`oms.journal`) writes the rows of an engine batch in the batch's own transaction and
keeps the chain head; this module only builds, hashes and verifies rows. A chain cannot show that rows
were cut off at its end: record the last hash `verify` prints somewhere else if that matters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum, Flag
from typing import Any

from oms import commands as c
from oms.fastinit import fast_init_all
from oms.reports import (
    CancelReject,
    ExecutionReport,
    MassCancelReport,
    VenueCancel,
    VenueNewOrder,
    VenueReplace,
    VenueStatusRequest,
)

GENESIS = "0" * 64
KINDS = ("inbound", "outbound", "admin")

# Client requests and venue reports: what the engine is asked to do by a counterparty. Operator
# commands are audited as `admin` rows (with the before -> after) by whoever issued them; session
# up/down, market prices and scheduled work are not business messages (what they cause is: outbound).
INBOUND_TYPES: tuple[type, ...] = (
    c.NewOrder, c.InvalidOrder, c.CancelOrder, c.ReplaceOrder, c.StatusRequest, c.MassCancel, c.MassStatus,
    c.VenueReport, c.VenueCancelReject,
)
OUTBOUND_TYPES: tuple[type, ...] = (
    ExecutionReport, CancelReject, MassCancelReport, VenueNewOrder, VenueCancel, VenueReplace, VenueStatusRequest,
)


@dataclass(frozen=True, slots=True)
class Entry:
    """A row before it is chained: who, which kind, and a JSON-able summary of what."""

    who: str
    kind: str
    summary: dict[str, Any]
    # `canonical_json(summary)` when already built with the summary (see summarize_json), else ""
    text: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    ts: str
    who: str
    kind: str
    summary: str  # canonical JSON text, exactly as stored and hashed
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "who": self.who, "kind": self.kind, "summary": self.summary,
                "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class Broken:
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Verification:
    rows: int
    last_seq: int
    last_hash: str
    broken: Broken | None = None

    @property
    def intact(self) -> bool:
        return self.broken is None


# --- summaries ---------------------------------------------------------------------------------------
_PLAIN = (str, int, bool)


def _value(v: Any) -> Any:
    if type(v) in _PLAIN:
        return v
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _value(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [_value(x) for x in v]
    return str(v)


# Per dataclass: its field names (sorted, `reply` callables left out) and one getter for all of them.
_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


def _fields_of(t: type) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    spec = _FIELDS.get(t)
    if spec is None:
        names = tuple(sorted(f.name for f in dataclasses.fields(t) if f.name != "reply"))
        getter = operator.attrgetter(*names)
        spec = _FIELDS[t] = (names, (lambda obj: (getter(obj),)) if len(names) == 1 else getter)
    return spec


def summarize(obj: Any) -> dict[str, Any]:
    """A message or command as `{"type": ClassName, field: value, ...}`; None and empty fields left out."""
    names, values = _fields_of(type(obj))
    out: dict[str, Any] = {"type": type(obj).__name__}
    for name, v in zip(names, values(obj), strict=True):
        tv = type(v)
        if tv is str:
            if v:
                out[name] = v
        elif v is None or v is False:
            continue
        elif tv is int or tv is bool:
            out[name] = v
        else:
            convert = _CONVERT.get(tv)
            if convert is None:
                convert = _CONVERT[tv] = _converter(tv)
            out[name] = convert(v)
    return out


# Per value type, how it becomes JSON: decimals as exact strings, enums as their FIX value.
_CONVERT: dict[type, Callable[[Any], Any]] = {Decimal: Decimal.__str__}


def _converter(t: type) -> Callable[[Any], Any]:
    if issubclass(t, Enum):
        _enum_json(t)
        return lambda v: _value(v._value_)
    return _value


def summarize_json(obj: Any) -> tuple[dict[str, Any], str]:
    """`summarize(obj)` and its `canonical_json` text, built in one pass over the fields (the audit rows
    of every engine batch are made of these; the text is the same as canonical_json's)."""
    t = type(obj)
    fn = _SUMMARIZERS.get(t)
    if fn is None:
        fn = _SUMMARIZERS[t] = _summarizer(t)
    return fn(obj)


def summary_text(obj: Any) -> str:
    """`summarize_json(obj)`'s text alone (what the projector chains and stores), without the dict."""
    t = type(obj)
    fn = _TEXTS.get(t)
    if fn is None:
        fn = _TEXTS[t] = _summarizer(t, with_summary=False)
    return fn(obj)


# Per dataclass: its summarize_json, straight-line code over its fields (see _summarizer); and its
# summary_text.
_SUMMARIZERS: dict[type, Callable[[Any], tuple[dict[str, Any], str]]] = {}
_TEXTS: dict[type, Callable[[Any], str]] = {}
_GENERAL = object()


def _general(out: dict[str, Any], parts: list[str], name: str, prefix: str, v: Any) -> object:
    """A field that is neither a string, an int, a bool nor None: convert it (decimals as exact strings,
    enums as their FIX value) and add it; `_GENERAL` when only the general encoder can write it."""
    tv = type(v)
    convert = _CONVERT.get(tv)
    if convert is None:
        convert = _CONVERT[tv] = _converter(tv)
    x = out[name] = convert(v)
    tx = type(x)
    if tx is str:
        parts.append(prefix + _dumps_str(x))
    elif tx is int:
        parts.append(prefix + int.__repr__(x))
    elif tx is bool:
        parts.append(prefix + ("true" if x else "false"))
    elif x is None:
        parts.append(prefix + "null")
    else:  # a list or an object
        return _GENERAL
    return None


# Per enum class whose members' FIX values are all strings or ints: member -> (value, its JSON text), what
# `_general` makes of it. Filled when a converter is first made for the class (`_converter`).
_ENUM_JSON: dict[type, dict[Any, tuple[Any, str]]] = {}


def _enum_json(t: type[Enum]) -> None:
    if issubclass(t, Flag):  # combined flags are not members
        return
    table: dict[Any, tuple[Any, str]] = {}
    for member in t.__members__.values():
        x = _value(member._value_)
        if type(x) is str:
            table[member] = (x, _dumps_str(x))
        elif type(x) is int:
            table[member] = (x, int.__repr__(x))
        else:
            return
    _ENUM_JSON[t] = table


def _slow_summary(obj: Any) -> tuple[dict[str, Any], str]:
    summary = summarize(obj)
    return summary, canonical_json(summary)


def _slow_text(obj: Any) -> str:
    return canonical_json(summarize(obj))


def _summarizer(t: type, with_summary: bool = True) -> Callable[[Any], Any]:
    """summarize_json for one dataclass as generated code: per field (sorted by name) the same steps as
    `summarize` - a non-empty string, an int or True as is, None and False and "" left out, anything else
    converted - writing the JSON text as it goes, with `"type"` at its sorted place; a class with a field
    named "type" (summarize's own key would clash) and values only the general encoder can write (lists,
    objects) take `summarize` + `canonical_json`. Without `with_summary`, summary_text: the text alone,
    no dict built."""
    names, _values = _fields_of(t)
    if "type" in names:
        return _slow_summary if with_summary else _slow_text
    env: dict[str, Any] = {"_dumps": _dumps_str, "_general": _general, "_GENERAL": _GENERAL,
                           "_slow": _slow_summary if with_summary else _slow_text, "_repr": int.__repr__,
                           "_str": str, "_int": int, "_bool": bool,
                           "_Decimal": Decimal, "_dstr": Decimal.__str__, "_enums": _ENUM_JSON,
                           "_type_text": f'"type":{_dumps_str(t.__name__)}', "_type_name": t.__name__}

    def keep(name: str, value: str) -> list[str]:  # the summary's entry, when there is a summary
        return [f"        out[{name!r}] = {value}"] if with_summary else []

    at = sum(1 for n in names if n < "type")
    lines = ["def summarize_json(obj):", "    out = {'type': _type_name}" if with_summary else "    out = {}",
             "    parts = []"]
    for i, name in enumerate(names):
        if i == at:
            lines.append("    parts.append(_type_text)")
        env[f"_p{i}"] = f"{_dumps_str(name)}:"
        lines += [
            f"    v = obj.{name}",
            "    tv = type(v)",
            "    if tv is _str:",
            "        if v:",
            *["    " + line for line in keep(name, "v")],
            f"            parts.append(_p{i} + _dumps(v))",
            "    elif v is None or v is False:",
            "        pass",
            "    elif tv is _int:",
            *keep(name, "v"),
            f"        parts.append(_p{i} + _repr(v))",
            "    elif tv is _Decimal:",  # its text never needs escaping: digits, '.', '-', '+', 'E', NaN, Infinity
            "        x = _dstr(v)",
            *keep(name, "x"),
            f"        parts.append(_p{i} + '\"' + x + '\"')",
            "    elif tv is _bool:",
            *keep(name, "v"),
            f"        parts.append(_p{i} + 'true')",
            "    elif tv in _enums:",  # an enum whose FIX values are all strings or ints: their JSON made once
            "        x, text = _enums[tv][v]",
            *keep(name, "x"),
            f"        parts.append(_p{i} + text)",
            # without a summary, `out` only takes what _general converts, and is dropped
            f"    elif _general(out, parts, {name!r}, _p{i}, v) is _GENERAL:",
            "        return _slow(obj)",
        ]
    if at >= len(names):
        lines.append("    parts.append(_type_text)")
    lines.append("    return out, '{' + ','.join(parts) + '}'" if with_summary else "    return '{' + ','.join(parts) + '}'")
    scope: dict[str, Any] = {}
    exec("\n".join(lines), env, scope)  # noqa: S102 - code built here from the dataclass's field names
    fn: Callable[[Any], Any] = scope["summarize_json"]
    return fn


def _inbound_who(cmd: Any) -> str:
    return str(getattr(cmd, "session", None) or getattr(cmd, "venue", None) or "?")


def _outbound_who(msg: Any) -> str:
    return str(getattr(msg, "session", None) or getattr(msg, "venue", None) or "?")


def business(inbound: Iterable[Any], outbound: Iterable[Any]) -> list[Any]:
    """The business messages of an engine batch, in the order `batch_entries` rows them: what the journal's
    record keeps, so that the rows are made by the projector, off the engine thread."""
    out = [cmd for cmd in inbound if isinstance(cmd, INBOUND_TYPES)]
    out.extend(msg for msg in outbound if isinstance(msg, OUTBOUND_TYPES))
    return out


def entries_of(items: Iterable[Any], summaries: bool = True) -> list[Entry]:
    """The rows of a record's business messages (`business`); a record written before the projector made
    them holds each row as (who, kind, summary text) already. Without `summaries` (the projector, which
    chains and stores the text) an entry's summary dict is left empty and only its text is made."""
    entries = []
    for item in items:
        if type(item) is tuple:
            who, kind, text = item
            entries.append(Entry(who, kind, {}, text))
            continue
        if isinstance(item, INBOUND_TYPES):
            who, kind = _inbound_who(item), "inbound"
        else:
            who, kind = _outbound_who(item), "outbound"
        entries.append(Entry(who, kind, *summarize_json(item)) if summaries
                       else Entry(who, kind, {}, summary_text(item)))
    return entries


def batch_entries(inbound: Iterable[Any], outbound: Iterable[Any]) -> list[Entry]:
    """The rows an engine batch adds: its business commands in, then everything it sends out.

    `who` of an inbound row is the session or venue it came from; of an outbound row, the one it goes to.
    (The engine keeps `business` in its journal record and the projector makes these with `entries_of`.)"""
    return entries_of(business(inbound, outbound))


# --- hashing -----------------------------------------------------------------------------------------
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# The string encoder of `_ENCODER` (ensure_ascii=False), so hand-built JSON is the same text.
_dumps_str: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text as is: the one JSON text of a value.

    Flat objects of strings, integers, booleans and nulls (every message summary) are built here
    directly, which is several times faster than the json module's sorting encoder and gives the
    same text; anything else goes through that encoder."""
    if type(value) is not dict:
        return _ENCODER.encode(value)
    parts = []
    if any(type(k) is not str for k in value):
        return _ENCODER.encode(value)
    for k in sorted(value):
        v = value[k]
        tv = type(v)
        if tv is str:
            text = _dumps_str(v)
        elif tv is bool:
            text = "true" if v else "false"
        elif tv is int:
            text = int.__repr__(v)
        elif v is None:
            text = "null"
        else:
            return _ENCODER.encode(value)
        parts.append(f"{_dumps_str(k)}:{text}")
    return "{" + ",".join(parts) + "}"


def canonical_row(seq: int, ts: str, who: str, kind: str, summary: str, prev_hash: str) -> str:
    """`canonical_json` of the row with its summary as an object, built without re-encoding the summary.

    `summary` must itself be canonical JSON (as `canonical_json` makes it); the keys are in sorted order."""
    return (f'{{"kind":{_dumps_str(kind)},"prev_hash":{_dumps_str(prev_hash)},"seq":{int(seq)},'
            f'"summary":{summary},"ts":{_dumps_str(ts)},"who":{_dumps_str(who)}}}')


def row_hash(prev_hash: str, seq: int, ts: str, who: str, kind: str, summary: str) -> str:
    data = prev_hash + canonical_row(seq, ts, who, kind, summary, prev_hash)
    return hashlib.sha256(data.encode()).hexdigest()


def chain(head: tuple[int, str] | None, entries: Iterable[Entry], ts: datetime) -> list[Row]:
    """Chain `entries` after `head` ((seq, hash) of the last row, or None for an empty trail)."""
    seq, prev = head if head is not None else (0, GENESIS)
    stamp = ts.isoformat(timespec="microseconds")
    rows: list[Row] = []
    for e in entries:
        if e.kind not in KINDS:
            raise ValueError(f"unknown audit kind {e.kind!r}")
        seq += 1
        summary = e.text or canonical_json(e.summary)
        digest = row_hash(prev, seq, stamp, e.who, e.kind, summary)
        rows.append(Row(seq, stamp, e.who, e.kind, summary, prev, digest))
        prev = digest
    return rows


fast_init_all((Entry, Row))  # built for every audited message: see oms.fastinit


def verify(rows: Iterable[Any]) -> Verification:
    """Walk the rows in seq order (objects with the Row attributes) and stop at the first broken link.

    A row is broken when its seq does not follow the previous one (a row was deleted or inserted), its
    prev_hash is not the previous row's hash, or its hash is not the hash of its own content."""
    count = 0
    last_seq = 0
    prev = GENESIS
    for r in rows:
        seq = int(r.seq)
        if seq != last_seq + 1:
            missing = f"row {last_seq + 1} missing" if seq > last_seq + 1 else f"row {seq} out of order"
            return Verification(count, last_seq, prev, Broken(seq, f"{missing} (found {seq} after {last_seq})"))
        if r.prev_hash != prev:
            return Verification(count, last_seq, prev,
                                Broken(seq, f"prev_hash {r.prev_hash[:12]}... is not row {last_seq}'s hash "
                                            f"{prev[:12]}..."))
        try:
            expected = row_hash(r.prev_hash, seq, r.ts, r.who, r.kind, r.summary)
        except Exception as exc:  # a column edited into something unhashable is a broken row too
            return Verification(count, last_seq, prev, Broken(seq, f"row unreadable: {exc}"))
        if expected != r.hash:
            return Verification(count, last_seq, prev,
                                Broken(seq, "content does not match its hash (the row was changed after it "
                                            "was written)"))
        count += 1
        last_seq = seq
        prev = r.hash
    return Verification(count, last_seq, prev)


def iter_rows(dicts: Iterable[dict[str, Any]]) -> Iterator[Row]:
    for d in dicts:
        yield Row(int(d["seq"]), d["ts"], d["who"], d["kind"], d["summary"], d["prev_hash"], d["hash"])
