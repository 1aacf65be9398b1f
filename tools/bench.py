#!/usr/bin/env python3
"""Benchmarks of sqlchat with no LLM account: figures, never pass/fail. The installed extension runs
in a private cluster; the fake gateway answers every request with the gold SQL of the defog questions
(or a canned answer) after a chosen latency.

  overhead     wall time of ask_full over the time spent waiting on the gateway at 100 and 500 ms
               latency (median over the defog questions), and absolute time at 0 ms latency
  baseline     the least any client needs for the same work: one chat call (an HTTP POST from
               Python) plus running the returned SQL over psycopg; sqlchat's time as a ratio to it
  catalog      introspection and ask time with ~100, ~1,000 and ~10,000 tables: the first call ever
               (no snapshot of the catalog yet), cold (first call in a new backend after DDL: the
               snapshot is checked against the system catalogs' fingerprint), cold with the library in
               shared_preload_libraries (the shared generation vouches for the snapshot), and warm;
               prompt tokens and gold-table recall with each defog database among the 876 Spider tables
  concurrency  1, 8 and 32 sessions asking at once at 200 ms latency: throughput against the ideal

Results: results/bench.json and results/bench.md ($SQLCHAT_RESULTS_DIR overrides the directory).

    python3 tools/bench.py [--data DIR] [--quick]
"""

import argparse
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "eval"))

import evalkit as kit  # noqa: E402
from resultcmp import compare_any, fetch_result, from_objects  # noqa: E402
from test_defog import asked_text, gold_results  # noqa: E402

ANSWER_REPLY = json.dumps({"answer": "Here is what the query returned.", "followups": ["And last year?"]})
CATALOG_SQL = (kit.REPO / "sql" / "catalog.sql").read_text()
FULL = {
    "latencies_ms": [0, 100, 500],
    "every_nth_at_500": 2,  # half the questions at 500 ms keeps the run within minutes
    "scales": [100, 1000, 10000],
    "scale_questions": 5,
    "sessions": [1, 8, 32],
    "asks_per_session": 3,
    "concurrency_latency_ms": 200,
}
QUICK = {
    "latencies_ms": [0, 100],
    "every_nth_at_500": 1,
    "scales": [100],
    "scale_questions": 2,
    "sessions": [1, 4],
    "asks_per_session": 1,
    "concurrency_latency_ms": 200,
}
QUICK_QUESTIONS = 4
SYNTHETIC_TABLES_PER_SCHEMA = 10
SYNTHETIC_NOUNS = [
    "account", "invoice", "shipment", "supplier", "warehouse", "employee", "ticket", "campaign", "device",
    "contract", "payment", "product", "region", "visit", "order_line", "vehicle", "policy", "claim", "course",
    "patient", "booking", "asset", "sensor", "reading", "branch", "loan", "store", "review", "project", "task",
]
SYNTHETIC_PREFIXES = ["ops", "crm", "erp", "hr", "fin", "iot", "edu", "med", "log", "mkt", "sales", "legal"]


def log(message):
    kit.log(f"bench: {message}")


# ---- scripting the gateway --------------------------------------------------------------------------


def script_gateway(gw, questions, latency_ms):
    """Every question's gold SQL (fenced) and a canned answer, each after `latency_ms`."""
    gw.reset()
    rules = [
        {
            "purpose": "generate_sql",
            "regex": kit.question_pattern(q["question"]),
            "content": f"```sql\n{q['gold_sql_alternatives'][0]}\n```",
            "delay_ms": latency_ms,
        }
        for q in questions
    ]
    rules.append({"purpose": "answer", "content": ANSWER_REPLY, "delay_ms": latency_ms})
    gw.rules(rules)


def chat(gw, purpose, content):
    """One chat completion over HTTP, as any client would make it; returns the reply text."""
    body = json.dumps({
        "model": kit.harness.MODEL,
        "messages": [
            {"role": "system", "content": "Answer as instructed."},
            {"role": "user", "content": content},
        ],
        "temperature": 0,
    }).encode()
    request = urllib.request.Request(
        gw.api_base + "/chat/completions",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {kit.harness.API_KEY}",
                 "X-Sqlchat-Purpose": purpose},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


