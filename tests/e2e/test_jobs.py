"""Background asks: submit, result, job_status, cancel_job and NOTIFY sqlchat_jobs, run by background
workers in a cluster of this module's own (it is restarted and crashed on purpose). A job's answer
and error are ask_full's; it runs as the submitting role with the session's settings; jobs survive
restarts and crashes; bad input and faults (a dropped role, a dropped database, 1,000 jobs, a
hanging gateway, statement_timeout, a worker killed with SIGKILL, a role that may no longer log in,
a cancel left uncommitted) each end in their documented state, with no job left running and no
worker left behind; a role's queue is capped and its submits count against its quota."""

import os
import signal
import subprocess
import time

import psycopg
import pytest
from psycopg import sql

import harness

GEN = "generate_sql"
WORKERS = 2
SHOP = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text, tenant text);
INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['Oslo','Rome','Lima'])[1 + g % 3],
    (ARRAY['a','b'])[1 + g % 2] FROM generate_series(1, 30) g;
CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO events VALUES (1, '2024-01-01 00:00:00+00');
"""
COUNT = "SELECT count(*) AS n FROM customers"
ANSWER_COLUMNS = "answer, sql, rows, suggestions, tables, attempts, llm_calls, from_cache, engine, truncated, chart"


class JobsCluster(harness.Cluster):
    """A cluster that can be restarted with the same options."""

    def __init__(self, settings):
        self.options = list(settings)
        super().__init__(settings=settings)

    def restart(self):
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "stop", str(self.dir)], check=True, capture_output=True)
        env = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
        subprocess.run(
            ["bash", str(harness.CLUSTER_SCRIPT), "start", str(self.dir), str(self.port),
             "shared_preload_libraries=sqlchat", *self.options],
            check=True, capture_output=True, text=True, timeout=120, env=env,
        )


@pytest.fixture(scope="module")
def jc(gateway):
    if not harness.library_installed():
        pytest.skip("sqlchat is not installed")
    c = JobsCluster(["sqlchat.worker_idle_timeout=1", "max_worker_processes=16"])
    try:
        c.set_system({"sqlchat.api_base": gateway.api_base, "sqlchat.api_key": harness.API_KEY,
                      "sqlchat.model": harness.MODEL})
        path = c.dir / "shop.sql"
        path.write_text(SHOP)
        c.create_database("jobs", [path])
        with c.connect("jobs") as admin:
            for role in ("job_alice", "job_bob"):
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
                admin.execute(sql.SQL("GRANT SELECT ON customers, events TO {}").format(sql.Identifier(role)))
        yield c
    finally:
        c.stop()


@pytest.fixture
def conns(jc):
    opened = []

    def open_connection(user=None, dbname="jobs"):
        conn = jc.connect(dbname, user=user)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        conn.close()


@pytest.fixture
def idle(jc):
    """After the test: no job left queued or running, and every worker ended (idle timeout 1 s)."""
    yield
    with jc.connect("jobs") as admin:
        admin.execute("ALTER SYSTEM RESET sqlchat.max_workers")
        admin.execute("SELECT pg_reload_conf()")
    assert wait_until(lambda: count(jc, "SELECT count(*) FROM sqlchat.job WHERE state IN ('queued', 'running')") == 0, 20)
    assert wait_until(lambda: workers(jc) == 0, 10), "a worker outlived its idle timeout"


def count(jc, query, dbname="jobs"):
    with jc.connect(dbname) as conn:
        return conn.execute(query).fetchone()[0]


def workers(jc):
    return count(jc, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sqlchat worker'", "postgres")


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def state(conn, job):
    row = conn.execute("SELECT state FROM sqlchat.job_status(%s)", (job,)).fetchone()
    return row[0] if row else None


def wait_state(conn, job, wanted, timeout=10):
    assert wait_until(lambda: state(conn, job) in wanted, timeout), f"job {job} is {state(conn, job)}"
    return state(conn, job)


def raised(conn, statement, params=()):
    with pytest.raises(psycopg.Error) as e:
        conn.execute(statement, params)
    d = e.value.diag
    return (d.sqlstate, d.message_primary, d.message_detail, d.message_hint)


def pause(jc, paused=True):
    """sqlchat.max_workers = 0 keeps jobs queued; the idle fixture resets it."""
    jc.set_system({"sqlchat.max_workers": 0 if paused else None})


def test_a_job_answers_what_ask_full_answers(jc, gw, conns, idle):
    gw.rule(purpose=GEN, content=COUNT, delay_ms=300)
    conn = conns()
    conn.execute("SET sqlchat.enable_cache = off")
    started = time.monotonic()
    job = conn.execute("SELECT sqlchat.submit('how many customers are there?')").fetchone()[0]
    assert time.monotonic() - started < 0.2, "submit waits for nothing"
    assert conn.execute("SELECT sqlchat.result(%s) IS NULL", (job,)).fetchone()[0], "NULL while not done"
    from_job = conn.execute(f"SELECT {ANSWER_COLUMNS} FROM sqlchat.result(%s, 10000)", (job,)).fetchone()
    direct = conn.execute(f"SELECT {ANSWER_COLUMNS} FROM sqlchat.ask_full('how many customers are there?')").fetchone()
    assert from_job == direct
    assert from_job[2] == [{"n": 30}]
    status = conn.execute("SELECT state, role, runs, sqlstate, submitted_at <= started_at, started_at <= finished_at "
                          "FROM sqlchat.jobs WHERE job = %s", (job,)).fetchone()
    assert status == ("done", "postgres", 1, None, True, True)
    # Conversation memory: a job's turn is the session's, as an ask_full's would be.
    remembered = conn.execute("SELECT sqlchat.submit('how many customers in Oslo?', 'job-session')").fetchone()[0]
    conn.execute("SELECT sqlchat.result(%s, 10000)", (remembered,))
    conn.execute("SELECT sqlchat.ask('and in Rome?', 'job-session')")
    turns = conn.execute("SELECT question FROM sqlchat.history('job-session') ORDER BY turn").fetchall()
    assert turns == [("how many customers in Oslo?",), ("and in Rome?",)]
    assert "how many customers in Oslo?" in str(gw.requests(purpose=GEN)[-1]["messages"])


def test_a_failed_job_raises_ask_fulls_error(jc, gw, conns, idle):
    gw.rule(purpose=["generate_sql", "repair"], content="SELECT no_such_column FROM customers")
    conn = conns()
    conn.execute("SET sqlchat.max_attempts = 2")
    job = conn.execute("SELECT sqlchat.submit('a question the model gets wrong')").fetchone()[0]
    assert wait_state(conn, job, {"failed"}) == "failed"
    from_job = raised(conn, "SELECT sqlchat.result(%s)", (job,))
    direct = raised(conn, "SELECT sqlchat.ask_full('a question the model gets wrong')")
    assert from_job == direct
    assert from_job[0] == "42703" and from_job[1].startswith("sqlchat: ") and from_job[3]
    shown = conn.execute("SELECT sqlstate, message FROM sqlchat.jobs WHERE job = %s", (job,)).fetchone()
    assert shown == (from_job[0], from_job[1])


def test_a_job_over_its_statement_timeout_fails_as_ask_full_does(jc, gw, conns, idle):
    gw.rule(purpose=GEN, content=COUNT, delay_ms=3000)
    conn = conns()
    conn.execute("SET statement_timeout = '400ms'")
    job = conn.execute("SELECT sqlchat.submit('a slow question')").fetchone()[0]
    started = time.monotonic()
    assert wait_state(conn, job, {"failed"}) == "failed"
    assert time.monotonic() - started < 2.5, "the timeout runs from the job's start"
    from_job = raised(conn, "SELECT sqlchat.result(%s)", (job,))
    direct = raised(conn, "SELECT sqlchat.ask_full('a slow question')")
    assert from_job == direct
    assert from_job[:2] == ("57014", "canceling statement due to statement timeout")


def test_a_job_runs_as_its_role_with_the_sessions_settings(jc, gw, conns, idle):
    admin = conns()
    admin.execute("ALTER TABLE customers ENABLE ROW LEVEL SECURITY")
    admin.execute("CREATE POLICY tenant ON customers USING (tenant = current_setting('app.tenant', true))")
    admin.execute("ALTER ROLE job_bob SET sqlchat.max_rows = 4")
    # The workers' own role (the bootstrap superuser) has a tenant: no job may see it.
    admin.execute("ALTER ROLE postgres IN DATABASE jobs SET app.tenant = 'a'")
    try:
        gw.rule(purpose=GEN, contains="per city", content="SELECT id, city FROM customers ORDER BY id")
        gw.rule(purpose=GEN, contains="when", content="SELECT at FROM events")
        bob = conns("job_bob")
        bob.execute("SET app.tenant = 'b'")
        bob.execute("SET TimeZone = 'Asia/Tokyo'")
        bob.execute("SET sqlchat.enable_cache = off")
        rows_job = bob.execute("SELECT sqlchat.submit('customers per city')").fetchone()[0]
        time_job = bob.execute("SELECT sqlchat.submit('when was the event?')").fetchone()[0]
        # Captured at submit: later changes in the session do not reach the job.
        bob.execute("SET app.tenant = 'a'")
        rows = bob.execute("SELECT rows, truncated FROM sqlchat.result(%s, 10000)", (rows_job,)).fetchone()
        assert [r["id"] for r in rows[0]] == [1, 3, 5, 7], "bob's tenant, bob's ALTER ROLE max_rows"
        assert rows[1] is True
        at = bob.execute("SELECT rows FROM sqlchat.result(%s, 10000)", (time_job,)).fetchone()[0][0]["at"]
        assert "+09" in at, f"the session's TimeZone: {at}"
        bob.execute("SET app.tenant = 'b'")
        direct = bob.execute("SELECT rows, truncated FROM sqlchat.ask_full('customers per city')").fetchone()
        assert direct == rows
        assert bob.execute("SELECT role FROM sqlchat.jobs WHERE job = %s", (rows_job,)).fetchone()[0] == "job_bob"
        alice = conns("job_alice")
        alice.execute("SET sqlchat.enable_cache = off")
        no_tenant = alice.execute("SELECT sqlchat.submit('customers per city')").fetchone()[0]
        assert alice.execute("SELECT rows FROM sqlchat.result(%s, 10000)", (no_tenant,)).fetchone()[0] == []
        assert alice.execute("SELECT rows FROM sqlchat.ask_full('customers per city')").fetchone()[0] == []
    finally:
        admin.execute("ALTER ROLE postgres IN DATABASE jobs RESET app.tenant")
        admin.execute("DROP POLICY tenant ON customers")
        admin.execute("ALTER TABLE customers DISABLE ROW LEVEL SECURITY")
        admin.execute("ALTER ROLE job_bob RESET sqlchat.max_rows")


def test_a_role_sees_only_its_own_jobs(jc, gw, conns, idle):
    gw.rule(purpose=GEN, content=COUNT)
    alice, bob, admin = conns("job_alice"), conns("job_bob"), conns()
    job = alice.execute("SELECT sqlchat.submit('how many customers?')").fetchone()[0]
    wait_state(alice, job, {"done"})
    for statement in ("SELECT sqlchat.result(%s)", "SELECT sqlchat.cancel_job(%s)"):
        sqlstate, message, _, hint = raised(bob, statement, (job,))
        assert sqlstate == "42704" and f"job {job} does not exist" in message and hint
    assert bob.execute("SELECT count(*) FROM sqlchat.jobs WHERE job = %s", (job,)).fetchone()[0] == 0
    assert admin.execute("SELECT role FROM sqlchat.jobs WHERE job = %s", (job,)).fetchone()[0] == "job_alice"
    assert admin.execute("SELECT (sqlchat.result(%s)).rows", (job,)).fetchone()[0] == [{"n": 30}]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        bob.execute("SELECT * FROM sqlchat.job")


def test_notify_and_a_waiting_result_come_at_the_jobs_end(jc, gw, conns, idle):
    gw.rule(purpose=GEN, content=COUNT, delay_ms=500)
    listener, conn = conns(), conns()
    listener.execute("LISTEN sqlchat_jobs")
    job = conn.execute("SELECT sqlchat.submit('how many customers, slowly?')").fetchone()[0]
    started = time.monotonic()
    assert conn.execute("SELECT (sqlchat.result(%s, 10000)).rows", (job,)).fetchone()[0] == [{"n": 30}]
    waited = time.monotonic() - started
    assert waited < 2.0, f"result waited {waited:.2f} s for a job of about 0.5 s"
    payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert payloads == [str(job)]
    # A job submitted in the same transaction cannot run before it commits: result does not wait.
    with conn.transaction():
        queued = conn.execute("SELECT sqlchat.submit('how many customers, again?')").fetchone()[0]
        started = time.monotonic()
        assert conn.execute("SELECT sqlchat.result(%s, 5000) IS NULL", (queued,)).fetchone()[0]
        assert time.monotonic() - started < 1
    wait_state(conn, queued, {"done"})
    # The wait is interruptible.
    gw.rule(purpose=GEN, contains="never", fault="hang_before_headers", hang_ms=20000)
    hung = conn.execute("SELECT sqlchat.submit('a question that never ends')").fetchone()[0]
    conn.execute("SET statement_timeout = '300ms'")
    assert raised(conn, "SELECT sqlchat.result(%s, 60000)", (hung,))[0] == "57014"
    conn.execute("RESET statement_timeout")
    assert conn.execute("SELECT sqlchat.cancel_job(%s)", (hung,)).fetchone()[0] is True


def test_cancel_stops_a_queued_and_a_running_job(jc, gw, conns, idle):
    gw.rule(purpose=GEN, contains="forever", fault="hang_before_headers", hang_ms=60000)
    gw.rule(purpose=GEN, content=COUNT)
    conn, listener = conns(), conns()
    listener.execute("LISTEN sqlchat_jobs")
    pause(jc)
    queued = conn.execute("SELECT sqlchat.submit('count customers, but not now')").fetchone()[0]
    assert conn.execute("SELECT sqlchat.cancel_job(%s)", (queued,)).fetchone()[0] is True
    assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == [str(queued)]
    pause(jc, False)
    running = conn.execute("SELECT sqlchat.submit('count customers forever')").fetchone()[0]
    wait_state(conn, running, {"running"})
    gw.wait_for(lambda reqs: any("forever" in str(r["messages"]) for r in reqs))
    started = time.monotonic()
    assert conn.execute("SELECT sqlchat.cancel_job(%s)", (running,)).fetchone()[0] is True
    assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == [str(running)]
    assert time.monotonic() - started < 0.5
    for job in (queued, running):
        assert state(conn, job) == "cancelled"
        sqlstate, message, _, hint = raised(conn, "SELECT sqlchat.result(%s)", (job,))
        assert (sqlstate, message) == ("57014", f"sqlchat: job {job} was cancelled") and "cancel_job" in hint
    assert conn.execute("SELECT sqlchat.cancel_job(%s)", (running,)).fetchone()[0] is False, "already ended"
    assert not any("not now" in str(r["messages"]) for r in gw.requests()), "the queued job never ran"
    def gateway_saw_the_client_go():
        return any(r["client_disconnected"] for r in gw.requests() if "forever" in str(r["messages"]))

    assert wait_until(gateway_saw_the_client_go, 5), "the cancelled call's connection was closed"


def test_submit_refuses_read_only_transactions(jc, conns, idle):
    conn = conns()
    conn.execute("SET default_transaction_read_only = on")
    for statement in ("SELECT sqlchat.submit('anything')", "SELECT sqlchat.cancel_job(1)"):
        sqlstate, message, _, hint = raised(conn, statement)
        assert sqlstate == "25006" and "read-only transaction" in message and "sqlchat.ask" in hint
    conn.execute("RESET default_transaction_read_only")
    assert raised(conn, "SELECT sqlchat.submit(NULL)")[0] == "22004"
    assert raised(conn, "SELECT sqlchat.submit('  ')")[0] == "22023"


def test_a_hot_standby_reads_jobs_and_refuses_to_queue(jc, gw, conns, idle):
    gw.rule(purpose=GEN, content=COUNT, delay_ms=300)
    standby_dir = jc.dir / "standby"
    standby_dir.mkdir()
    os.chmod(standby_dir, 0o777)
    port = harness.free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        as_pg + [str(harness.PGBIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(jc.port), "-U", "postgres",
                 "-D", str(standby_dir / "data"), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"],
        check=True, capture_output=True, timeout=300,
    )
    try:
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "start", str(standby_dir), str(port),
                        "shared_preload_libraries=sqlchat", *jc.options], check=True, capture_output=True, timeout=120)
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="jobs", autocommit=True) as standby:
            sqlstate, message, _, hint = raised(standby, "SELECT sqlchat.submit('how many customers?')")
            assert sqlstate == "25006" and "hot standby" in message and "sqlchat.ask" in hint
            job = conns().execute("SELECT sqlchat.submit('how many customers?')").fetchone()[0]
            assert wait_until(lambda: standby.execute("SELECT count(*) FROM sqlchat.jobs WHERE job = %s",
                                                      (job,)).fetchone()[0] == 1, 10), "replayed"
            # No worker wakes a standby's waiting result: it looks again until the end is replayed.
            rows = standby.execute("SELECT rows FROM sqlchat.result(%s, 10000)", (job,)).fetchone()[0]
            assert rows == [{"n": 30}]
            assert standby.execute("SELECT state FROM sqlchat.jobs WHERE job = %s", (job,)).fetchone()[0] == "done"
            assert count(jc, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sqlchat launcher'") == 1
            launchers = standby.execute("SELECT count(*) FROM pg_stat_activity "
                                        "WHERE backend_type LIKE 'sqlchat%'").fetchone()[0]
            assert launchers == 0, "no launcher runs before promotion"
    finally:
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "stop", str(standby_dir)], capture_output=True, timeout=120)


def test_a_dropped_role_and_a_dropped_database_end_their_jobs(jc, gw, conns, idle):
    gw.rule(purpose=GEN, contains="hangs", fault="hang_before_headers", hang_ms=60000)
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns()
    admin.execute("CREATE ROLE job_gone LOGIN")
    admin.execute("GRANT SELECT ON customers TO job_gone")
    pause(jc)
    job = conns("job_gone").execute("SELECT sqlchat.submit('how many customers?')").fetchone()[0]
    admin.execute("REVOKE SELECT ON customers FROM job_gone")
    admin.execute("DROP ROLE job_gone")
    # A database dropped with jobs queued: its jobs go with it.
    admin.execute("DROP DATABASE IF EXISTS jobs_doomed")
    admin.execute("CREATE DATABASE jobs_doomed")
    harness.create_extension(jc, "jobs_doomed")
    with jc.connect("jobs_doomed") as doomed:
        doomed.execute("CREATE TABLE t (x int)")
        doomed.execute("SELECT sqlchat.submit('how many rows in t?')")
    admin.execute("DROP DATABASE jobs_doomed")
    pause(jc, False)
    started = time.monotonic()
    assert wait_state(admin, job, {"failed"}) == "failed"
    print(f"\nthe dropped role's job failed {time.monotonic() - started:.2f} s after the workers were allowed again")
    sqlstate, message, _, hint = raised(admin, "SELECT sqlchat.result(%s)", (job,))
    assert sqlstate == "42704" and "job_gone" in message and hint
    # A database dropped while a job runs there: DROP DATABASE does not wait for the worker.
    admin.execute("CREATE DATABASE jobs_doomed")
    harness.create_extension(jc, "jobs_doomed")
    with jc.connect("jobs_doomed") as doomed:
        doomed.execute("CREATE TABLE t (x int)")
        running = doomed.execute("SELECT sqlchat.submit('a question that hangs')").fetchone()[0]
        wait_state(doomed, running, {"running"})
    started = time.monotonic()
    admin.execute("DROP DATABASE jobs_doomed")
    assert time.monotonic() - started < 3


def test_a_thousand_jobs_at_once(jc, conns, idle):
    conn = conns()
    conn.execute("SET sqlchat.engine = 'offline'")
    conn.execute("SET sqlchat.max_queued_jobs = 1000")
    started = time.monotonic()
    first, last = conn.execute("SELECT min(j), max(j) FROM (SELECT sqlchat.submit('how many customers are there?') j "
                               "FROM generate_series(1, 1000)) s").fetchone()
    submitted = time.monotonic() - started
    ours = f"SELECT count(*) FROM sqlchat.job WHERE id BETWEEN {first} AND {last}"
    assert wait_until(lambda: count(jc, ours + " AND state = 'done'") == 1000, 90)
    took = time.monotonic() - started
    assert count(jc, ours) == 1000
    print(f"\n1,000 jobs (offline engine, {WORKERS} workers): submitted in {submitted:.2f} s, all done after {took:.1f} s")


def test_a_hanging_gateway_fails_every_job_by_its_timeout(jc, gw, conns, idle):
    gw.rule(purpose=GEN, fault="hang_before_headers", hang_ms=60000)
    conn = conns()
    conn.execute("SET sqlchat.request_timeout_ms = 500")
    conn.execute("SET sqlchat.request_retries = 0")
    jobs = [conn.execute("SELECT sqlchat.submit(%s)", (f"hanging question {i}",)).fetchone()[0] for i in range(4)]
    for job in jobs:
        assert wait_state(conn, job, {"failed"}, timeout=15) == "failed"
        assert raised(conn, "SELECT sqlchat.result(%s)", (job,))[0] == "08000"


def test_finished_jobs_are_removed_after_the_retention(jc, gw, conns, idle):
    gw.rule(purpose=GEN, content=COUNT)
    jc.set_system({"sqlchat.job_retention": 1})
    try:
        conn = conns()
        job = conn.execute("SELECT sqlchat.submit('how many customers?')").fetchone()[0]
        wait_state(conn, job, {"done"})
        assert wait_until(lambda: state(conn, job) is None, 10), "removed about a second after the retention"
    finally:
        jc.set_system({"sqlchat.job_retention": None})


def test_a_restart_loses_no_queued_job(jc, gw, conns, idle):
    gw.rule(purpose=GEN, content=COUNT)
    pause(jc)
    conn = conns()
    jobs = [conn.execute("SELECT sqlchat.submit(%s)", (f"how many customers ({i})?",)).fetchone()[0] for i in range(20)]
    conn.close()
    with jc.connect() as admin:
        admin.execute("ALTER SYSTEM RESET sqlchat.max_workers")
    jc.restart()
    with jc.connect("jobs") as conn:
        assert wait_until(lambda: count(jc, f"SELECT count(*) FROM sqlchat.job WHERE state = 'done' AND id >= {min(jobs)}") == 20, 30)


def test_a_worker_killed_mid_job_loses_nothing(jc, gw, conns, idle):
    # The first run hangs; the job runs again after the crash and ends like the jobs queued behind it.
    gw.rule(purpose=GEN, contains="killed", fault="hang_before_headers", hang_ms=60000, times=1)
    gw.rule(purpose=GEN, content=COUNT)
    conn = conns()
    killed = conn.execute("SELECT sqlchat.submit('the question whose worker is killed')").fetchone()[0]
    wait_state(conn, killed, {"running"})
    gw.wait_for(lambda reqs: any("killed" in str(r["messages"]) for r in reqs))
    pid = conn.execute("SELECT worker_pid FROM sqlchat.jobs WHERE job = %s", (killed,)).fetchone()[0]
    queued = [conn.execute("SELECT sqlchat.submit(%s)", (f"queued behind ({i})",)).fetchone()[0] for i in range(3)]
    os.kill(pid, signal.SIGKILL)
    conn.close()

    def reconnected():
        try:
            with jc.connect("jobs") as c:
                return c.execute("SELECT count(*) FROM sqlchat.job WHERE state = 'done' AND id = ANY(%s)",
                                 ([killed, *queued],)).fetchone()[0] == 4
        except psycopg.OperationalError:
            return False

    assert wait_until(reconnected, 40, interval=0.2)
    with jc.connect("jobs") as c:
        assert c.execute("SELECT runs FROM sqlchat.jobs WHERE job = %s", (killed,)).fetchone()[0] == 2


def test_a_job_runs_only_while_its_session_user_could_log_in_and_become_its_role(jc, gw, conns, idle):
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns()
    roles = ("job_carol", "job_dave", "job_erin", "job_frank")
    for role in roles:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    admin.execute("DROP ROLE IF EXISTS job_readers")
    admin.execute("CREATE ROLE job_readers NOLOGIN")
    admin.execute("GRANT SELECT ON customers TO job_readers")
    admin.execute("GRANT job_readers TO job_carol, job_dave, job_erin, job_frank")
    try:
        pause(jc)
        jobs = {}
        for role in roles:
            conn = conns(role)
            conn.execute("SET ROLE job_readers")
            jobs[role] = conn.execute("SELECT sqlchat.submit('how many customers?')").fetchone()[0]
        admin.execute("ALTER ROLE job_carol NOLOGIN")
        admin.execute("REVOKE CONNECT ON DATABASE jobs FROM PUBLIC")
        admin.execute("GRANT CONNECT ON DATABASE jobs TO job_carol, job_erin, job_frank, job_alice, job_bob")
        admin.execute("REVOKE job_readers FROM job_erin")
        pause(jc, False)
        for job in jobs.values():
            wait_state(admin, job, {"done", "failed"})
        refused = {role: raised(admin, "SELECT sqlchat.result(%s)", (job,)) if state(admin, job) == "failed" else None
                   for role, job in jobs.items()}
        assert refused["job_carol"][:2] == (
            "28000", f"sqlchat: job {jobs['job_carol']} cannot run: role job_carol that submitted it is not "
                     "permitted to log in")
        assert refused["job_dave"][0] == "42501" and "CONNECT privilege on database jobs" in refused["job_dave"][1]
        assert refused["job_erin"][0] == "42501" and "may no longer SET ROLE job_readers" in refused["job_erin"][1]
        assert all(r[3] for r in refused.values() if r), "each refusal has a hint"
        # A group role that cannot log in is no obstacle: the session user logged in.
        assert refused["job_frank"] is None
        assert admin.execute("SELECT (sqlchat.result(%s)).rows, role FROM sqlchat.jobs WHERE job = %s",
                             (jobs["job_frank"], jobs["job_frank"])).fetchone() == ([{"n": 30}], "job_readers")
    finally:
        admin.execute("GRANT CONNECT ON DATABASE jobs TO PUBLIC")
        for role in roles:
            admin.execute(sql.SQL("REVOKE CONNECT ON DATABASE jobs FROM {}").format(sql.Identifier(role)))
        admin.execute("REVOKE CONNECT ON DATABASE jobs FROM job_alice, job_bob")


def test_a_roles_queue_is_capped_and_each_submit_counts_against_its_quota(jc, gw, conns, idle):
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns()
    admin.execute("DROP ROLE IF EXISTS job_quota")
    admin.execute("CREATE ROLE job_quota LOGIN")
    admin.execute("GRANT SELECT ON customers TO job_quota")
    admin.execute("ALTER ROLE job_quota SET sqlchat.max_queued_jobs = 2")
    admin.execute("SELECT sqlchat.set_quota('job_quota', 3, NULL)")
    try:
        pause(jc)
        conn = conns("job_quota")
        queued = [conn.execute("SELECT sqlchat.submit('how many customers?')").fetchone()[0] for _ in range(2)]
        sqlstate, message, _, hint = raised(conn, "SELECT sqlchat.submit('one too many')")
        assert (sqlstate, message) == ("53400", "sqlchat: role job_quota has 2 jobs queued, the most "
                                                 "sqlchat.max_queued_jobs allows")
        assert "sqlchat.max_queued_jobs" in hint and "cancel_job" in hint
        # A cancelled job leaves room; jobs of other roles never count.
        conn.execute("SELECT sqlchat.cancel_job(%s)", (queued[1],))
        assert admin.execute("SELECT sqlchat.submit('a superuser''s job')").fetchone()[0]
        later = conn.execute("SELECT sqlchat.submit('how many customers?')").fetchone()[0]
        # Submits are asks (the one over the cap was not): three of three this hour, so the next is
        # refused at submit, and the job runs without being counted again.
        conn.execute("SELECT sqlchat.cancel_job(%s)", (later,))
        sqlstate, message, _, _ = raised(conn, "SELECT sqlchat.submit('over the quota')")
        assert sqlstate == "53400" and "quota of 3 asks per hour" in message, message
        pause(jc, False)
        assert wait_state(conn, queued[0], {"done", "failed"}) == "done", raised(
            conn, "SELECT sqlchat.result(%s)", (queued[0],))
    finally:
        admin.execute("SELECT sqlchat.set_quota('job_quota', NULL, NULL)")


def test_a_cancel_left_uncommitted_holds_up_no_job(jc, gw, conns, idle):
    gw.rule(purpose=GEN, contains="slowly", content=COUNT, delay_ms=800)
    gw.rule(purpose=GEN, content=COUNT)
    conn, holder = conns(), conns()
    conn.execute("SET sqlchat.enable_cache = off")  # the running job must wait for the gateway
    pause(jc)
    queued = conn.execute("SELECT sqlchat.submit('how many customers, queued?')").fetchone()[0]
    holder.autocommit = False
    try:
        assert holder.execute("SELECT sqlchat.cancel_job(%s)", (queued,)).fetchone()[0] is True
        pause(jc, False)
        running = conn.execute("SELECT sqlchat.submit('how many customers, slowly?')").fetchone()[0]
        wait_state(conn, running, {"running"})
        assert holder.execute("SELECT sqlchat.cancel_job(%s)", (running,)).fetchone()[0] is True
        # The running job's end is recorded although the cancel's transaction is open; the queued
        # job waits for that transaction, and other jobs pass it.
        assert wait_state(conn, running, {"done"}) == "done"
        other = conn.execute("SELECT sqlchat.submit('how many customers, meanwhile?')").fetchone()[0]
        assert wait_state(conn, other, {"done"}) == "done"
        assert state(conn, queued) == "queued"
    finally:
        holder.rollback()
        holder.autocommit = True
    # Rolled back: the job is queued again, and a worker takes it at once.
    started = time.monotonic()
    assert wait_state(conn, queued, {"done"}, timeout=5) == "done"
    print(f"\nthe job whose cancel was rolled back ran {time.monotonic() - started:.2f} s after the rollback")


def test_a_cancel_rolled_back_to_a_savepoint_never_happened(jc, gw, conns, idle):
    gw.rule(purpose=GEN, contains="slowly", content=COUNT, delay_ms=800)
    gw.rule(purpose=GEN, content=COUNT)
    conn, holder = conns(), conns()
    conn.execute("SET sqlchat.enable_cache = off")
    pause(jc)
    queued = conn.execute("SELECT sqlchat.submit('how many customers, queued then kept?')").fetchone()[0]
    holder.autocommit = False
    try:
        holder.execute("SAVEPOINT s")
        assert holder.execute("SELECT sqlchat.cancel_job(%s)", (queued,)).fetchone()[0] is True
        holder.execute("ROLLBACK TO SAVEPOINT s")
        pause(jc, False)
        # Its row is no longer locked, and the transaction is still open: it runs.
        assert wait_state(conn, queued, {"done"}, timeout=5) == "done"
        running = conn.execute("SELECT sqlchat.submit('how many customers, slowly kept?')").fetchone()[0]
        wait_state(conn, running, {"running"})
        holder.execute("SAVEPOINT s")
        assert holder.execute("SELECT sqlchat.cancel_job(%s)", (running,)).fetchone()[0] is True
        holder.execute("ROLLBACK TO SAVEPOINT s")
        holder.commit()
        assert wait_state(conn, running, {"done", "failed", "cancelled"}) == "done", raised(
            conn, "SELECT sqlchat.result(%s)", (running,))
    finally:
        holder.rollback()
        holder.autocommit = True


def test_submit_needs_the_library_preloaded(gateway):
    if not harness.library_installed():
        pytest.skip("sqlchat is not installed")
    cluster = harness.Cluster(preload=False)
    try:
        cluster.create_database("jobs_plain")
        with cluster.connect("jobs_plain") as conn:
            sqlstate, message, _, hint = raised(conn, "SELECT sqlchat.submit('anything')")
        assert sqlstate == "55000" and message == "sqlchat: sqlchat.submit needs sqlchat in shared_preload_libraries"
        assert "shared_preload_libraries" in hint and "restart" in hint
    finally:
        cluster.stop()
