"""Runs the pg_regress cases in tests/pg_regress against the session's cluster and shows the diff
when the output differs from tests/pg_regress/expected."""

import os
import pathlib
import subprocess

import pytest

REGRESS_DIR = pathlib.Path(__file__).resolve().parents[1] / "pg_regress"


def pg_regress_binary():
    pgbin = pathlib.Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
    candidates = [
        pgbin.parent / "lib/pgxs/src/test/regress/pg_regress",
        pathlib.Path("/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress"),
    ]
    for c in candidates:
        if c.exists():
            return c
    return None


def cases():
    return sorted(p.stem for p in (REGRESS_DIR / "sql").glob("*.sql"))


@pytest.mark.parametrize("case", cases())
def test_pg_regress(configured, make_db, tmp_path, case):
    make_db("sqlchat_probe")  # skips when the extension is not installed
    binary = pg_regress_binary()
    if binary is None:
        pytest.skip("pg_regress not found (Debian package postgresql-server-dev-15)")
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(tmp_path, 0o777)
    os.chmod(out, 0o777)
    cmd = [
        str(binary),
        f"--inputdir={REGRESS_DIR}",
        f"--outputdir={out}",
        f"--bindir={os.environ.get('PGBIN', '/usr/lib/postgresql/15/bin')}",
        "--host=127.0.0.1",
        f"--port={configured.port}",
        "--user=postgres",
        "--dbname=regression",
        case,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    diffs = out / "regression.diffs"
    detail = diffs.read_text() if diffs.exists() else ""
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{detail}"