def baseline_ask(gw, conn, q):
    """The least work for the same result: one chat completion for the SQL, then the SQL run over
    psycopg; and that plus a second call to word the answer, as sqlchat does. Returns both in ms."""
    started = time.monotonic()
    reply = chat(gw, "generate_sql", asked_text(q))
    sql = re.sub(r"^```\w*\n|\n```$", "", reply.strip())
    result = fetch_result(conn, sql)
    one_call = (time.monotonic() - started) * 1000.0
    chat(gw, "answer", f"{asked_text(q)}\n{json.dumps(result.rows[:20], default=str)}")
    return one_call, (time.monotonic() - started) * 1000.0


# ---- the offline engine against one gateway round trip -----------------------------------------------


def offline_timing(gw, connections, questions, latency_ms=100):
    """Time per offline answer (ask_full's elapsed_ms, questions it answers) against one chat round trip
    to the fake gateway at `latency_ms`, measured from Python."""
    gw.reset()
    gw.rule(purpose="generate_sql", content="SELECT 1", delay_ms=latency_ms)
    round_trips = []
    for _ in range(5):
        started = time.monotonic()
        chat(gw, "generate_sql", "a question")
        round_trips.append((time.monotonic() - started) * 1000.0)
    answered = []
    for conn in connections.values():
        conn.execute("SET sqlchat.engine = 'offline'")
    for q in questions:
        row, error, _ = kit.ask_full(connections[q["db_name"]], asked_text(q))
        if row is not None and row["sql"] is not None:
            answered.append(row["elapsed_ms"])
    for conn in connections.values():
        conn.execute("RESET sqlchat.engine")
    offline_ms = kit.median(answered) if answered else None
    round_trip_ms = kit.median(round_trips)
    return {
        "answered": len(answered),
        "questions": len(questions),
        "offline_answer_ms_median": None if offline_ms is None else round(offline_ms, 2),
        "gateway_round_trip_ms_median": round(round_trip_ms, 2),
        "latency_ms": latency_ms,
        "ratio": None if offline_ms is None else round(offline_ms / round_trip_ms, 4),
    }


# ---- (a) and (b): overhead and baseline -------------------------------------------------------------


def overhead(gw, connections, questions, latencies, every_nth_at_500):
    """Per latency, question by question: ask_full and the baselines."""
    script_gateway(gw, questions, 0)
    for conn in connections.values():  # the catalog is loaded once per backend; measured in catalog scale
        conn.execute("SELECT sqlchat.generate_sql(%s)", (asked_text(questions[0]),))
    figures = {}
    for latency in latencies:
        subset = questions[::every_nth_at_500] if latency >= 500 else questions
        log(f"overhead at {latency} ms gateway latency ({len(subset)} questions)")
        script_gateway(gw, subset, latency)
        rows = []
        for q in subset:
            conn = connections[q["db_name"]]
            row, error, wall_ms = kit.ask_full(conn, asked_text(q))
            one_call, two_calls = baseline_ask(gw, conn, q)
            rows.append({
                "id": q["id"],
                "wall_ms": round(wall_ms, 2),
                "elapsed_ms": round(row["elapsed_ms"], 2) if row else None,
                "llm_calls": row["llm_calls"] if row else None,
                "error": error,
                "match": row is not None and bool(compare_any(gold_results(conn, q), from_objects(row["rows"]))),
                "baseline_ms": round(one_call, 2),
                "baseline_with_answer_call_ms": round(two_calls, 2),
            })
            gw.clear_requests()
        figures[str(latency)] = {**summarize_overhead(rows, latency), "records": rows}
    return figures


