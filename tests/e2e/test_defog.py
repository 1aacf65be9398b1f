"""End to end on the defog databases: every question through `sqlchat.ask_full`, with the fake gateway
answering the SQL-generation request the way real models do (fences, prose, semicolons, escaped
underscores) around the gold SQL, or with a refusal for the questions the schema cannot answer.

What it measures is everything around the model: the prompt carries the question and the right
tables, the reply's SQL is found and run as written, the rows come back intact, refusals stay
refusals, and the number of LLM calls per question. Figures go to $SQLCHAT_RESULTS_DIR/defog.json
and are printed (shown on failure, or always with `pytest -s`).
"""

import json
import math
import re
import statistics
import time

import psycopg
import pytest
from psycopg.rows import dict_row

import harness
from resultcmp import compare_any, fetch_result, from_objects, has_top_level_order_by

MIN_EXECUTION_MATCH = 0.98
MAX_MEDIAN_LLM_CALLS = 2
ASK_TIMEOUT = "120s"

# Ways real models wrap a statement; the question's index picks one, so each style is exercised
# on every database.
ENVELOPES = [
    lambda sql: sql,
    lambda sql: f"```sql\n{sql}\n```",
    lambda sql: (
        "Here is the SQL query that answers the question:\n\n"
        f"```sql\n{sql};\n```\n\n"
        "It reads only the tables needed and returns the requested values."
    ),
    lambda sql: f"{sql};",
    lambda sql: f"{escape_underscores(sql)};",
    lambda sql: f"SQL:\n```\n{sql}\n```",
    lambda sql: f"```postgresql\n{sql}\n```\nThis query should give you the result you are looking for.",
]

REFUSALS = [
    "I'm sorry, but I can't answer this question: the database schema has no table or column holding "
    "that information.",
    "This question cannot be answered from the given schema, because none of the tables store data about it.",
    "Sorry, the provided tables do not contain the information needed to answer this question, so I can't "
    "write a SQL query for it.",
]

_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def escape_underscores(sql):
    """`\\_` for `_` outside quotes, as models do when they format SQL as markdown text."""
    out, last = [], 0
    for m in _QUOTED.finditer(sql):
        out.append(sql[last:m.start()].replace("_", r"\_"))
        out.append(m.group(0))
        last = m.end()
    out.append(sql[last:].replace("_", r"\_"))
    return "".join(out)


def question_pattern(question):
    """A regex finding the question in the prompt whatever whitespace the prompt puts inside it."""
    return r"\s+".join(re.escape(word) for word in question.split())


def asked_text(q):
    # The refusal questions' instructions ask for sql-eval's canned "SELECT 'sorry'" reply;
    # sqlchat has refusals of its own, so only the answerable questions get their instructions.
    if q["instructions"] and not q["expect_refusal"]:
        return f"{q['question']}\n{q['instructions']}"
    return q["question"]


def table_key(name):
    return name.replace('"', "").lower()


def message_chars(messages):
    total = 0
    for m in messages or []:
        content = m.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    return total


def percentile(values, share):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 2),
        "median": statistics.median(values),
        "p95": percentile(values, 0.95),
        "max": max(values),
    }


@pytest.fixture(scope="module")
def defog(eval_dir, make_db):
    root = eval_dir / "defog"
    questions = [json.loads(line) for line in (root / "questions.jsonl").read_text().splitlines() if line.strip()]
    databases = {}
    for name in sorted({q["db_name"] for q in questions}):
        files = [root / "sql" / f"{name}.sql"]
        comments = root / "comments" / f"{name}.sql"
        if comments.exists():
            files.append(comments)
        databases[name] = make_db(f"defog_{name}", files)
    return questions, databases


def gold_results(conn, q):
    """(Result, ordered) for each gold alternative that runs."""
    golds = []
    for sql in q["gold_sql_alternatives"]:
        try:
            golds.append((fetch_result(conn, sql), has_top_level_order_by(sql)))
        except psycopg.Error:
            continue
    return golds


def ask(conn, question):
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT answer, sql, rows, suggestions, tables, attempts, llm_calls, from_cache, elapsed_ms "
            "FROM sqlchat.ask_full(%s)",
            (question,),
        )
        return cur.fetchone()


