"""Statements that try to pin or bloat a backend, written by the 'model': expressions nested up to
and past the parser's limit, and rows far larger than sqlchat.max_result_bytes. Each ask ends
quickly with a clear answer or error, the backend stays alive, a cancel is honoured, and the
backend's peak memory stays near the byte cap. Figures go to results/bounds.json."""

import statistics
import threading
import time
from pathlib import Path

import psycopg
import pytest

import harness

SHAPES = {
    "left-deep sum": lambda n: "SELECT " + "1+" * n + "1 AS x",
    "unary minus": lambda n: "SELECT " + "-(" * n + "1" + ")" * n + " AS x",
    "nested calls": lambda n: "SELECT " + "abs(" * n + "1" + ")" * n + " AS x",
    "nested CASE": lambda n: "SELECT " + "CASE WHEN true THEN " * n + "1" + " END" * n + " AS x",
    "nested subqueries": lambda n: "SELECT " + "(SELECT " * n + "1" + ")" * n + " AS x",
    "nested arrays": lambda n: "SELECT (" + "ARRAY[" * n + "1" + "]" * n + ") IS NULL AS x",
}
DEPTHS = [100, 1000, 5000, 20000, 100000]


def peak_kb(pid):
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0])


@pytest.fixture(scope="module")
def db(make_db):
    return make_db("bounds", [harness.REPO / "demo" / "shop.sql"])


def test_deep_nesting_ends_quickly_with_a_clear_outcome(db, gw, connect):
    conn = connect(db)
    conn.execute("SET sqlchat.max_attempts = 1")
    conn.execute("SET sqlchat.enable_cache = off")
    figures, slow = [], []
    for shape, make in SHAPES.items():
        for depth in DEPTHS:
            gw.reset()
            gw.rule(purpose=["generate_sql", "repair"], content=make(depth))
            started = time.monotonic()
            try:
                conn.execute("SELECT sqlchat.ask('deep')")
                outcome = "answered"
            except psycopg.Error as e:
                outcome = e.sqlstate
            seconds = time.monotonic() - started
            assert conn.execute("SELECT 1").fetchone()[0] == 1
            figures.append({"shape": shape, "depth": depth, "outcome": outcome, "seconds": round(seconds, 3)})
            if seconds > 10:
                slow.append(figures[-1])
    harness.write_results("bounds", {"nesting": figures})
    worst = max(figures, key=lambda f: f["seconds"])
    print(f"\nnesting: {len(figures)} statements ({len(SHAPES)} shapes, depths {DEPTHS[0]}-{DEPTHS[-1]}); "
          f"slowest {worst['seconds']} s ({worst['shape']}, depth {worst['depth']}, {worst['outcome']}); "
          f"outcomes {sorted({f['outcome'] for f in figures})}")
    assert not slow, slow


def test_cancel_during_a_deep_statement(db, gw, connect, cluster):
    """The deepest statements: a cancel sent while the ask works on them ends it promptly."""
    conn = connect(db)
    conn.execute("SET sqlchat.max_attempts = 1")
    conn.execute("SET sqlchat.enable_cache = off")
    pid = conn.info.backend_pid
    admin = connect(db)
    latencies = []
    for shape in ("nested subqueries", "left-deep sum"):
        gw.reset()
        # The model takes 300 ms, then hands over the statement: the cancel lands during the work on it.
        gw.rule(purpose=["generate_sql", "repair"], content=SHAPES[shape](100000), delay_ms=300)
        for _ in range(3):
            done = {}

            def run():
                try:
                    conn.execute("SELECT sqlchat.ask('deep')")
                    done["outcome"] = "answered"
                except psycopg.Error as e:
                    done["outcome"] = e.sqlstate
                done["at"] = time.monotonic()

            t = threading.Thread(target=run)
            t.start()
            time.sleep(0.32)
            sent = time.monotonic()
            admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
            t.join(30)
            assert not t.is_alive()
            latencies.append(done["at"] - sent)
            assert conn.execute("SELECT 1").fetchone()[0] == 1
    print(f"\ncancel during deep statements: median {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")
    assert max(latencies) < 2.0, latencies


def test_huge_rows_stay_within_the_byte_cap(db, gw, connect):
    """40 values of 50 MB each: the backend fetches row by row and stops at sqlchat.max_result_bytes
    (16 MB by default), instead of holding max_rows + 1 rows first."""
    conn = connect(db)
    conn.execute("SET sqlchat.enable_cache = off")
    conn.execute("SET sqlchat.max_rows = 1000")
    pid = conn.info.backend_pid
    gw.rule(purpose=["generate_sql", "repair"], content="SELECT repeat('x', 50000000) AS big FROM generate_series(1, 40)")
    gw.rule(purpose="answer", content='{"answer": "Big.", "followups": []}')
    before = peak_kb(pid)
    row = conn.execute("SELECT a.truncated, jsonb_array_length(a.rows) FROM sqlchat.ask_full('big') a").fetchone()
    grown_mb = (peak_kb(pid) - before) / 1024
    print(f"\nhuge rows: truncated {row[0]}, rows kept {row[1]}, peak memory grew {grown_mb:.0f} MB")
    harness.write_results("bounds_memory", {"rows_of_50mb": 40, "rows_kept": row[1], "peak_growth_mb": round(grown_mb)})
    assert row[0] is True and row[1] == 0
    assert grown_mb < 600, grown_mb
