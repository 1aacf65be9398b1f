"""Code other roles wrote, reached by a question: a low-privilege role (`planter`) plants domains,
a range type, policies, an operator, a cast, an aggregate, a view, a type with its own I/O functions
and functions that lie about volatility, each of which, when run, announces itself (NOTICE), takes
a session-level advisory lock and, run as a superuser, writes a file through COPY ... TO PROGRAM.
The 'model' (the fake gateway) then writes statements that reach them, for a superuser and for a
plain role: nothing planted may run with the caller's rights, at parse, analysis, planning or
execution time, and nothing may outlive the ask. Figures go to results/trust.json."""

import os
import tempfile
from collections import Counter
from pathlib import Path

import psycopg
import pytest

import harness

PLANTER = "planter"
CALLERS = {"postgres": "superuser", "tr_manager": "plain role"}

SETUP = """
CREATE SCHEMA evil AUTHORIZATION planter;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
SET ROLE planter;
CREATE FUNCTION evil.mark(tag text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  RAISE NOTICE 'PLANTED % ran as %', tag, current_user;
  PERFORM pg_catalog.pg_advisory_lock(4242);
  -- Session state that would outlive the ask, each tried on its own.
  BEGIN EXECUTE 'PREPARE planted_stmt AS SELECT 1'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'LISTEN planted_channel'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'CREATE TEMP TABLE IF NOT EXISTS planted_temp (x int)'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN PERFORM pg_catalog.set_config('planted.mark', tag, false); EXCEPTION WHEN OTHERS THEN NULL; END;
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE pg_catalog.format('COPY (SELECT 1) TO PROGRAM %L', 'touch {scratch}/' || tag);
  END IF;
  RETURN true;
END $f$;
CREATE FUNCTION evil.ok(text) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN RETURN evil.mark('domain'); END $f$;
CREATE DOMAIN evil.tag AS text CHECK (evil.ok(VALUE));
CREATE DOMAIN evil.locktag AS text CHECK (pg_catalog.pg_advisory_lock(4243) IS NOT NULL);
CREATE FUNCTION evil.sqlcheck(text) RETURNS boolean LANGUAGE sql AS 'SELECT pg_catalog.pg_advisory_lock(4244) IS NOT NULL';
CREATE DOMAIN evil.sqltag AS text CHECK (evil.sqlcheck(VALUE));
CREATE TYPE evil.pair AS (a evil.tag, b int);
CREATE FUNCTION evil.diff(float8, float8) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS
  $f$ BEGIN PERFORM evil.mark('subtype_diff'); RETURN $1 - $2; END $f$;
CREATE TYPE evil.span AS RANGE (subtype = float8, subtype_diff = evil.diff);
CREATE TABLE evil.gadgets (id int, tag evil.tag, tags evil.tag[], span evil.span, label text);
INSERT INTO evil.gadgets
  SELECT g, 'g' || g, ARRAY['a', 'b'], evil.span(g, g + (g % 7) + 1), 'label ' || g FROM generate_series(1, 500) g;
ANALYZE evil.gadgets;
GRANT SELECT ON evil.gadgets TO PUBLIC;
CREATE TABLE evil.ledger (id int, amount int);
INSERT INTO evil.ledger VALUES (1, 10), (2, 20);
ALTER TABLE evil.ledger ENABLE ROW LEVEL SECURITY;
CREATE POLICY see ON evil.ledger USING (evil.mark('policy'));
GRANT SELECT ON evil.ledger TO PUBLIC;
CREATE TABLE evil.ledger2 (id int, amount int);
INSERT INTO evil.ledger2 VALUES (1, 10);
ALTER TABLE evil.ledger2 ENABLE ROW LEVEL SECURITY;
CREATE POLICY see ON evil.ledger2 USING (pg_catalog.pg_advisory_lock(4245) IS NOT NULL);
GRANT SELECT ON evil.ledger2 TO PUBLIC;
CREATE TABLE evil.tenant (id int, tenant text);
INSERT INTO evil.tenant VALUES (1, 'a'), (2, 'b');
ALTER TABLE evil.tenant ENABLE ROW LEVEL SECURITY;
CREATE POLICY see ON evil.tenant USING (tenant = current_setting('app.tenant', true) OR current_setting('app.tenant', true) IS NULL);
GRANT SELECT ON evil.tenant TO PUBLIC;
CREATE FUNCTION evil.eq(text, text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
  $f$ BEGIN RETURN evil.mark('operator'); END $f$;
CREATE OPERATOR evil.=== (leftarg = text, rightarg = text, function = evil.eq);
CREATE TYPE evil.mood AS ENUM ('happy', 'sad');
CREATE FUNCTION evil.to_mood(text) RETURNS evil.mood LANGUAGE plpgsql IMMUTABLE AS
  $f$ BEGIN PERFORM evil.mark('cast'); RETURN 'happy'; END $f$;
CREATE CAST (text AS evil.mood) WITH FUNCTION evil.to_mood(text);
CREATE FUNCTION evil.sfunc(int, int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $f$ BEGIN PERFORM evil.mark('aggregate'); RETURN coalesce($1, 0) + $2; END $f$;
CREATE AGGREGATE evil.total(int) (sfunc = evil.sfunc, stype = int);
CREATE VIEW evil.v AS SELECT id, evil.mark('view') AS m FROM evil.gadgets;
GRANT SELECT ON evil.v TO PUBLIC;
CREATE FUNCTION evil.imm(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  $f$ BEGIN PERFORM evil.mark('const_fold'); RETURN $1; END $f$;
RESET ROLE;
-- A type with its own I/O functions: only a superuser can make one, but its functions can be given
-- to another role.
CREATE TYPE evil.blob;
CREATE FUNCTION evil.blob_in(cstring) RETURNS evil.blob LANGUAGE internal IMMUTABLE STRICT AS 'textin';
CREATE FUNCTION evil.blob_out(evil.blob) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'textout';
CREATE TYPE evil.blob (INPUT = evil.blob_in, OUTPUT = evil.blob_out, LIKE = text);
ALTER FUNCTION evil.blob_in(cstring) OWNER TO planter;
ALTER FUNCTION evil.blob_out(evil.blob) OWNER TO planter;
CREATE TABLE evil.blobs (id int, b evil.blob);
INSERT INTO evil.blobs VALUES (1, 'x');
ALTER TABLE evil.blobs OWNER TO planter;
GRANT SELECT ON evil.blobs TO PUBLIC;
-- Trusted code: a superuser's domain calling a superuser's function.
CREATE FUNCTION public.plausible(text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RETURN length($1) < 100; END $f$;
CREATE DOMAIN public.short_text AS text CHECK (public.plausible(VALUE));
CREATE TABLE public.notes (id int, body text);
INSERT INTO public.notes VALUES (1, 'hello');
GRANT SELECT ON public.notes TO PUBLIC;
"""

