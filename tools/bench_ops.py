#!/usr/bin/env python3
"""Operations figures (printed, never pass/fail: the machine is shared and noisy, so medians and
ratios):

  overhead     `ask_full` at 0 ms gateway latency, median per ask with statistics and the
               interaction log both off, statistics only, and both on (interleaved in short
               blocks, in rotating order, so that machine noise hits all three alike); ratios
               to both off, of the medians and the median of the ratios per round
  agreement    over the same run, the statistics agree with the fake gateway's own request log
               (requests per purpose, prompt and completion tokens), repairs and replies without
               `usage` included
  rollback     100 asks inside transactions that roll back, and one that fails: asks counted by
               the statistics and rows kept in sqlchat.log
  concurrency  32 sessions asking at once: rows lost from sqlchat.log
  eval         a full run of tools/eval.py (every persona, against the fake gateway): the
               statistics, sqlchat.log and the gateway's request log compared (requests per
               purpose, tokens, asks and log rows); --eval quick runs `tools/eval.py --quick`,
               --eval none skips it
  explain      sqlchat.explain for three questions

    python3 tools/bench_ops.py [--asks N] [--eval full|quick|none] [--quick]

Results: results/ops_bench.json ($SQLCHAT_RESULTS_DIR overrides the directory). `make bench`
runs it with the optimised build.
"""

import argparse
import concurrent.futures
import importlib.util
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent / "tests" / "e2e"))

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
# What each setting turns on; all three are superuser settings, set per session here.
SETTINGS = {
    "off": {"sqlchat.track_stats": "off", "sqlchat.log_asks": "off"},
    "stats": {"sqlchat.track_stats": "on", "sqlchat.log_asks": "off"},
    "stats+log": {"sqlchat.track_stats": "on", "sqlchat.log_asks": "on"},
}


def apply(conn, setting):
    for name, value in SETTINGS[setting].items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))


def timed_block(conn, n, tag):
    times = []
    for i in range(n):
        start = time.perf_counter()
        conn.execute("SELECT * FROM sqlchat.ask_full(%s)", (f"total amount per city, {tag} {i}",)).fetchall()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def wait_until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def gateway_totals(requests):
    per_purpose = {}
    for r in requests:
        per_purpose[r["purpose"]] = per_purpose.get(r["purpose"], 0) + 1
    return {
        "requests_per_purpose": per_purpose,
        "prompt_tokens": sum(r["usage"]["prompt_tokens"] for r in requests if r["usage"]),
        "completion_tokens": sum(r["usage"]["completion_tokens"] for r in requests if r["usage"]),
        "replies_without_usage": sum(1 for r in requests if not r["usage"]),
    }


def stats_totals(conn, where="true"):
    """The statistics summed over the rows `where` picks (superusers see every database)."""
    per_purpose, totals = {}, {"asks": 0, "prompt_tokens": 0, "completion_tokens": 0, "estimated_tokens": 0,
                               "log_records_dropped": 0}
    for row in conn.execute(
        "SELECT llm_requests, asks, prompt_tokens, completion_tokens, "
        f"prompt_tokens_estimated + completion_tokens_estimated, log_records_dropped FROM sqlchat.stats WHERE {where}"
    ).fetchall():
        for k, v in row[0].items():
            if v:
                per_purpose[k] = per_purpose.get(k, 0) + v
        for key, value in zip(list(totals), row[1:]):
            totals[key] += value
    return {"requests_per_purpose": per_purpose, **totals}


