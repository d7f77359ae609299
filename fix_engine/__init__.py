"""QuickFIX glue: settings, the client acceptor, the FIX <-> domain codec. No routing or risk decisions.

codec is compiled by mypyc at install time (setup.py)."""

from oms.compiled import require_fresh

require_fresh(__file__)