# (case, class, who plays it, statement). The statements are written by the 'model'; where the
# statement looks innocent, the planted object plays the attack.
ATTACKS = [
    ("array_literal_of_domain", "parse-time coercion", "model", "SELECT '{x}'::evil.tag[] AS t"),
    ("composite_literal_with_domain", "parse-time coercion", "model", "SELECT '(x,1)'::evil.pair AS p"),
    ("literal_compared_with_domain_column", "parse-time coercion", "object", "SELECT id FROM evil.gadgets WHERE tags = '{a}'"),
    ("column_definition_list", "parse-time coercion", "model",
     "SELECT * FROM jsonb_to_record('{\"a\": \"x\"}') AS r(a evil.tag)"),
    ("populate_record", "record input", "model", "SELECT * FROM json_populate_record(NULL::evil.pair, '{\"a\": \"x\", \"b\": 1}')"),
    ("cast_built_at_run_time", "record input", "model", "SELECT ('{' || g || '}')::evil.tag[] AS t FROM generate_series(1, 2) g"),
    ("domain_cast", "casts", "model", "SELECT 'x'::evil.tag AS t"),
    ("builtin_side_effect_in_domain", "parse-time coercion", "model", "SELECT '{x}'::evil.locktag[] AS t"),
    ("inlinable_sql_function_in_domain", "parse-time coercion", "model", "SELECT '{x}'::evil.sqltag[] AS t"),
    ("range_subtype_diff", "selectivity estimators", "object", "SELECT id FROM evil.gadgets WHERE span && '[1,2)'::evil.span"),
    ("policy_function", "policies", "object", "SELECT * FROM evil.ledger"),
    ("policy_builtin", "policies", "object", "SELECT * FROM evil.ledger2"),
    ("operator_function", "operators' functions", "model", "SELECT id FROM evil.gadgets WHERE label OPERATOR(evil.===) 'x'"),
    ("cast_function", "casts", "model", "SELECT 'happy'::text::evil.mood AS m"),
    ("aggregate_support", "aggregates' support functions", "model", "SELECT evil.total(id) AS t FROM evil.gadgets"),
    ("view_body", "views", "object", "SELECT * FROM evil.v"),
    ("immutable_constant_folding", "planner support functions", "model", "SELECT evil.imm(1) AS x"),
    ("direct_call", "functions", "model", "SELECT evil.mark('direct') AS x"),
    ("type_output_function", "type I/O", "object", "SELECT id, b FROM evil.blobs"),
    ("type_input_function", "type I/O", "model", "SELECT 'x'::evil.blob AS b"),
]

