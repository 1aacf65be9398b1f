"""Security review of the interaction log (sqlchat.log) and the operations features: each test
reproduces one finding (its docstring tells the attack) and passes once it is fixed. Clusters of
this module's own."""

import os
import time

import psycopg
import pytest
from psycopg import sql

# The fixtures lc (a preloaded cluster of this module's own), conns and role are test_log's.
from test_log import COUNT, GEN, conns, lc, role, rows_of, wait_for_rows, wait_until  # noqa: F401


LOOKALIKE = """
CREATE SCHEMA sqlchat;
CREATE TABLE sqlchat.job (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, role_oid oid NOT NULL, role_name name NOT NULL,
    question text NOT NULL, session_id text, settings jsonb, state text NOT NULL DEFAULT 'queued',
    cancel_requested boolean NOT NULL DEFAULT false, runs int NOT NULL DEFAULT 0, worker bigint,
    worker_pid int, submitted_at timestamptz NOT NULL DEFAULT clock_timestamp(), started_at timestamptz,
    finished_at timestamptz, answer jsonb, sqlstate text, message text, detail text, hint text);
CREATE TABLE sqlchat.turn (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, role_name name NOT NULL,
    session_id text NOT NULL, question text NOT NULL, sql text, answer text,
    created_at timestamptz NOT NULL DEFAULT now(), role_oid oid NOT NULL);
CREATE TABLE sqlchat.log (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, asked_at timestamptz NOT NULL);
INSERT INTO sqlchat.log (asked_at) VALUES (now() - interval '400 days');
CREATE TABLE public.witness (what text, cur name, sess name, super text, backend text);
GRANT ALL ON public.witness TO PUBLIC;
CREATE FUNCTION public.note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.witness SELECT TG_NAME, current_user, session_user, current_setting('is_superuser'),
         (SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid());
  RETURN OLD;
END $$;
CREATE TRIGGER on_delete BEFORE DELETE ON sqlchat.log FOR EACH ROW EXECUTE FUNCTION public.note();
"""


def test_the_log_tasks_touch_only_the_extensions_own_table(lc, conns):
    """A role with CREATEDB plants schema sqlchat (job, turn, log) in a database of its own without
    the extension: after a restart the launcher's sweep sends a worker there, which trusts the
    look-alike and runs the log's retention task on it, firing the planted DELETE trigger inside
    sqlchat's background worker."""
    admin = conns()
    mallory = f"lr_mallory_{os.getpid()}"
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(mallory)))
    with lc.connect("postgres", user=mallory) as m:
        m.execute("CREATE DATABASE lookalike")
    with lc.connect("lookalike", user=mallory) as m:
        m.execute(LOOKALIKE)
    lc.restart()
    with lc.connect("lookalike") as check:
        fired = wait_until(lambda: check.execute("SELECT * FROM public.witness").fetchall(), 30)
        remaining = check.execute("SELECT count(*) FROM sqlchat.log").fetchone()[0]
    assert not fired, f"the worker ran the look-alike's trigger: {fired}"
    assert remaining == 1


def test_no_session_id_is_long_enough_to_hide_an_ask(lc, gw, role, conns):
    """A session id bigger than sqlchat.log_buffer would make the row not fit the ring, and the
    ask would go unlogged (only counted as dropped): any role could hide any ask this way. Session
    ids are bounded (22023 beyond 200 bytes), and the refused ask is logged with its id cut."""
    gw.rule(purpose=GEN, content=COUNT)
    conn = conns(user=role)
    conn.execute("SET sqlchat.enable_cache = off")
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("SELECT sqlchat.ask('how many customers, asked in secret?', repeat('s', 2000000))")
    assert refused.value.sqlstate == "22023"
    conn.execute("SELECT sqlchat.ask('how many customers, asked openly?')")
    admin = conns()
    wait_for_rows(admin, role, 2)
    rows = admin.execute("SELECT question, length(session_id), sqlstate FROM sqlchat.log WHERE role_name = %s",
                         (role,)).fetchall()
    secret = [r for r in rows if r[0] == "how many customers, asked in secret?"]
    assert secret, f"the ask left no row: {rows}"
    assert secret[0][1] <= 203 and secret[0][2] == "22023", secret


