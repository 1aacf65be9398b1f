"""The install and upgrade scripts pass pgspot (search_path and object-creation hazards in extension scripts)."""

import shutil
import subprocess
from pathlib import Path

import pytest

import harness


def installed_scripts():
    """The install and upgrade scripts in the extension directory of the PostgreSQL the tests run."""
    sharedir = subprocess.run([str(harness.PGBIN / "pg_config"), "--sharedir"], capture_output=True, text=True).stdout.strip()
    return sorted(Path(sharedir, "extension").glob("sqlchat--*.sql")) if sharedir else []


def test_pgspot_finds_nothing():
    if shutil.which("pgspot") is None:
        pytest.skip("pgspot is not installed (pip install -r tests/requirements.txt)")
    scripts = installed_scripts()
    if not scripts:
        pytest.skip("the sqlchat install script is not installed")
    assert any(s.name.count("--") == 2 for s in scripts), "the upgrade scripts are installed with the extension"
    for script in scripts:
        run = subprocess.run(["pgspot", str(script)], capture_output=True, text=True, timeout=120)
        assert "Errors: 0 Warnings: 0" in run.stdout, f"{script.name}: {run.stdout}"


def test_a_schema_planted_by_another_role_is_refused(configured, make_role, connect):
    hostile = make_role("hygiene_hostile")
    with connect() as admin:
        admin.execute("DROP DATABASE IF EXISTS hygiene WITH (FORCE)")
        admin.execute("CREATE DATABASE hygiene")
    conn = connect("hygiene")
    if conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'sqlchat'").fetchone()[0] == 0:
        pytest.skip("the sqlchat extension is not installed")
    conn.execute(f"CREATE SCHEMA sqlchat AUTHORIZATION {hostile}")
    with pytest.raises(Exception) as e:
        conn.execute("CREATE EXTENSION sqlchat")
    assert getattr(e.value, "sqlstate", None) == "42P06"
    conn.execute("DROP SCHEMA sqlchat")
    conn.execute("CREATE EXTENSION sqlchat")