# Statements that reach other roles' objects without running their code, or run only trusted code.
ALLOWED = [
    ("read_domain_columns", "SELECT id, tag, tags, span FROM evil.gadgets ORDER BY id LIMIT 3", 3),
    ("policy_reading_a_setting", "SELECT id FROM evil.tenant ORDER BY id", 2),
    ("trusted_domain_cast", "SELECT body::public.short_text AS b FROM public.notes", 1),
]

SESSION = {"sqlchat.enable_cache": "off", "sqlchat.max_attempts": "1", "statement_timeout": "30s"}


@pytest.fixture(scope="module")
def trust_db(make_db, make_role, cluster):
    make_role(PLANTER)
    make_role("tr_manager")
    scratch = Path(tempfile.mkdtemp(prefix="sqlchat-trust-"))
    os.chmod(scratch, 0o777)
    path = scratch / "setup.sql"
    path.write_text(SETUP.replace("{scratch}", str(scratch)))
    db = make_db("trust", [path])
    with cluster.connect(db) as conn:
        conn.execute("GRANT USAGE ON SCHEMA sqlchat TO tr_manager")
    return db, scratch


SESSION_STATE = """
SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())
     + (SELECT count(*) FROM pg_prepared_statements)
     + (SELECT count(*) FROM pg_listening_channels())
     + (SELECT count(*) FROM pg_class WHERE relpersistence = 't')
     + (SELECT count(*) FROM pg_settings WHERE name = 'planted.mark')
"""


def evidence(conn, notices, scratch):
    """What a planted function leaves behind in the caller's session: its NOTICE, session state
    (advisory locks, prepared statements, LISTEN, temporary tables, settings), a file. Cleared for
    the next case."""
    found = [n for n in notices if "PLANTED" in n]
    locks = conn.execute(SESSION_STATE).fetchone()[0]
    files = sorted(p.name for p in scratch.iterdir() if p.name != "setup.sql")
    if locks:
        conn.execute("SELECT pg_advisory_unlock_all()")
        conn.execute("DISCARD ALL") if conn.autocommit else None
    for name in files:
        (scratch / name).unlink()
    notices.clear()
    return found, locks, files


def ask(conn, question):
    try:
        row = conn.execute("SELECT a.sql, a.rows FROM sqlchat.ask_full(%s) a", (question,)).fetchone()
        return row, None
    except psycopg.Error as e:
        return None, e


