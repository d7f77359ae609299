"""A faster `__init__` for the frozen, slotted dataclasses built on the engine's hot path.

A frozen dataclass's generated `__init__` sets each field with `object.__setattr__(self, name, value)`;
an ExecutionReport (28 fields) took ~3.3 us that way, and commands, events, reports and audit rows
together were ~8% of the engine thread. `fast_init` gives such a class an `__init__` with the same
signature (names, order, defaults) that stores each field through its slot's own descriptor: the
same values in the same slots, ~1.9 us for that report. The class stays frozen (assignment still
raises), and equality, hashing, `repr` and `dataclasses.replace` are the dataclass's own; pickling
stores the class and its field values (see `__reduce__` below).

Only classes it can reproduce exactly are changed: frozen, slotted, every field in `__init__`, no
`default_factory`, no keyword-only field, no `__post_init__` and no `InitVar`; any other class is left
as it is.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Replace `cls.__init__` as described above when it can be reproduced; return `cls`."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        return cls
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if any(not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING for f in fields):
        return cls
    if not fields or len(getattr(cls, "__dataclass_fields__", {})) != len(fields):
        return cls  # InitVar or ClassVar pseudo-fields
    slots = [next((k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__), None) for f in fields]
    if any(type(d).__name__ != "member_descriptor" for d in slots):
        return cls
    env: dict[str, Any] = {}
    params_src: list[str] = []
    body: list[str] = []
    for i, f in enumerate(fields):
        setter = f"_s{i}"
        env[setter] = slots[i].__set__  # type: ignore[union-attr]  # the slot's member descriptor
        if f.default is dataclasses.MISSING:
            params_src.append(f.name)
        else:
            env[f"_d{i}"] = f.default
            params_src.append(f"{f.name}=_d{i}")
        body.append(f"        {setter}(self, {f.name})")
    src = (f"def _make({', '.join(env)}):\n"
           f"    def __init__(self, {', '.join(params_src)}):\n" + "\n".join(body) + "\n"
           "    return __init__\n")
    scope: dict[str, Any] = {}
    exec(src, {}, scope)  # noqa: S102 - code built above from the dataclass's own field names
    init = scope["_make"](**env)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init  # type: ignore[method-assign]
    # Pickled as (class, field values): a journal record pickles every event and report of a batch,
    # and the dataclass's own __getstate__ for slotted classes (a getattr per field in a list
    # comprehension, then __setstate__ setting them back one by one) cost more than the rest of the
    # pickling. Loading calls the __init__ above with the same values: the same object.
    getter = operator.attrgetter(*(f.name for f in fields))
    if len(fields) == 1:
        def __reduce__(self: Any) -> tuple[Any, tuple[Any, ...]]:
            return cls, (getter(self),)
    else:
        def __reduce__(self: Any) -> tuple[Any, tuple[Any, ...]]:
            return cls, getter(self)
    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


def fast_init_all(classes: Any) -> None:
    for cls in classes:
        fast_init(cls)
