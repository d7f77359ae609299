"""Smart order routing: consolidated book, internal crossing, split strategies, TCA. No sockets, no database.

Its modules but tca and static are compiled by mypyc at install time (setup.py)."""

from oms.compiled import require_fresh

require_fresh(__file__)