def test_planted_code_never_runs_with_the_callers_rights(trust_db, gw, connect):
    db, scratch = trust_db
    gw.rules([{"purpose": ["generate_sql", "repair"], "contains": f"case {name}:", "content": f"```sql\n{sql}\n```"}
              for name, _, _, sql in ATTACKS] +
             [{"purpose": ["generate_sql", "repair"], "contains": f"case {name}:", "content": sql}
              for name, sql, _ in ALLOWED])
    results, problems = [], []
    per_class = Counter()
    for caller, kind in CALLERS.items():
        conn = connect(db, user=caller, prepare_threshold=None)
        for name, value in SESSION.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        notices = []
        conn.add_notice_handler(lambda d, n=notices: n.append(d.message_primary or ""))
        for name, cls, played_by, sql in ATTACKS:
            per_class[cls] += 1
            row, err = ask(conn, f"case {name}: show it")
            ran, locks, files = evidence(conn, notices, scratch)
            refused = err is not None and err.sqlstate == "42501"
            # A superuser bypasses row-level security: the policies never run, the rows come back.
            expect_refusal = not (cls == "policies" and kind == "superuser")
            results.append({"caller": kind, "case": name, "class": cls, "played_by": played_by, "refused": refused,
                            "sqlstate": err.sqlstate if err else None, "planted_code_ran": bool(ran),
                            "locks_left": locks, "files": files})
            if refused != expect_refusal or ran or locks or files:
                problems.append((caller, name, str(err).splitlines()[0] if err else row, ran, locks, files))
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        for name, sql, n in ALLOWED:
            row, err = ask(conn, f"case {name}: show it")
            ran, locks, files = evidence(conn, notices, scratch)
            if err is not None or len(row[1]) != n or ran or locks or files:
                problems.append((caller, name, str(err) if err else row, ran, locks, files))
    figures = {
        "attacks": len(ATTACKS),
        "callers": list(CALLERS.values()),
        "cases": len(results),
        "per_class": dict(per_class),
        "refused": sum(r["refused"] for r in results),
        "answered_without_running_planted_code": sum(not r["refused"] and not r["planted_code_ran"] for r in results),
        "planted_code_ran": sum(r["planted_code_ran"] for r in results),
        "session_state_left": sum(r["locks_left"] for r in results),
        "files_written": sum(len(r["files"]) for r in results),
        "allowed_controls_answered": len(ALLOWED) * len(CALLERS) - sum(1 for p in problems if p[1] in dict((a[0], 1) for a in ALLOWED)),
        "results": results,
    }
    harness.write_results("trust", figures)
    print(f"\nplanted code: {figures['cases']} cases over {len(per_class)} classes; refused {figures['refused']}, "
          f"answered without it {figures['answered_without_running_planted_code']}, "
          f"planted code ran {figures['planted_code_ran']}, session state left {figures['session_state_left']}, "
          f"files written {figures['files_written']}")
    assert not problems, problems


def test_planted_code_the_caller_ran_before_is_still_refused(trust_db, gw, connect):
    """The caller used the planted domain outside sqlchat first (its own doing): PostgreSQL has cached
    the domain's check with the SQL function inlined, and an ask still runs none of it."""
    db, scratch = trust_db
    conn = connect(db)
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("SELECT '{x}'::evil.sqltag[]")
    conn.execute("SELECT pg_advisory_unlock_all()")
    conn.execute("SELECT id FROM evil.gadgets WHERE span && '[1,2)'::evil.span")
    evidence(conn, notices, scratch)
    gw.rules([{"purpose": ["generate_sql", "repair"], "contains": "again:", "content": "SELECT '{x}'::evil.sqltag[] AS t"},
              {"purpose": ["generate_sql", "repair"], "contains": "range:", "content": ATTACKS[9][3]}])
    conn.execute("SET sqlchat.max_attempts = 1")
    for question in ("again: show it", "range: show it"):
        row, err = ask(conn, question)
        ran, locks, files = evidence(conn, notices, scratch)
        assert err is not None and err.sqlstate == "42501", (question, err, row)
        assert not ran and not locks and not files


def test_allow_listed_function_runs_its_own_code(trust_db, gw, connect):
    """sqlchat.allowed_functions is the superuser's word: a listed function runs, inside the sandbox."""
    db, scratch = trust_db
    conn = connect(db)
    gw.rules([{"purpose": ["generate_sql", "repair"], "contains": "listed:", "content": "SELECT evil.imm(1) AS x"}])
    conn.execute("SET sqlchat.allowed_functions = 'evil.imm, evil.mark'")
    conn.execute("SET sqlchat.max_attempts = 1")
    notices = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    row, err = ask(conn, "listed: show it")
    ran, _, _ = evidence(conn, notices, scratch)
    # evil.mark takes an advisory lock and writes a file through COPY TO PROGRAM: the sandbox is a
    # security-restricted, read-only operation, and COPY TO PROGRAM is not allowed in it.
    assert ran, "the listed function ran"
    assert conn.execute("SELECT 1").fetchone()[0] == 1
