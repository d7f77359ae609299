"""Alembic migrations of the journal's schema (oms.migrate runs them; `fixoms init-db` and every start)."""