def summarize_overhead(rows, latency):
    ok = [r for r in rows if r["error"] is None]
    waits = [latency * r["llm_calls"] for r in ok]
    return {
        "questions": len(rows),
        "errors": len(rows) - len(ok),
        "execution_match": sum(1 for r in ok if r["match"]),
        "llm_calls_median": kit.median([r["llm_calls"] for r in ok]),
        "wall_ms_median": kit.rounded(kit.median([r["wall_ms"] for r in ok])),
        "wall_ms_p90": kit.rounded(kit.percentile([r["wall_ms"] for r in ok], 0.9)),
        "elapsed_ms_median": kit.rounded(kit.median([r["elapsed_ms"] for r in ok])),
        "outside_gateway_ms_median": kit.rounded(kit.median([r["wall_ms"] - w for r, w in zip(ok, waits)])),
        "wall_over_wait_median": kit.rounded(kit.median([r["wall_ms"] / w for r, w in zip(ok, waits) if w]), 4),
        "baseline_ms_median": kit.rounded(kit.median([r["baseline_ms"] for r in rows])),
        "ratio_to_baseline_median": kit.rounded(kit.median([r["wall_ms"] / r["baseline_ms"] for r in ok]), 3),
        "baseline_with_answer_call_ms_median": kit.rounded(kit.median([r["baseline_with_answer_call_ms"] for r in rows])),
        "ratio_to_baseline_with_answer_call_median": kit.rounded(
            kit.median([r["wall_ms"] / r["baseline_with_answer_call_ms"] for r in ok]), 3
        ),
    }


# ---- (c): catalog scale -----------------------------------------------------------------------------


def spider_blocks(path):
    """The Spider file as its preamble, (schema DDL, table count) blocks, and the foreign keys
    that close it."""
    text = path.read_text()
    head, _, rest = text.partition("CREATE SCHEMA")
    body, cut, foreign_keys = ("CREATE SCHEMA" + rest).partition("\nALTER TABLE")
    blocks = ["CREATE SCHEMA" + b + "\n" for b in body.split("\nCREATE SCHEMA")]
    blocks[0] = blocks[0][len("CREATE SCHEMA"):]
    return head, [(b, b.count("CREATE TABLE")) for b in blocks], cut.lstrip("\n") + foreign_keys


def synthetic_schemas(tables):
    """DDL for `tables` synthetic tables in schemas of up to ten, each table keyed and all but the
    first of a schema with a foreign key to a sibling; one transaction per schema keeps the lock
    table small."""
    out = ["SET client_min_messages = warning;"]
    s = 0
    while tables > 0:
        schema = f"{SYNTHETIC_PREFIXES[s % len(SYNTHETIC_PREFIXES)]}_{s:05d}"
        out.append(f"BEGIN; CREATE SCHEMA {schema};")
        names = [SYNTHETIC_NOUNS[(s * 7 + t) % len(SYNTHETIC_NOUNS)] for t in range(min(SYNTHETIC_TABLES_PER_SCHEMA, tables))]
        for t, name in enumerate(names):
            fk = f", {names[t - 1]}_id bigint REFERENCES {schema}.{names[t - 1]}(id)" if t else ""
            out.append(
                f"CREATE TABLE {schema}.{name} (id bigint PRIMARY KEY, name text, status text, "
                f"created_at timestamptz, amount numeric(12,2){fk});"
            )
        out.append("COMMIT;")
        tables -= len(names)
        s += 1
    return "\n".join(out) + "\n"


def table_count(cluster, dbname):
    with cluster.connect(dbname) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'sqlchat') "
            "AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchone()[0]


def build_scale_databases(cluster, data, scales, work):
    """Databases of about each size in `scales`, all holding defog's academic database: the first
    Spider schemas up to 100, all 876 Spider tables plus synthetic ones beyond. Returns {size: name}."""
    head, blocks, foreign_keys = spider_blocks(data / "scale" / "spider_166_schemas.sql")
    academic = kit.defog_files(data, "academic")
    made = {}
    spider_all = None
    for size in sorted(scales):
        name = f"scale_{size}"
        if size <= 100:
            kit.load_database(cluster, name, academic, extension=False)
            chosen, total = [], table_count(cluster, name)
            for block, count in blocks:
                if total + count > size:
                    break
                chosen.append(block)
                total += count
            subset = work / f"spider_{size}.sql"
            subset.write_text(head + "".join(chosen) + foreign_keys)
            kit.run_sql_file_ignoring_errors(cluster, name, subset)
        else:
            if spider_all is None:
                spider_all = kit.load_database(cluster, "scale_spider", academic, extension=False)
                failed = kit.run_sql_file_ignoring_errors(cluster, spider_all, data / "scale" / "spider_166_schemas.sql")
                log(f"Spider schemas loaded ({failed} statements failed, as expected)")
            kit.load_database(cluster, name, [], template=spider_all, extension=False)
        missing = size - table_count(cluster, name)
        if missing > 0:
            synthetic = work / f"synthetic_{size}.sql"
            synthetic.write_text(synthetic_schemas(missing))
            started = time.monotonic()
            cluster.psql_file(name, synthetic)
            log(f"{missing} synthetic tables created in {time.monotonic() - started:.1f} s")
        kit.harness.create_extension(cluster, name)
        made[size] = name
    return made