def run_question(index, q, conn, gw):
    """Asks one question with the gateway scripted for it; returns its record."""
    gw.reset()
    gold_sql = q["gold_sql_alternatives"][0] if q["gold_sql_alternatives"] else None
    if q["expect_refusal"]:
        reply = REFUSALS[index % len(REFUSALS)]
        envelope = None
    else:
        envelope = index % len(ENVELOPES)
        reply = ENVELOPES[envelope](gold_sql)
    gw.rule(purpose="generate_sql", regex=question_pattern(q["question"]), content=reply)

    record = {"id": q["id"], "db": q["db_name"], "expect_refusal": q["expect_refusal"], "envelope": envelope}
    started = time.monotonic()
    try:
        answer = ask(conn, asked_text(q))
        record["error"] = None
    except psycopg.Error as e:
        answer = None
        record["error"] = f"{e.sqlstate}: {str(e).strip()[:500]}"
    record["wall_ms"] = round((time.monotonic() - started) * 1000.0, 1)

    requests = gw.requests()
    generation = [r for r in requests if r["purpose"] == "generate_sql"]
    record["gateway_requests"] = len(requests)
    record["gateway_purposes"] = [r["purpose"] for r in requests]
    record["prompt_tokens"] = math.ceil(message_chars(generation[0]["messages"]) / 4) if generation else None
    record["question_in_prompt"] = bool(generation) and any(
        re.search(question_pattern(q["question"]), m.get("content") or "")
        for m in generation[0]["messages"] or []
        if m.get("role") == "user" and isinstance(m.get("content"), str)
    )
    if answer is None:
        record.update(match=False, refusal_ok=False, llm_calls=None, recall=None, reason=record["error"])
        return record

    record.update(
        llm_calls=answer["llm_calls"],
        attempts=answer["attempts"],
        from_cache=answer["from_cache"],
        elapsed_ms=answer["elapsed_ms"],
        sql=answer["sql"],
    )
    offered = {table_key(t) for t in answer["tables"] or []}
    gold_tables = {table_key(t) for t in q["gold_tables"]}
    record["recall"] = len(gold_tables & offered) / len(gold_tables) if gold_tables else None

    if q["expect_refusal"]:
        no_rows = answer["rows"] is None or answer["rows"] == []
        record["refusal_ok"] = no_rows and bool((answer["answer"] or "").strip())
        record["match"] = None
        record["reason"] = None if record["refusal_ok"] else f"refusal answered with rows or no text: {answer['answer']!r}"
        return record

    golds = gold_results(conn, q)
    try:
        comparison = compare_any(golds, from_objects(answer["rows"]))
        record["match"], record["reason"] = comparison.match, comparison.reason or None
    except ValueError as e:
        record["match"], record["reason"] = False, str(e)
    record["refusal_ok"] = None
    return record


def figures(records):
    answerable = [r for r in records if not r["expect_refusal"]]
    refusals = [r for r in records if r["expect_refusal"]]
    matched = sum(1 for r in answerable if r["match"])
    per_db = {}
    for db in sorted({r["db"] for r in records}):
        mine = [r for r in answerable if r["db"] == db]
        per_db[db] = {"answerable": len(mine), "execution_match": sum(1 for r in mine if r["match"])}
    per_envelope = {}
    for r in answerable:
        seen = per_envelope.setdefault(str(r["envelope"]), {"answerable": 0, "execution_match": 0})
        seen["answerable"] += 1
        seen["execution_match"] += 1 if r["match"] else 0
    recalls = [r["recall"] for r in answerable if r["recall"] is not None]
    return {
        "suite": "defog",
        "questions": len(records),
        "answerable": len(answerable),
        "execution_match": matched,
        "execution_match_rate": round(matched / len(answerable), 4) if answerable else None,
        "refusals": len(refusals),
        "refusals_ok": sum(1 for r in refusals if r["refusal_ok"]),
        "errors": sum(1 for r in records if r["error"]),
        "llm_calls_per_ask": summary([r["llm_calls"] for r in records]),
        "gateway_requests_per_ask": summary([r["gateway_requests"] for r in records]),
        "generate_sql_prompt_tokens": summary([r["prompt_tokens"] for r in records]),
        "gold_table_recall_mean": round(statistics.fmean(recalls), 4) if recalls else None,
        "gold_table_recall_full_share": round(sum(1 for x in recalls if x == 1.0) / len(recalls), 4) if recalls else None,
        "question_in_prompt_share": round(sum(1 for r in records if r["question_in_prompt"]) / len(records), 4),
        "from_cache": sum(1 for r in records if r.get("from_cache")),
        "elapsed_ms_per_ask": summary([r.get("elapsed_ms") for r in records]),
        "per_database": per_db,
        "per_envelope": per_envelope,
        "failures": [
            {"id": r["id"], "envelope": r["envelope"], "reason": r["reason"]}
            for r in records
            if (r["match"] is False) or (r["refusal_ok"] is False)
        ],
    }


def test_defog_end_to_end(defog, gw, connect):
    questions, databases = defog
    connections = {}
    for db_name, dbname in databases.items():
        conn = connect(dbname)
        conn.execute(f"SET statement_timeout = '{ASK_TIMEOUT}'")
        connections[db_name] = conn

    records = [run_question(i, q, connections[q["db_name"]], gw) for i, q in enumerate(questions)]
    result = figures(records)
    out = harness.results_dir() / "defog.json"
    out.write_text(json.dumps({"figures": result, "records": records}, indent=2, default=str))

    print(f"\ndefog end to end ({out}):")
    for key, value in result.items():
        if key != "failures":
            print(f"  {key}: {value}")
    for failure in result["failures"]:
        print(f"  FAIL {failure['id']} (envelope {failure['envelope']}): {failure['reason']}")

    see = f"failures listed above and in {out}"
    rate = result["execution_match_rate"]
    assert rate is not None and rate >= MIN_EXECUTION_MATCH, f"execution match {rate} < {MIN_EXECUTION_MATCH}; {see}"
    assert result["refusals_ok"] == result["refusals"], f"{result['refusals_ok']}/{result['refusals']} refusals; {see}"
    calls = result["llm_calls_per_ask"]
    assert calls and calls["median"] <= MAX_MEDIAN_LLM_CALLS, f"LLM calls per ask {calls}; {see}"
