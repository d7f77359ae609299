"""`fixoms run --standby`, [ha] and `fixoms ha status` on SQLite: refused with one line and a non-zero exit
(a standby needs the primary's journal on a server it can reach)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _fixoms(tmp: Path, *args: str, toml: str = "") -> subprocess.CompletedProcess[str]:
    config = tmp / "fixoms.toml"
    config.write_text(f'[engine]\nvar_dir = "var"\n[database]\nurl = "sqlite:///{tmp}/j.db"\n{toml}')
    return subprocess.run([sys.executable, "-m", "fixoms.cli", "--config", str(config), *args], cwd=tmp,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_run_standby_on_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    done = _fixoms(tmp_path, "run", "--standby")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: high availability") and "PostgreSQL" in lines[0], done.stderr


def test_ha_enabled_in_the_config_on_sqlite_is_refused(tmp_path: Path) -> None:
    done = _fixoms(tmp_path, "run", toml="[ha]\nenabled = true\n")
    assert done.returncode != 0
    assert done.stderr.strip().startswith("error: high availability") and len(done.stderr.strip().splitlines()) == 1


def test_ha_status_on_sqlite_is_refused(tmp_path: Path) -> None:
    done = _fixoms(tmp_path, "ha", "status")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: high availability needs the journal on PostgreSQL: sqlite has no lease to show"]


def test_a_lease_renewed_too_rarely_is_a_config_error(tmp_path: Path) -> None:
    done = _fixoms(tmp_path, "run", "--standby", toml="[ha]\nlease_s = 1\nrenew_s = 0.8\n")
    assert done.returncode != 0
    assert "renew_s (0.8) must be at most half of lease_s (1)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