def timed(conn, query, params=None):
    started = time.monotonic()
    result = conn.execute(query, params).fetchone()
    return (time.monotonic() - started) * 1000.0, result


def cold_generate_sql(cluster, dbname, academic, after_ddl=True):
    """generate_sql in a new backend (right after DDL, which every backend's cache notices), median ms."""
    cold = []
    for q in academic:
        if after_ddl:
            with cluster.connect(dbname) as ddl:
                ddl.execute("CREATE TABLE bench_touch (id int); DROP TABLE bench_touch")
        with kit.connect(cluster, dbname) as conn:
            ms, _ = timed(conn, "SELECT sqlchat.generate_sql(%s)", (asked_text(q),))
            cold.append(ms)
    return kit.rounded(kit.median(cold))


def restart_preloaded(cluster):
    """Restarts the cluster with shared_preload_libraries = 'sqlchat' (same data, same port)."""
    script = str(kit.harness.CLUSTER_SCRIPT)
    subprocess.run(["bash", script, "stop", str(cluster.dir)], check=True, capture_output=True, timeout=120)
    subprocess.run(["bash", script, "start", str(cluster.dir), str(cluster.port), "shared_preload_libraries=sqlchat"],
                   check=True, capture_output=True, timeout=180)


def catalog_scale(cluster, gw, data, questions, scales, n_questions, work):
    """Per size: the introspection query alone and generate_sql (catalog, table selection, prompt,
    one gateway call at 0 ms) on the first call ever, cold, cold with the library preloaded, warm."""
    databases = build_scale_databases(cluster, data, scales, work)
    academic = [q for q in questions if q["db_name"] == "academic"][:n_questions]
    script_gateway(gw, academic, 0)
    figures = {}
    for size, dbname in databases.items():
        tables = table_count(cluster, dbname)
        cold, warm, intro_cold, intro_warm, tokens, recalls = [], [], [], [], [], []
        with kit.connect(cluster, dbname) as conn:
            first_ever, _ = timed(conn, "SELECT sqlchat.generate_sql(%s)", (asked_text(academic[0]),))
        for q in academic:
            with cluster.connect(dbname) as ddl:  # any DDL invalidates every backend's catalog cache
                ddl.execute("CREATE TABLE bench_touch (id int); DROP TABLE bench_touch")
            with cluster.connect(dbname) as conn:
                ms, _ = timed(conn, CATALOG_SQL)
                intro_cold.append(ms)
                ms, (catalog_json,) = timed(conn, CATALOG_SQL)
                intro_warm.append(ms)
            with kit.connect(cluster, dbname) as conn:
                gw.clear_requests()
                ms, _ = timed(conn, "SELECT sqlchat.generate_sql(%s)", (asked_text(q),))
                cold.append(ms)
                ms, _ = timed(conn, "SELECT sqlchat.generate_sql(%s)", (asked_text(q),))
                warm.append(ms)
                row, _, _ = kit.ask_full(conn, asked_text(q))
                if row:
                    recalls.append(kit.recall_precision(row["tables"], q["gold_tables"])[0])
            generation = gw.requests("generate_sql")
            if generation:
                tokens.append(kit.message_tokens(generation[0]["messages"]))
        figures[str(size)] = {
            "tables": tables,
            "catalog_json_kb": round(len(catalog_json) / 1024, 1),
            "introspection_query_ms": {"cold": kit.rounded(kit.median(intro_cold)), "warm": kit.rounded(kit.median(intro_warm))},
            "generate_sql_ms": {
                "first_ever": kit.rounded(first_ever),
                "cold": kit.rounded(kit.median(cold)),
                "warm": kit.rounded(kit.median(warm)),
            },
            "generate_prompt_tokens_median": kit.median(tokens),
            "gold_table_recall_mean": kit.rounded(kit.mean(recalls), 4),
            "questions": len(academic),
        }
        log(f"catalog with {tables} tables: {figures[str(size)]}")
    restart_preloaded(cluster)
    for size, dbname in databases.items():
        figures[str(size)]["generate_sql_ms"]["cold_preloaded"] = cold_generate_sql(cluster, dbname, academic)
        figures[str(size)]["generate_sql_ms"]["new_backend_preloaded"] = cold_generate_sql(
            cluster, dbname, academic, after_ddl=False
        )
        log(f"catalog with {figures[str(size)]['tables']} tables, library preloaded: {figures[str(size)]['generate_sql_ms']}")
    return figures


