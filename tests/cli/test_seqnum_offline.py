"""`fixoms sessions seqnum --offline`: the FIX store of a stopped engine, edited from the CLI. A module of
its own: it runs its own engine, stopped and started again, and QuickFIX allows one set of sessions per
process at a time (the other CLI modules keep an engine up for the whole module)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import as_json, fixoms, ok, write_config
from tests.cli.test_session_ops import session
from tests.conftest import run_stack


def test_seqnum_offline_edits_the_store_of_a_stopped_engine(tmp_path: Path) -> None:
    gen = run_stack(tmp_path, f"sqlite:///{tmp_path / 'journal.db'}")
    st = next(gen)
    try:
        cfg = write_config(tmp_path, st.db_url, st.tmp / "admin.sock")
        cfg.write_text(cfg.read_text().replace(f'var_dir = "{tmp_path / "cli-var"}"', f'var_dir = "{st.tmp / "engine"}"'))
        c = st.client()
        cl = c.new_order("AAPL", "1", 100, ord_type="1")
        c.wait_report(cl, status="2")
        before = session(cfg, "CLIENT1")
        res = fixoms(cfg, "sessions", "seqnum", "CLIENT1", "--offline", "--sender", "40", "--yes")
        assert res.exit_code == 1 and "the engine is running" in res.stderr
        c.stop()
        st.clients.remove(c)
        st.stop_engine()
        stored = (st.tmp / "engine" / "store" / "FIX.4.4-FIXOMS-CLIENT1.seqnums").read_text()
        sender_before = int(stored.split(":")[0])
        out = ok(fixoms(cfg, "sessions", "seqnum", "CLIENT1", "--offline", "--sender", "500", "--yes"))
        assert f"session CLIENT1 (offline): next_sender_seq {sender_before} -> 500" in out
        res = fixoms(cfg, "sessions", "seqnum", "CLIENT1", "--offline", "--target", "1", "--yes")
        assert res.exit_code == 1 and "add --force" in res.stderr
        res = fixoms(cfg, "sessions", "seqnum", "NOPE", "--offline", "--sender", "2", "--yes")
        assert res.exit_code == 1 and "no session 'NOPE'" in res.stderr
        audit = as_json(fixoms(cfg, "audit", "list", "--json"))
        assert any(r["summary"].get("action") == "sessions.seqnum" and r["summary"].get("offline") for r in audit)
        st.start_engine()
        # 500 on, give or take what the restart re-sends of its last batch (PossResend, stored for CLIENT1)
        assert 500 <= session(cfg, "CLIENT1")["next_sender_seq"] < 510
        assert before["next_sender_seq"] <= sender_before < 500
    finally:
        next(gen, None)
