#!/usr/bin/env python3
"""Figures of the gateway client under faults, against the fake gateway and a private cluster:
cancel latency (pg_cancel_backend -> client error) per hang type, statement_timeout overshoot,
N calls in one backend (RSS, fds, threads at start and end), fault scenarios x repetitions with
crashes counted. Writes $SQLCHAT_RESULTS_DIR/faults.json and prints it. Never fails on figures.

    PGBIN=... python3 tools/bench_faults.py [--quick] [--reps N] [--calls N]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import faults  # noqa: E402
import harness  # noqa: E402

SQL = "SELECT count(*) FROM widgets"
GEN = "generate_sql"


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] * 1000, 1)


def summary(values):
    return {"n": len(values), "p50_ms": pct(values, 50), "p95_ms": pct(values, 95), "p99_ms": pct(values, 99),
            "max_ms": pct(values, 100)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--reps", type=int, default=None, help="cancels per hang type")
    ap.add_argument("--calls", type=int, default=None, help="calls in one backend")
    args = ap.parse_args()
    reps = args.reps or (5 if args.quick else 50)
    calls = args.calls or (300 if args.quick else 10_000)
    fault_reps = 2 if args.quick else 10

    gw = harness.Gateway()
    cluster = harness.Cluster()
    figures = {"pg_major": 15, "reps": reps}
    try:
        cluster.set_system({"sqlchat.api_base": gw.api_base, "sqlchat.api_key": harness.API_KEY,
                            "sqlchat.model": harness.MODEL})
        db = cluster.create_database("bench_faults")
        with cluster.connect(db) as c:
            c.execute(faults.TABLE_SQL)
        admin = cluster.connect()
        canary = cluster.connect(db)

        # Cancel latency per hang type.
        latencies = {}
        sqlstates = {}
        disconnects = {}
        for kind in faults.HANGS:
            values, states, seen = [], {}, 0
            for _ in range(reps):
                gw.reset()
                conn = faults.prepare(cluster.connect(db))
                closers = []
                check = faults.setup_hang(kind, gw, conn, closers)
                pid = conn.info.backend_pid
                out, done, _ = faults.call_in_thread(conn)
                faults.wait_backend_state(admin, pid)
                time.sleep(0.05)
                values.append(faults.cancel_and_time(admin, pid, out, done))
                states[out.sqlstate] = states.get(out.sqlstate, 0) + 1
                seen += bool(check and check())
                conn.close()
                for c in closers:
                    c()
            latencies[kind] = summary(values)
            sqlstates[kind] = states
            disconnects[kind] = f"{seen}/{reps}" if kind not in ("backoff", "connect") else "n/a"
        figures["cancel_latency"] = latencies
        figures["cancel_sqlstates"] = sqlstates
        figures["upstream_saw_disconnect"] = disconnects

        # statement_timeout overshoot.
        over = []
        gw.reset()
        gw.rule(purpose=GEN, fault="hang_before_headers")
        conn = faults.prepare(cluster.connect(db), {"statement_timeout": "500"})
        for _ in range(reps):
            started = time.monotonic()
            out = faults.call(conn, savepoint=False)
            over.append(time.monotonic() - started - 0.5)
            assert out.sqlstate == "57014", out.message
        conn.close()
        figures["statement_timeout_overshoot"] = summary(over)

        # Many calls in one backend.
        gw.reset()
        gw.rule(purpose=GEN, content=SQL)
        conn = faults.prepare(cluster.connect(db))
        pid = conn.info.backend_pid
        for _ in range(20):
            faults.call(conn, savepoint=False)
        start = faults.proc_status(pid)
        t0 = time.monotonic()
        errors = 0
        for _ in range(calls):
            errors += faults.call(conn, savepoint=False).error is not None
        elapsed = time.monotonic() - t0
        end = faults.proc_status(pid)
        figures["many_calls"] = {"calls": calls, "errors": errors, "start": start, "end": end,
                                 "ms_per_call": round(elapsed / calls * 1000, 2)}
        conn.close()

        # Fault scenarios x repetitions: crashes and SQLSTATEs.
        scenarios = [{"fault": f} for f in ("truncated_json", "malformed_json", "wrong_shape", "empty_choices",
                                             "tool_calls", "invalid_utf8", "reset_mid_body", "redirect")]
        scenarios += [{"fault": "huge", "size_mb": 50}] + [{"status": s} for s in (401, 429, 500, 502, 503)]
        log_before = len(cluster.server_log())
        results = {}
        for spec in scenarios:
            name = json.dumps(spec, sort_keys=True)
            seen = {}
            for _ in range(fault_reps):
                gw.reset()
                gw.rule(purpose=GEN, **spec)
                conn = faults.prepare(cluster.connect(db))
                out = faults.call(conn)
                faults.finish(conn, out)
                seen[out.sqlstate] = seen.get(out.sqlstate, 0) + 1
                conn.close()
            results[name] = seen
        figures["fault_scenarios"] = {"scenarios": len(scenarios), "reps": fault_reps, "sqlstates": results,
                                      "crash_log_lines": len(faults.crash_lines(cluster.server_log()[log_before:])),
                                      "canary_alive": canary.execute("SELECT 1").fetchone()[0] == 1}
        admin.close()
        canary.close()
    finally:
        cluster.stop()
        gw.stop()
    out = harness.results_dir() / "faults.json"
    out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