def embedded_recall(cluster, gw, data, questions, databases):
    """Each defog database among the 876 Spider tables: prompt tokens of generate_sql and gold-table
    recall of the schema context, over its answerable questions."""
    spider = "embed_spider"
    kit.load_database(cluster, spider, [], extension=False)
    kit.run_sql_file_ignoring_errors(cluster, spider, data / "scale" / "spider_166_schemas.sql")
    script_gateway(gw, questions, 0)
    per_db, records = {}, []
    for db in databases:
        name = kit.load_database(cluster, f"embed_{db}", kit.defog_files(data, db), template=spider)
        tables = table_count(cluster, name)
        with kit.connect(cluster, name) as conn:
            for q in (q for q in questions if q["db_name"] == db):
                gw.clear_requests()
                row, error, _ = kit.ask_full(conn, asked_text(q))
                generation = gw.requests("generate_sql")
                recall = kit.recall_precision(row["tables"], q["gold_tables"])[0] if row else None
                match = row is not None and bool(compare_any(gold_results(conn, q), from_objects(row["rows"])))
                records.append({
                    "id": q["id"], "db": db, "recall": recall, "match": match, "error": error,
                    "tables_sent": len(row["tables"] or []) if row else None,
                    "prompt_tokens": kit.message_tokens(generation[0]["messages"]) if generation else None,
                })
        mine = [r for r in records if r["db"] == db]
        per_db[db] = {"tables": tables, **recall_figures(mine)}
        log(f"{db} among Spider's tables: {per_db[db]}")
    return {"all": recall_figures(records), "per_database": per_db, "records": records}


def recall_figures(records):
    recalls = [r["recall"] for r in records if r["recall"] is not None]
    tokens = [r["prompt_tokens"] for r in records if r["prompt_tokens"] is not None]
    return {
        "questions": len(records),
        "gold_table_recall_mean": kit.rounded(kit.mean(recalls), 4),
        "full_recall_share": kit.rate(sum(1 for x in recalls if x == 1.0), len(recalls)),
        "prompt_tokens_median": kit.median(tokens),
        "prompt_tokens_p90": kit.percentile(tokens, 0.9),
        "prompt_tokens_max": max(tokens) if tokens else None,
        "tables_sent_median": kit.median([r["tables_sent"] for r in records]),
        "execution_match": sum(1 for r in records if r["match"]),
        "errors": sum(1 for r in records if r["error"]),
    }


# ---- (d): concurrency -------------------------------------------------------------------------------