def test_the_offline_engine_never_looks_up_private_values(lc, gw, role, conns):
    """The offline engine looks a question's words up in the values of every text column, private
    ones included, and writes the stored value into its SQL: sqlchat.log.sql (readable by auditors)
    keeps a value read from a private column, and a later ask in the same session sends that SQL to
    the gateway as history."""
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns()
    admin.execute("UPDATE customers SET city = 'Top_Secret_Site' WHERE id = 7")
    admin.execute("SELECT sqlchat.set_private('customers', 'city')")
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.enable_cache = off")
        conn.execute("SET sqlchat.engine = offline")
        conn.execute("SELECT sqlchat.ask('how many customers in top secret site', 'plan')")
        conn.execute("SET sqlchat.engine = llm")
        gw.clear_requests()
        conn.execute("SELECT sqlchat.ask('and how many in total?', 'plan')")
        sent = str(gw.requests())
        wait_for_rows(admin, role, 2)
        logged = admin.execute("SELECT string_agg(l::text, ' ') FROM sqlchat.log l WHERE role_name = %s",
                               (role,)).fetchone()[0]
    finally:
        admin.execute("SELECT sqlchat.set_private('customers', 'city', false)")
        admin.execute("UPDATE customers SET city = 'Oslo' WHERE id = 7")
    assert "Top_Secret_Site" not in logged, logged
    assert "Top_Secret_Site" not in sent, "a private value went to the gateway in the session's history"


def test_suggest_charts_model_call_counts_against_the_quota(lc, gw, role, conns):
    """docs/operations.md says suggest_chart's model call counts against the quota, but with an
    asks-per-hour limit only (no token limit) it is neither counted nor refused: a role allowed one
    ask per hour makes as many model calls as it likes."""
    gw.rule(purpose="chart", content="A title")
    admin = conns()
    admin.execute("SELECT sqlchat.set_quota(%s, 1, NULL)", (role,))
    try:
        conn = conns(user=role)
        gw.clear_requests()
        rows = '[{"city": "Oslo", "n": 10}, {"city": "Rome", "n": 10}]'
        for i in range(5):
            conn.execute("SELECT sqlchat.suggest_chart(%s, 'SELECT city, count(*) AS n FROM customers GROUP BY 1', %s)",
                         (f"customers per city {i}", rows))
        calls = len(gw.requests("chart"))
    finally:
        admin.execute("SELECT sqlchat.set_quota(%s, NULL, NULL)", (role,))
    assert calls <= 1, f"{calls} model calls under a quota of 1 ask per hour"


def test_a_private_value_an_error_prints_unquoted_reaches_neither_log_nor_model(lc, gw, role,
                                                                                                conns):
    """Errors of a statement that read a private column are masked only in their double-quoted
    parts; PostgreSQL prints many values without quotes (make_date, chr, ...). A hostile model
    reads a private value back in the repair request, and sqlchat.log.message keeps it."""
    private_sql = "SELECT make_date(2020, id, 1) FROM customers WHERE name = 'customer 13'"
    gw.rule(purpose=[GEN, "repair"], content=private_sql)
    admin = conns()
    admin.execute("SELECT sqlchat.set_private('customers', 'id')")
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.max_attempts = 2")
        conn.execute("SET sqlchat.enable_cache = off")
        gw.clear_requests()
        with pytest.raises(psycopg.Error):
            conn.execute("SELECT sqlchat.ask('the first day of each customer''s month')")
        repair = str(gw.requests("repair"))
        wait_for_rows(admin, role, 1)
        message = rows_of(admin, role, "message")[0][0]
    finally:
        admin.execute("SELECT sqlchat.set_private('customers', 'id', false)")
    # customer 13's private id is 13: make_date's error says "2020-13-01".
    assert "2020-13" not in repair, "the private value went to the model in the repair request"
    assert "2020-13" not in message, message


