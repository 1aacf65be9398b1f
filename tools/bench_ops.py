#!/usr/bin/env python3
"""Operations figures (printed, never pass/fail): the cost of statistics on `ask_full` at 0 ms
gateway latency (median per ask with sqlchat.track_stats on and off, interleaved in blocks so that
machine noise hits both alike), and whether the statistics agree with the fake gateway's own
request log (requests per purpose, prompt and completion tokens) over the same run, repairs and
replies without `usage` included. Also prints sqlchat.explain for three questions.

    python3 tools/bench_ops.py [--asks N]

Results: results/ops_bench.json ($SQLCHAT_RESULTS_DIR overrides the directory).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

import harness  # noqa: E402

SHOP = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(10,2), ordered_at date);
CREATE TABLE products (id int PRIMARY KEY, title text, price numeric);
INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['Oslo','Rome','Lima'])[1 + g % 3] FROM generate_series(1, 200) g;
INSERT INTO orders SELECT g, 1 + g % 200, (g * 7) % 100, date '2024-01-01' + g % 365 FROM generate_series(1, 5000) g;
"""
SQL = "SELECT c.city, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.city ORDER BY total DESC"
EXPLAINED = [
    "total order amount per customer city",
    "how many customers are there?",
    "which products cost the most?",
]


def timed_block(conn, n, tag):
    times = []
    for i in range(n):
        start = time.perf_counter()
        conn.execute("SELECT * FROM sqlchat.ask_full(%s)", (f"total amount per city, {tag} {i}",)).fetchall()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asks", type=int, default=400, help="asks per setting (default 400)")
    args = ap.parse_args(argv)
    gw = harness.Gateway()
    cluster = harness.Cluster()
    try:
        cluster.set_system({"sqlchat.api_base": gw.api_base, "sqlchat.api_key": harness.API_KEY,
                            "sqlchat.model": harness.MODEL})
        path = cluster.dir / "shop.sql"
        path.write_text(SHOP)
        cluster.create_database("ops_bench", [path])
        gw.rule(purpose="generate_sql", contains="broken", content="SELECT nope FROM orders")
        gw.rule(purpose="repair", content=SQL, usage=False)
        gw.rule(purpose="generate_sql", content=SQL)
        with cluster.connect("ops_bench") as conn:
            conn.execute("SET sqlchat.enable_cache = off")
            conn.execute("SELECT sqlchat.stats_reset()")
            timed_block(conn, 20, "warm")
            gw.clear_requests()
            conn.execute("SELECT sqlchat.stats_reset()")
            on, off = [], []
            block = 25
            for b in range(max(1, args.asks // block)):
                conn.execute("SET sqlchat.track_stats = on")
                on += timed_block(conn, block, f"on {b}")
                conn.execute("SET sqlchat.track_stats = off")
                off += timed_block(conn, block, f"off {b}")
            conn.execute("SET sqlchat.track_stats = on")
            # Agreement: only the 'on' asks and these were counted; count what the gateway saw for them.
            counted_before = len(gw.requests())
            for i in range(20):
                conn.execute("SELECT sqlchat.ask(%s)", (f"broken question {i}",))
            stats = conn.execute(
                "SELECT llm_requests, prompt_tokens, completion_tokens, prompt_tokens_estimated, "
                "completion_tokens_estimated, asks FROM sqlchat.stats WHERE rolname = current_user "
                "AND datname = current_database()"
            ).fetchone()
            requests = gw.requests()
            explained = [
                conn.execute("SELECT sqlchat.explain(%s)", (q,)).fetchone()[0] for q in EXPLAINED
            ]
            conn.execute("SET sqlchat.engine = 'auto'")
            explained[1] = conn.execute("SELECT sqlchat.explain(%s)", (EXPLAINED[1],)).fetchone()[0]
        on_asks = [r for r in requests[:counted_before] if "total amount per city, on" in json.dumps(r["messages"])]
        counted = on_asks + requests[counted_before:]
        per_purpose = {}
        for r in counted:
            per_purpose[r["purpose"]] = per_purpose.get(r["purpose"], 0) + 1
        gw_prompt = sum(r["usage"]["prompt_tokens"] for r in counted if r["usage"])
        gw_completion = sum(r["usage"]["completion_tokens"] for r in counted if r["usage"])
        without_usage = sum(1 for r in counted if not r["usage"])
        med_on, med_off = statistics.median(on), statistics.median(off)
        figures = {
            "asks_per_setting": len(on),
            "ask_full_median_ms_stats_on": round(med_on, 3),
            "ask_full_median_ms_stats_off": round(med_off, 3),
            "overhead_ratio": round(med_on / med_off, 4),
            "stats_requests_per_purpose": {k: v for k, v in stats[0].items() if v},
            "gateway_requests_per_purpose": per_purpose,
            "stats_prompt_tokens": stats[1], "gateway_prompt_tokens": gw_prompt,
            "stats_completion_tokens": stats[2], "gateway_completion_tokens": gw_completion,
            "replies_without_usage": without_usage,
            "stats_estimated_tokens": stats[3] + stats[4],
            "agree": {k: v for k, v in stats[0].items() if v} == per_purpose and stats[1] == gw_prompt
            and stats[2] == gw_completion,
            "explain": dict(zip(EXPLAINED, explained)),
        }
        harness.write_results("ops_bench", figures)
        print(json.dumps({k: v for k, v in figures.items() if k != "explain"}, indent=2))
        for q, e in figures["explain"].items():
            print(f"\n-- sqlchat.explain('{q}')\n{json.dumps(e, indent=2)}")
    finally:
        cluster.stop()
        gw.stop()


if __name__ == "__main__":
    main()
