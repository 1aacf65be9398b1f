#!/usr/bin/env python3
"""Teaching on the public defog databases, with the fake gateway recording every request. Each
database's answerable questions are split in two by id (even positions taught with their gold SQL,
odd positions asked), and:

  verified   taught questions asked again, reworded only in case, punctuation and spacing: verified,
             0 SQL-generation calls, the gold rows; the same questions with one number or quoted
             literal changed: never verified
  examples   the asked half: the share whose prompt carries at least one worked example that reads a
             gold table, against examples picked at random (as many, from the same database), and
             the SQL-generation prompt's tokens before teaching and after
  values     questions built by rule from stored values (lower or upper case, plural, the first
             words of a longer value, accents dropped): the share whose prompt carries the stored
             spelling; and the defog questions whose gold SQL has no string literal (they name no
             value): the share whose prompt carries a value hint
  private    every text column marked private, the asked half, the value questions and the verified
             questions asked again: values of private columns found in any recorded request

    python3 tools/eval_teach.py [--data DIR]
Figures are printed and saved as results/eval_teach.json.
"""

import argparse
import json
import random
import re
import statistics
import sys
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "eval"))

import evalkit as kit  # noqa: E402
import psycopg  # noqa: E402
from resultcmp import compare_any, from_objects  # noqa: E402
from test_defog import asked_text, gold_results  # noqa: E402

FREE_TEXT = ("description", "abstract", "comment", "note", "body", "text", "url", "homepage", "email",
             "phone", "address", "password")
VALUES_PER_COLUMN = 3
RANDOM_DRAWS = 50
EXAMPLES_BLOCK = re.compile(r"<examples>\n(.*?)\n</examples>", re.S)
HINT_LINE = re.compile(r"^-- .* values include .*$", re.M)


def generation_prompt(gw):
    reqs = gw.requests(purpose="generate_sql")
    return "\n".join(m["content"] for m in reqs[-1]["messages"]) if reqs else None


def reworded(question):
    """Case, punctuation and spacing changed; nothing else."""
    # Punctuation between two digits belongs to a number ("4.5"): left alone.
    words = re.sub(r"(?<!\d)[?!.,;:]|[?!.,;:](?!\d)", " ", question).split()
    return [
        " ".join(words).lower(),
        "  ".join(w.upper() for w in words) + " ?",
        question.replace(" ", "   ").rstrip("?") + "!!",
    ]


def literal_changed(question):
    """The question with its first number or quoted literal changed, or None."""
    m = re.search(r"(?<![\w.])(\d+)(?![\w.])", question)
    if m:
        return question[: m.start()] + str(int(m.group(1)) + 1) + question[m.end():]
    m = re.search(r"(['\"])([^'\"]+)\1", question)
    if m:
        return question[: m.start(2)] + m.group(2) + " Zeta" + question[m.end(2):]
    return None


def teach_half(conn, questions):
    taught, failed = {}, 0
    for q in questions:
        try:
            taught[q["id"]] = conn.execute(
                "SELECT sqlchat.teach(%s, %s)", (asked_text(q), q["gold_sql_alternatives"][0])
            ).fetchone()[0]
        except psycopg.Error as e:
            failed += 1
            kit.log(f"  not taught {q['id']}: {e.sqlstate} {str(e).splitlines()[0][:120]}")
    return taught, failed


def verified_phase(conn, gw, questions, taught):
    out = {"asked": 0, "verified": 0, "generation_calls": 0, "same_rows": 0, "changed_asked": 0, "false_reuses": 0}
    golds = {q["id"]: gold_results(conn, q) for q in questions if q["id"] in taught}
    for q in questions:
        if q["id"] not in taught:
            continue
        for text in reworded(asked_text(q)):
            gw.reset()
            row, error, _ = kit.ask_full(conn, text)
            out["asked"] += 1
            out["generation_calls"] += len(gw.requests(purpose="generate_sql"))
            if row and row["engine"] == "verified":
                out["verified"] += 1
                try:
                    out["same_rows"] += compare_any(golds[q["id"]], from_objects(row["rows"])).match
                except ValueError:
                    pass
        changed = literal_changed(asked_text(q))
        if changed:
            gw.reset()
            gw.rule(purpose="generate_sql", content="SELECT 1")
            row, _, _ = kit.ask_full(conn, changed)
            out["changed_asked"] += 1
            out["false_reuses"] += bool(row and row["engine"] == "verified")
    return out