def test_a_long_background_job_does_not_hold_other_roles_log_rows(lc, gw, role, conns):
    """The only worker of a database writes log rows between jobs, and no other worker is started
    while it runs one: any role that submits a long job (its own statement_timeout travels with
    it) keeps every other role's rows in shared memory for as long as the job runs (lost in a
    crash, dropped once sqlchat.log_buffer is full)."""
    slow = "SELECT count(*) AS n FROM customers a, customers b, customers c, customers d, customers e, customers f"
    gw.rule(purpose=[GEN, "repair"], contains="slow", content=slow)
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns()
    other = f"{role}_victim"
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(other)))
    admin.execute(sql.SQL("GRANT SELECT ON customers TO {}").format(sql.Identifier(other)))
    attacker = conns(user=role)
    attacker.execute("SET statement_timeout = 0")
    attacker.execute("SET sqlchat.query_timeout_ms = 0")
    job = attacker.execute("SELECT sqlchat.submit('a slow question')").fetchone()[0]
    running = wait_until(lambda: attacker.execute("SELECT state FROM sqlchat.job_status(%s)", (job,)).fetchone()[0]
                         == "running", 10)
    assert running
    try:
        conns(user=other).execute("SELECT sqlchat.ask('how many customers, while a job runs?')")
        written = wait_until(lambda: rows_of(admin, other, "id"), 5)
        still = attacker.execute("SELECT state FROM sqlchat.job_status(%s)", (job,)).fetchone()[0]
    finally:
        attacker.execute("SELECT sqlchat.cancel_job(%s)", (job,))
    assert still == "running", f"the job was meant to run past the wait: {still}"
    assert written, "the row waited in shared memory while another role's job ran"


def test_set_role_does_not_escape_a_quota(lc, gw, role, conns):
    """Quotas and log rows go by current_user only: a role with a quota that may SET ROLE to any
    group it belongs to asks on as the group, past its own quota, and the log row names the group,
    with nothing that says which login asked."""
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns()
    group = f"{role}_group"
    admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(group)))
    admin.execute(sql.SQL("GRANT SELECT ON customers TO {}").format(sql.Identifier(group)))
    admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role)))
    admin.execute("SELECT sqlchat.set_quota(%s, 1, NULL)", (role,))
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.enable_cache = off")
        conn.execute("SELECT sqlchat.ask('how many customers, within the quota?')")
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT sqlchat.ask('how many customers, past the quota?')")
        assert refused.value.sqlstate == "53400"
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(group)))
        escaped = True
        try:
            conn.execute("SELECT sqlchat.ask('how many customers, as the group?')")
        except psycopg.Error as e:
            escaped = e.sqlstate != "53400"
    finally:
        admin.execute("SELECT sqlchat.set_quota(%s, NULL, NULL)", (role,))
    assert not escaped, "SET ROLE to a group lifted the login role's quota"
    wait_for_rows(admin, group, 1)
    logged = admin.execute("SELECT session_role FROM sqlchat.log WHERE role_name = %s", (group,)).fetchall()
    assert logged == [(role,)], f"the group's log row does not say which login asked: {logged}"


def test_log_questions_off_keeps_nothing_the_question_said(lc, gw, role, conns):
    """sqlchat.log_questions = off (or hash) leaves the question out of sqlchat.log and the slow
    log, but the generated SQL is kept whole: the names and values the question carried (a model
    copies them into its literals) are still there for every auditor."""
    gw.rule(purpose=GEN, contains="Jane Roe", content="SELECT count(*) AS n FROM customers WHERE name = 'Jane Roe'")
    admin = conns()
    lc.set_system({"sqlchat.log_questions": "off", "sqlchat.log_min_duration_ms": 0})
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.enable_cache = off")
        conn.execute("SELECT sqlchat.ask('is Jane Roe one of our customers?')")
        wait_for_rows(admin, role, 1)
        row = admin.execute("SELECT l::text FROM sqlchat.log l WHERE role_name = %s", (role,)).fetchone()[0]
        slow = [line for line in lc.server_log().splitlines() if "slow ask" in line and role in line]
    finally:
        lc.set_system({"sqlchat.log_questions": None, "sqlchat.log_min_duration_ms": None})
    assert "Jane Roe" not in row, row
    assert slow and not any("Jane Roe" in line for line in slow), slow