def log_totals(cluster, databases, where="true"):
    """sqlchat.log summed over `databases`: rows, gateway requests per purpose (from the steps;
    llm_calls counts them all), tokens."""
    per_purpose, totals = {}, {"rows": 0, "llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for db in databases:
        with cluster.connect(db) as conn:
            row = conn.execute(f"SELECT count(*), coalesce(sum(llm_calls), 0), coalesce(sum(prompt_tokens), 0), "
                               f"coalesce(sum(completion_tokens), 0) FROM sqlchat.log WHERE {where}").fetchone()
            for key, value in zip(list(totals), row):
                totals[key] += int(value)
            for purpose, n in conn.execute(
                "SELECT substr(s->>'step', 5), count(*) FROM sqlchat.log, jsonb_array_elements(steps) s "
                f"WHERE s->>'step' LIKE 'llm:%%' AND {where} GROUP BY 1"
            ).fetchall():
                per_purpose[purpose] = per_purpose.get(purpose, 0) + n
    return {"requests_per_purpose": per_purpose, **totals}


def agreement(stats, log, gateway):
    return {
        "stats_match_gateway": stats["requests_per_purpose"] == gateway["requests_per_purpose"]
        and stats["prompt_tokens"] == gateway["prompt_tokens"]
        and stats["completion_tokens"] == gateway["completion_tokens"],
        # A row's tokens add reported and estimated ones: compared only when every reply had usage.
        "log_matches_gateway": log["requests_per_purpose"] == gateway["requests_per_purpose"]
        and log["llm_calls"] == sum(gateway["requests_per_purpose"].values())
        and (gateway["replies_without_usage"] > 0 or (log["prompt_tokens"], log["completion_tokens"])
             == (gateway["prompt_tokens"], gateway["completion_tokens"])),
        "log_rows_match_stats_asks": log["rows"] == stats["asks"],
    }


# ---- overhead, agreement, rollback, concurrency, explain --------------------------------------------


def shop_figures(args):
    gw = harness.Gateway()
    cluster = harness.Cluster()
    figures = {}
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
            apply(conn, "off")
            timed_block(conn, 20, "warm")
            conn.execute("SELECT sqlchat.stats_reset()")
            conn.execute("TRUNCATE sqlchat.log")
            gw.clear_requests()
            times = {name: [] for name in SETTINGS}
            # Short blocks in a rotating order, so that drift and bursts of load from other
            # processes hit every setting alike; ratios per round as well as of the medians.
            block, names, rounds = 10, list(SETTINGS), []
            for b in range(max(1, args.asks // block)):
                medians = {}
                for name in names[b % 3:] + names[:b % 3]:
                    apply(conn, name)
                    block_times = timed_block(conn, block, f"{name} {b}")
                    times[name] += block_times
                    medians[name] = statistics.median(block_times)
                rounds.append(medians)
            apply(conn, "stats+log")
            # Agreement: the asks counted (stats on) and these broken ones, repaired by a reply without usage.
            for i in range(20):
                conn.execute("SELECT sqlchat.ask(%s)", (f"broken question {i}",))
            counted = [r for r in gw.requests() if ", off " not in json.dumps(r["messages"])]
            gateway = gateway_totals(counted)
            stats = stats_totals(conn, "datname = current_database()")
            logged = [r for r in counted if ", stats " not in json.dumps(r["messages"])]
            wait_until(lambda: log_totals(cluster, ["ops_bench"])["rows"] >= len(times["stats+log"]) + 20)
            log = log_totals(cluster, ["ops_bench"])
            explained = [conn.execute("SELECT sqlchat.explain(%s)", (q,)).fetchone()[0] for q in EXPLAINED]
            conn.execute("SET sqlchat.engine = 'auto'")
            explained[1] = conn.execute("SELECT sqlchat.explain(%s)", (EXPLAINED[1],)).fetchone()[0]
        med = {name: statistics.median(t) for name, t in times.items()}
        figures["overhead"] = {
            "asks_per_setting": len(times["off"]),
            "ask_full_median_ms": {name: round(m, 3) for name, m in med.items()},
            "ratio_stats_to_off": round(med["stats"] / med["off"], 4),
            "ratio_stats_and_log_to_off": round(med["stats+log"] / med["off"], 4),
            "median_round_ratio_stats_to_off": round(statistics.median(r["stats"] / r["off"] for r in rounds), 4),
            "median_round_ratio_stats_and_log_to_off":
                round(statistics.median(r["stats+log"] / r["off"] for r in rounds), 4),
        }
        log_gateway = gateway_totals(logged)
        figures["agreement"] = {
            "gateway": gateway, "stats": stats, "log": log, "gateway_for_logged_asks": log_gateway,
            "stats_match_gateway": agreement(stats, log, gateway)["stats_match_gateway"],
            "log_matches_gateway": agreement(stats, log, log_gateway)["log_matches_gateway"],
        }
        figures["rollback"] = rollback_figures(cluster, gw)
        figures["concurrency"] = concurrency_figures(cluster, gw)
        figures["explain"] = dict(zip(EXPLAINED, explained))
    finally:
        cluster.stop()
        gw.stop()
    return figures


def rollback_figures(cluster, gw):
    gw.reset()
    gw.rule(purpose="generate_sql", contains="failing", content="SELECT nope FROM orders")
    gw.rule(purpose="generate_sql", content=SQL)
    with cluster.connect("ops_bench") as admin:
        admin.execute("CREATE ROLE bench_rollback LOGIN")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_rollback")
    with cluster.connect("ops_bench", user="bench_rollback", autocommit=False) as conn:
        for i in range(100):
            conn.execute("SELECT * FROM sqlchat.ask_full(%s)", (f"total amount per city, rolled back {i}",))
            conn.rollback()
        conn.execute("SET sqlchat.max_attempts = 1")
        try:
            conn.execute("SELECT sqlchat.ask('a failing question')")
        except Exception:  # noqa: BLE001 - the ERROR is the point
            pass
        conn.rollback()
    where = "role_name = 'bench_rollback'"
    wait_until(lambda: log_totals(cluster, ["ops_bench"], where)["rows"] >= 101, 30)
    with cluster.connect("ops_bench") as admin:
        stats = stats_totals(admin, "rolname = 'bench_rollback'")
    return {"asks_in_rolled_back_transactions": 100, "failing_asks": 1, "stats_asks": stats["asks"],
            "log_rows": log_totals(cluster, ["ops_bench"], where)["rows"]}


def concurrency_figures(cluster, gw, sessions=32, per_session=4):
    gw.reset()
    gw.rule(purpose="generate_sql", content=SQL)
    with cluster.connect("ops_bench") as admin:
        admin.execute("CREATE ROLE bench_concurrent LOGIN")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_concurrent")

    def session(i):
        with cluster.connect("ops_bench", user="bench_concurrent") as c:
            c.execute("SET sqlchat.enable_cache = off")
            for k in range(per_session):
                c.execute("SELECT sqlchat.ask(%s)", (f"total amount per city, session {i} ask {k}",))

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(sessions) as pool:
        list(pool.map(session, range(sessions)))
    asked_s = time.monotonic() - started
    where = "role_name = 'bench_concurrent'"
    expected = sessions * per_session
    wait_until(lambda: log_totals(cluster, ["ops_bench"], where)["rows"] >= expected, 30)
    rows = log_totals(cluster, ["ops_bench"], where)["rows"]
    with cluster.connect("ops_bench") as admin:
        dropped = stats_totals(admin, "rolname = 'bench_concurrent'")["log_records_dropped"]
    return {"sessions": sessions, "asks": expected, "log_rows": rows, "lost_rows": expected - rows,
            "dropped_and_counted": dropped, "asks_per_second": round(expected / asked_s, 1)}


# ---- a run of tools/eval.py -------------------------------------------------------------------------


def eval_figures(mode):
    """Runs tools/eval.py and compares, before its cluster stops, what the statistics, sqlchat.log
    and the fake gateway each saw."""
    spec = importlib.util.spec_from_file_location("sqlchat_eval", TOOLS / "eval.py")
    evalrun = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evalrun)
    kit = evalrun.kit
    original = kit.environment
    figures = {}

    @contextmanager
    def observed(settings=None):
        with original(settings) as (cluster, gw):
            seen = []
            reset = gw.reset

            def keep_then_reset():
                seen.extend(gw.requests())
                reset()

            gw.reset = keep_then_reset
            yield cluster, gw
            seen.extend(gw.requests())
            with cluster.connect() as conn:
                databases = [r[0] for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn").fetchall()]
            with_log = []
            for db in databases:
                with cluster.connect(db) as conn:
                    if conn.execute("SELECT to_regclass('sqlchat.log') IS NOT NULL").fetchone()[0]:
                        with_log.append(db)
            with cluster.connect(with_log[0]) as conn:
                stats = stats_totals(conn)
            wait_until(lambda: log_totals(cluster, with_log)["rows"] >= stats["asks"], 120)
            log = log_totals(cluster, with_log)
            gateway = gateway_totals(seen)
            figures.update({"gateway": gateway, "stats": stats, "log": log, **agreement(stats, log, gateway)})

    kit.environment = observed
    try:
        evalrun.main(["--quick"] if mode == "quick" else [])
    finally:
        kit.environment = original
    figures["command"] = "python3 tools/eval.py" + (" --quick" if mode == "quick" else "")
    return figures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asks", type=int, default=400, help="asks per setting for the overhead (default 400)")
    ap.add_argument("--eval", choices=["full", "quick", "none"], default="full", help="the eval run to compare")
    ap.add_argument("--quick", action="store_true", help="100 asks per setting and a quick eval (a smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.asks = min(args.asks, 100)
        args.eval = "quick" if args.eval == "full" else args.eval
    figures = shop_figures(args)
    if args.eval != "none":
        figures["eval"] = eval_figures(args.eval)
    harness.write_results("ops_bench", figures)
    print(json.dumps({k: v for k, v in figures.items() if k != "explain"}, indent=2))
    for q, e in figures["explain"].items():
        print(f"\n-- sqlchat.explain('{q}')\n{json.dumps(e, indent=2)}")


if __name__ == "__main__":
    main()