def examples_shown(prompt):
    block = EXAMPLES_BLOCK.search(prompt or "")
    if not block:
        return []
    return re.findall(r"^Question: (.*)$", block.group(1), re.M)


def asked_phase(conn, gw, questions, pool):
    """Per asked question: generation prompt tokens, and the taught questions shown as examples."""
    records = []
    for q in questions:
        gw.reset()
        gw.rule(purpose="generate_sql", content=f"```sql\n{q['gold_sql_alternatives'][0]}\n```")
        kit.ask_full(conn, asked_text(q))
        prompt = generation_prompt(gw)
        shown = examples_shown(prompt)
        records.append({
            "id": q["id"],
            "tokens": (len(prompt) + 3) // 4 if prompt else None,
            "shown": shown,
            "gold_tables": {kit.table_key(t) for t in q["gold_tables"]},
        })
    return records


def reads_gold(example_tables, gold):
    return bool({kit.table_key(t) for t in example_tables} & gold)


def value_questions(conn):
    """(question, stored value, kind) built by rule from each text column's most frequent values."""
    columns = conn.execute(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
        "AND c.data_type IN ('text', 'character varying', 'character') ORDER BY 1, 2, 3"
    ).fetchall()
    out = []
    for schema, table, column in columns:
        if any(w in column.lower() for w in FREE_TEXT):
            continue
        rows = conn.execute(
            f'SELECT v FROM (SELECT "{column}"::text AS v, count(*) AS n FROM "{schema}"."{table}" '
            f'WHERE "{column}" IS NOT NULL GROUP BY 1) s ORDER BY n DESC, v LIMIT {VALUES_PER_COLUMN}'
        ).fetchall()
        for (value,) in rows:
            words = value.split()
            if not words or len(value) > 40 or not any(len(re.sub(r"\W", "", w)) >= 3 and not w.isdigit() for w in words):
                continue
            variants = []
            variants.append(("case", value.lower() if value.lower() != value else value.upper()))
            if value[-1].isalpha() and not value.lower().endswith("s"):
                variants.append(("plural", value + "s"))
            if len(words) >= 2 and len(words[0]) >= 4:
                variants.append(("partial", " ".join(words[: (len(words) + 1) // 2])))
            folded = "".join(c for c in unicodedata.normalize("NFD", value) if not unicodedata.combining(c))
            if folded != value:
                variants.append(("accents", folded))
            subject = table.replace("_", " ")
            attribute = column.replace("_", " ")
            for kind, variant in variants:
                out.append((f"How many {subject} have {attribute} {variant}?", value, kind))
    return out


def values_phase(conn, gw, questions):
    found = {}
    for text, value, kind in questions:
        gw.reset()
        gw.rule(purpose="generate_sql", content="SELECT 1")
        kit.ask_full(conn, text)
        prompt = generation_prompt(gw) or ""
        hints = "\n".join(HINT_LINE.findall(prompt))
        literal = "'" + value.replace("'", "''") + "'"
        hit = literal in hints
        found.setdefault(kind, [0, 0])
        found[kind][0] += hit
        found[kind][1] += 1
        if not hit:
            kit.log(f"    no hint: {text!r} -> {value!r}")
    return found


def no_value_phase(conn, gw, questions):
    asked, hinted = 0, 0
    for q in questions:
        if any("'" in s for s in q["gold_sql_alternatives"]):
            continue
        gw.reset()
        gw.rule(purpose="generate_sql", content=f"```sql\n{q['gold_sql_alternatives'][0]}\n```")
        kit.ask_full(conn, asked_text(q))
        asked += 1
        if HINT_LINE.search(generation_prompt(gw) or ""):
            hinted += 1
            kit.log(f"    hint without a value: {q['question']!r}")
    return asked, hinted


def private_phase(conn, gw, asked, taught_qs, value_qs):
    """Every text column private; (requests scanned, private values found in them)."""
    columns = conn.execute(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
        "AND c.data_type IN ('text', 'character varying', 'character')"
    ).fetchall()
    secrets = set()
    for schema, table, column in columns:
        conn.execute("SELECT sqlchat.set_private(%s::regclass, %s)", (f'"{schema}"."{table}"', column))
        for (v,) in conn.execute(f'SELECT DISTINCT "{column}"::text FROM "{schema}"."{table}" WHERE "{column}" IS NOT NULL'):
            if len(v) >= 5 and re.search(r"[A-Za-z]{3}", v):
                secrets.add(v)
    # Text people wrote knowingly may name values: comments on the schema (its owners'), taught
    # examples (teachers'), the question (the caller's) and the SQL the model wrote.
    written = [d for (d,) in conn.execute("SELECT description FROM pg_description")]
    written += [t for row in conn.execute("SELECT question, sql FROM sqlchat.examples") for t in row]
    secrets = {v for v in secrets if not any(v in w for w in written)}
    scanned, leaks = 0, []
    jobs = [(asked_text(q), q["gold_sql_alternatives"][0]) for q in asked + taught_qs]
    jobs += [(text, "SELECT 1") for text, _, _ in value_qs]
    for text, sql in jobs:
        gw.reset()
        gw.rule(purpose="generate_sql", content=f"```sql\n{sql}\n```")
        kit.ask_full(conn, text)
        for r in gw.requests():
            body = "\n".join(m["content"] for m in r["messages"])
            # What the caller typed and what the model wrote may name values: the database may not.
            body = body.replace(text.strip(), "").replace(sql, "")
            scanned += 1
            found = [v for v in secrets if v in body and v not in text and v not in sql]
            for v in found:
                at = body.index(v)
                kit.log(f"    private value {v!r} in a {r['purpose']} request: ...{body[max(0, at - 300):at + 80]!r}")
            leaks += found
    return scanned, sorted(set(leaks))


def run_database(cluster, gw, data, db, questions):
    kit.load_database(cluster, db, kit.defog_files(data, db))
    conn = kit.connect(cluster, db, engine="llm")
    conn.execute("ANALYZE")
    qs = sorted((q for q in questions if not q["expect_refusal"] and q["gold_sql_alternatives"]), key=lambda q: q["id"])
    taught_qs, asked_qs = qs[0::2], qs[1::2]
    before = asked_phase(conn, gw, asked_qs, [])
    no_value = no_value_phase(conn, gw, qs)
    taught, not_taught = teach_half(conn, taught_qs)
    verified = verified_phase(conn, gw, taught_qs, taught)
    after = asked_phase(conn, gw, asked_qs, taught_qs)
    value_qs = value_questions(conn)
    values = values_phase(conn, gw, value_qs)
    # Random examples: as many as were shown, from the same database's taught half.
    tables_of = {asked_text(q): q["gold_tables"] for q in taught_qs if q["id"] in taught}
    rng = random.Random(7)
    with_gold, random_gold, shown_counts = 0, 0.0, []
    for rec in after:
        shown = [s for s in rec["shown"] if s in tables_of]
        shown_counts.append(len(shown))
        with_gold += any(reads_gold(tables_of[s], rec["gold_tables"]) for s in shown)
        if shown:
            pool = list(tables_of)
            hits = sum(
                any(reads_gold(tables_of[s], rec["gold_tables"]) for s in rng.sample(pool, min(len(shown), len(pool))))
                for _ in range(RANDOM_DRAWS)
            )
            random_gold += hits / RANDOM_DRAWS
    scanned, leaks = private_phase(conn, gw, asked_qs, [q for q in taught_qs if q["id"] in taught], value_qs)
    conn.close()
    return {
        "db": db,
        "taught": len(taught),
        "not_taught": not_taught,
        "asked": len(asked_qs),
        "verified": verified,
        "asked_with_gold_example": with_gold,
        "asked_with_gold_example_random": round(random_gold, 2),
        "examples_shown_median": statistics.median(shown_counts) if shown_counts else 0,
        "tokens_before": [r["tokens"] for r in before if r["tokens"]],
        "tokens_after": [r["tokens"] for r in after if r["tokens"]],
        "values": values,
        "no_value_asked": no_value[0],
        "no_value_hinted": no_value[1],
        "private_requests_scanned": scanned,
        "private_leaks": leaks,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data")
    args = ap.parse_args(argv)
    data = kit.data_dir(args.data)
    questions = kit.read_jsonl(data / "defog" / "questions.jsonl")
    dbs = sorted({q["db_name"] for q in questions})
    results = []
    with kit.environment() as (cluster, gw):
        for db in dbs:
            kit.log(f"{db}:")
            results.append(run_database(cluster, gw, data, db, [q for q in questions if q["db_name"] == db]))
    total = lambda key: sum(r[key] for r in results)  # noqa: E731
    v = {k: sum(r["verified"][k] for r in results) for k in results[0]["verified"]}
    values = {}
    for r in results:
        for kind, (hit, n) in r["values"].items():
            values.setdefault(kind, [0, 0])
            values[kind][0] += hit
            values[kind][1] += n
    value_hits = sum(h for h, _ in values.values())
    value_n = sum(n for _, n in values.values())
    before = [t for r in results for t in r["tokens_before"]]
    after = [t for r in results for t in r["tokens_after"]]
    summary = {
        "taught": total("taught"),
        "not_taught": total("not_taught"),
        "reworded_asked": v["asked"],
        "reworded_verified": v["verified"],
        "reworded_same_rows": v["same_rows"],
        "reworded_generation_calls": v["generation_calls"],
        "changed_asked": v["changed_asked"],
        "changed_false_reuses": v["false_reuses"],
        "asked": total("asked"),
        "asked_with_gold_example": total("asked_with_gold_example"),
        "asked_with_gold_example_random": round(sum(r["asked_with_gold_example_random"] for r in results), 1),
        "generation_tokens_median_before": statistics.median(before) if before else None,
        "generation_tokens_median_after": statistics.median(after) if after else None,
        "generation_tokens_p90_before": kit.percentile(before, 0.9),
        "generation_tokens_p90_after": kit.percentile(after, 0.9),
        "value_questions": value_n,
        "value_questions_with_stored_spelling": value_hits,
        "value_by_kind": values,
        "no_value_questions": total("no_value_asked"),
        "no_value_questions_with_hint": total("no_value_hinted"),
        "private_requests_scanned": total("private_requests_scanned"),
        "private_values_found": sorted({x for r in results for x in r["private_leaks"]}),
    }
    pct = lambda a, b: f"{100 * a / b:.1f}%" if b else "-"  # noqa: E731
    s = summary
    print(f"taught {s['taught']} questions ({s['not_taught']} could not be taught)")
    print(f"reworded taught questions: {s['reworded_verified']}/{s['reworded_asked']} verified "
          f"({pct(s['reworded_verified'], s['reworded_asked'])}), {s['reworded_same_rows']} with the gold rows, "
          f"{s['reworded_generation_calls']} SQL-generation calls")
    print(f"one number or literal changed: {s['changed_false_reuses']}/{s['changed_asked']} verified (false reuses)")
    print(f"asked half: {s['asked_with_gold_example']}/{s['asked']} prompts carry an example reading a gold table "
          f"({pct(s['asked_with_gold_example'], s['asked'])}); random examples: "
          f"{s['asked_with_gold_example_random']}/{s['asked']} ({pct(s['asked_with_gold_example_random'], s['asked'])})")
    print(f"SQL-generation prompt tokens, median / p90: before teaching {s['generation_tokens_median_before']} / "
          f"{s['generation_tokens_p90_before']}, after {s['generation_tokens_median_after']} / {s['generation_tokens_p90_after']}")
    print(f"value questions: {value_hits}/{value_n} carry the stored spelling ({pct(value_hits, value_n)}); by kind: "
          + ", ".join(f"{k} {h}/{n}" for k, (h, n) in sorted(values.items())))
    print(f"questions naming no value: {s['no_value_questions_with_hint']}/{s['no_value_questions']} carry a value hint "
          f"({pct(s['no_value_questions_with_hint'], s['no_value_questions'])})")
    print(f"private columns: {len(s['private_values_found'])} private values in {s['private_requests_scanned']} recorded requests")
    out = kit.results_dir() / "eval_teach.json"
    out.write_text(json.dumps({"summary": summary, "databases": results}, indent=1, default=list))
    kit.log(f"saved {out}")


if __name__ == "__main__":
    main()