def concurrency(cluster, gw, dbname, questions, sessions_list, asks_per_session, latency_ms):
    script_gateway(gw, questions, latency_ms)
    figures = {}
    for sessions in sessions_list:
        connections = [kit.connect(cluster, dbname) for _ in range(sessions)]
        for conn in connections:  # load the catalog outside the timing, as a pooled session would have
            conn.execute("SELECT sqlchat.generate_sql(%s)", (asked_text(questions[0]),))
        gw.clear_requests()
        barrier = threading.Barrier(sessions + 1)
        outcomes = []
        lock = threading.Lock()

        def session(index, conn):
            barrier.wait()
            for k in range(asks_per_session):
                q = questions[(index + k) % len(questions)]
                row, error, wall_ms = kit.ask_full(conn, asked_text(q))
                with lock:
                    outcomes.append({"error": error, "wall_ms": wall_ms, "llm_calls": row["llm_calls"] if row else None})

        threads = [threading.Thread(target=session, args=(i, c)) for i, c in enumerate(connections)]
        for t in threads:
            t.start()
        barrier.wait()
        started = time.monotonic()
        for t in threads:
            t.join()
        wall_s = time.monotonic() - started
        for conn in connections:
            conn.close()
        calls = kit.median([o["llm_calls"] for o in outcomes]) or 2
        ideal = sessions / (calls * latency_ms / 1000.0)
        throughput = len(outcomes) / wall_s
        errors = [o["error"] for o in outcomes if o["error"]]
        figures[str(sessions)] = {
            "asks": len(outcomes),
            "wall_s": round(wall_s, 2),
            "llm_calls_per_ask": calls,
            "throughput_asks_per_s": round(throughput, 2),
            "ideal_asks_per_s": round(ideal, 2),
            "share_of_ideal": round(throughput / ideal, 3),
            "ask_ms_median": kit.rounded(kit.median([o["wall_ms"] for o in outcomes])),
            "ask_ms_p90": kit.rounded(kit.percentile([o["wall_ms"] for o in outcomes], 0.9)),
            "errors": len(errors),
            "error_examples": errors[:3],
        }
        log(f"{sessions} session(s): {figures[str(sessions)]}")
    return figures


# ---- report -----------------------------------------------------------------------------------------


def markdown(report):
    lines = [
        "# sqlchat benchmarks",
        "",
        f"Command: `{report['command']}` ({report['duration_s']} s)  ",
        f"Machine: {kit.machine_line(report['machine'])}",
        "",
        "The fake gateway replies after the given latency to every request; times are measured by the client",
        "(psycopg) around `sqlchat.ask_full`.",
        "",
        "## Overhead and baseline",
        "",
    ]
    rows = [
        [f"{latency} ms", f["questions"], kit.number(f["llm_calls_median"]), f["wall_ms_median"], f["wall_ms_p90"],
         f["outside_gateway_ms_median"], "n/a" if f["wall_over_wait_median"] is None else f["wall_over_wait_median"],
         f["baseline_ms_median"], f["ratio_to_baseline_median"], f["baseline_with_answer_call_ms_median"],
         f["ratio_to_baseline_with_answer_call_median"], f"{f['execution_match']}/{f['questions']}", f["errors"]]
        for latency, f in report["overhead"].items()
    ]
    lines.append(kit.markdown_table(
        ["latency", "questions", "LLM calls", "ask_full ms (median)", "(p90)", "outside gateway ms (median)",
         "wall / waiting (median)", "baseline ms", "ratio to baseline", "baseline + answer call ms",
         "ratio to it", "execution match", "errors"], rows))
    lines += ["", "Waiting = LLM calls x latency. Baseline: one chat call (HTTP POST from Python) plus running the returned",
              "SQL over psycopg; ask_full also makes a second call to word the answer, hence the second baseline.", ""]
    o = report["offline"]
    lines += ["## Offline engine", "",
              f"{o['answered']} of {o['questions']} questions answered with no LLM; time per answer (ask_full's elapsed_ms, "
              f"median) {o['offline_answer_ms_median']} ms against {o['gateway_round_trip_ms_median']} ms for one round trip "
              f"to the fake gateway at {o['latency_ms']} ms: ratio {o['ratio']}.", ""]
    lines += ["## Catalog scale", ""]
    rows = [
        [f["tables"], f["catalog_json_kb"], f["introspection_query_ms"]["cold"], f["introspection_query_ms"]["warm"],
         f["generate_sql_ms"].get("first_ever"), f["generate_sql_ms"]["cold"], f["generate_sql_ms"].get("cold_preloaded"),
         f["generate_sql_ms"].get("new_backend_preloaded"), f["generate_sql_ms"]["warm"], kit.number(f["generate_prompt_tokens_median"]), kit.pct(f["gold_table_recall_mean"])]
        for f in report["catalog_scale"].values()
    ]
    lines.append(kit.markdown_table(
        ["tables", "catalog JSON KB", "introspection query ms (cold)", "(warm)", "generate_sql ms (first ever)",
         "(cold)", "(cold, preloaded)", "(new backend, preloaded)", "(warm)", "prompt tokens", "gold-table recall"], rows))
    lines += ["", "generate_sql at 0 ms latency: catalog, table selection, prompt and one gateway call. First ever = no",
              "snapshot of the catalog yet (introspection and index); cold = first call in a new backend after DDL (the",
              "snapshot is checked against a fingerprint of the system catalogs); preloaded = the same with",
              "shared_preload_libraries = 'sqlchat'; new backend, preloaded = a new backend with no DDL since the",
              "last one (the shared generation vouches for the snapshot, no fingerprint query). Academic questions",
              "with the academic database among the other tables.", ""]
    e = report["embedded"]
    rows = [[db, f["tables"], f["questions"], kit.pct(f["gold_table_recall_mean"]), kit.pct(f["full_recall_share"]),
             kit.number(f["prompt_tokens_median"]), f["prompt_tokens_p90"], f["prompt_tokens_max"], f["execution_match"]]
            for db, f in [*e["per_database"].items(), ("all", {**e["all"], "tables": ""})]]
    lines += ["Each defog database among Spider's 876 tables (target: recall >= 95% with <= 4,000 prompt tokens):", ""]
    lines.append(kit.markdown_table(
        ["database", "tables", "questions", "recall (mean)", "full recall", "prompt tokens (median)", "(p90)", "(max)",
         "execution match"], rows))
    lines += ["", f"## Concurrency ({report['concurrency_latency_ms']} ms gateway latency)", ""]
    rows = [[s, f["asks"], f["throughput_asks_per_s"], kit.number(f["ideal_asks_per_s"]), kit.pct(f["share_of_ideal"]),
             f["ask_ms_median"], f["ask_ms_p90"], f["errors"]] for s, f in report["concurrency"].items()]
    lines.append(kit.markdown_table(
        ["sessions", "asks", "asks/s", "ideal asks/s", "share of ideal", "ask ms (median)", "(p90)", "errors"], rows))
    lines += ["", "Ideal = sessions / (LLM calls per ask x latency)."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="the public eval data (default $SQLCHAT_EVAL_DIR or <repo>/../shared/eval)")
    parser.add_argument("--quick", action="store_true", help="a few questions at small sizes (a smoke test)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    data = kit.data_dir(args.data)
    started = time.monotonic()

    questions = [q for q in kit.read_jsonl(data / "defog" / "questions.jsonl") if not q["expect_refusal"]]
    databases = sorted({q["db_name"] for q in questions})
    if args.quick:
        databases = ["academic"]
        questions = [q for q in questions if q["db_name"] == "academic"][:QUICK_QUESTIONS]

    with kit.environment() as (cluster, gw):
        work = cluster.dir / "bench"
        work.mkdir()
        log(f"loading {', '.join(databases)}")
        names = {db: kit.load_database(cluster, f"defog_{db}", kit.defog_files(data, db)) for db in databases}
        connections = {db: kit.connect(cluster, name) for db, name in names.items()}
        report = {"command": "python3 tools/bench.py" + (" --quick" if args.quick else ""), "plan": plan}
        report["overhead"] = overhead(gw, connections, questions, plan["latencies_ms"], plan["every_nth_at_500"])
        log("offline engine")
        report["offline"] = offline_timing(gw, connections, questions)
        for conn in connections.values():
            conn.close()
        log("concurrency")
        report["concurrency_latency_ms"] = plan["concurrency_latency_ms"]
        report["concurrency"] = concurrency(
            cluster, gw, names[databases[0]], [q for q in questions if q["db_name"] == databases[0]],
            plan["sessions"], plan["asks_per_session"], plan["concurrency_latency_ms"],
        )
        log("catalog scale")
        report["catalog_scale"] = catalog_scale(cluster, gw, data, questions, plan["scales"], plan["scale_questions"], work)
        log("defog databases among Spider's tables")
        report["embedded"] = embedded_recall(cluster, gw, data, questions, databases)
        report["machine"] = kit.machine(cluster)

    report["duration_s"] = round(time.monotonic() - started, 1)
    out = kit.results_dir()
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    text = markdown(report)
    (out / "bench.md").write_text(text)
    print(text)
    print(f"written: {out / 'bench.json'}, {out / 'bench.md'}")


if __name__ == "__main__":
    main()
