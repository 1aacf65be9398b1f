"""The interaction log, sqlchat.log: a row per ask written by a background worker outside the
caller's transaction, so it is kept through ROLLBACK and errors; a role reads its own rows,
superusers and members of sqlchat.auditor_role all; sqlchat.log_questions and the secrets apply;
retention; a full hand-over buffer drops and counts without blocking; rows waiting at a clean
shutdown are written after the restart; 32 concurrent sessions lose no row; a hot standby does not
log (its statistics count) and says so; without shared_preload_libraries a NOTICE says so. Clusters of this
module's own (restarted, reconfigured, given a standby)."""

import concurrent.futures
import itertools
import os
import subprocess
import time

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

import harness

GEN = "generate_sql"
SHOP = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text);
INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['Oslo','Rome','Lima'])[1 + g % 3] FROM generate_series(1, 30) g;
"""
COUNT = "SELECT count(*) AS n FROM customers"
ROLES = itertools.count(1)


class LogCluster(harness.Cluster):
    """A preloaded cluster that can be restarted with the same options."""

    def __init__(self, settings):
        self.options = ["max_worker_processes=16", "sqlchat.worker_idle_timeout=1", *settings]
        super().__init__(settings=self.options)
        if not self.preloaded:
            self.stop()
            pytest.skip("sqlchat is not installed")

    def start_args(self, directory, port):
        return ["bash", str(harness.CLUSTER_SCRIPT), "start", str(directory), str(port),
                "shared_preload_libraries=sqlchat", *self.options]

    def restart(self):
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "stop", str(self.dir)], check=True, capture_output=True)
        env = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
        subprocess.run(self.start_args(self.dir, self.port), check=True, capture_output=True, timeout=120, env=env)

    def load_shop(self, dbname, gateway):
        self.set_system({"sqlchat.api_base": gateway.api_base, "sqlchat.api_key": harness.API_KEY,
                         "sqlchat.model": harness.MODEL})
        path = self.dir / "shop.sql"
        path.write_text(SHOP)
        self.create_database(dbname, [path])


@pytest.fixture(scope="module")
def lc(gateway):
    c = LogCluster([])
    try:
        c.load_shop("logdb", gateway)
        yield c
    finally:
        c.stop()


def connections(cluster, dbname):
    """Opens connections to `dbname` for one test (as the superuser or `user`) and closes them after."""
    opened = []

    def open_connection(user=None, dbname=dbname, autocommit=True):
        conn = cluster.connect(dbname, user=user, autocommit=autocommit)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        conn.close()


def new_role(admin, prefix, tables=("customers",)):
    """A fresh login role that may read `tables`."""
    name = f"{prefix}_{next(ROLES)}_{os.getpid()}"
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    admin.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(
        sql.SQL(", ").join(map(sql.Identifier, tables)), sql.Identifier(name)))
    return name


@pytest.fixture
def conns(lc):
    yield from connections(lc, "logdb")


@pytest.fixture
def role(lc, conns):
    return new_role(conns(), "log_role")


def wait_until(predicate, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def rows_of(conn, rolname, columns="*"):
    return conn.execute(f"SELECT {columns} FROM sqlchat.log WHERE role_name = %s ORDER BY id", (rolname,)).fetchall()


def wait_for_rows(conn, rolname, n, timeout=30.0):
    """The role's rows once there are n of them (the worker writes them shortly after the asks)."""
    wait_until(lambda: len(rows_of(conn, rolname, "id")) >= n, timeout)
    return rows_of(conn, rolname)


def stats_of(conn, rolname):
    row = conn.execute("SELECT row_to_json(s) FROM sqlchat.stats s WHERE datname = current_database() "
                       "AND rolname = %s", (rolname,)).fetchone()
    return row[0] if row else None


def test_rows_are_kept_when_the_transaction_rolls_back_or_the_ask_fails(lc, gw, role, conns):
    gw.rule(purpose=GEN, contains="failing", content="SELECT nope FROM customers")
    gw.rule(purpose=GEN, content=COUNT)
    conn = conns(user=role, autocommit=False)
    conn.execute("SET sqlchat.enable_cache = off")
    conn.commit()
    for i in range(100):
        conn.execute("SELECT sqlchat.ask_full(%s)", (f"how many customers, rolled back {i}",))
        conn.rollback()
    conn.execute("SET sqlchat.max_attempts = 1")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute("SELECT sqlchat.ask('a failing question', 'sess-1')")
    conn.rollback()
    admin = conns()
    rows = wait_for_rows(admin, role, 101)
    assert len(rows) == 101
    stats = stats_of(admin, role)
    assert stats["asks"] == 101 and stats["log_records_dropped"] == 0
    cols = [d.name for d in admin.execute("SELECT * FROM sqlchat.log LIMIT 0").description]
    first, failed = dict(zip(cols, rows[0])), dict(zip(cols, rows[-1]))
    assert first["question"] == "how many customers, rolled back 0" and first["sql"] == COUNT
    assert first["engine"] == "llm" and first["llm_calls"] == 2 and first["attempts"] == 1
    assert first["prompt_tokens"] > 0 and not first["tokens_estimated"] and first["total_ms"] > 0
    steps = [s["step"] for s in first["steps"]]
    assert steps[0] == "catalog" and "llm:generate_sql" in steps and "llm:answer" in steps, steps
    assert failed["sqlstate"] == "42703" and "nope" in failed["message"] and failed["engine"] is None
    assert failed["session_id"] == "sess-1" and failed["sql"] is None
    log_calls = sum(dict(zip(cols, r))["llm_calls"] for r in rows)
    assert log_calls == sum(stats["llm_requests"].values())
    harness.write_results("ops_log_rollback", {
        "asks_in_rolled_back_transactions": 100, "failed_asks": 1,
        "log_rows": len(rows), "stats_asks": stats["asks"], "dropped": stats["log_records_dropped"],
    })


def test_a_role_reads_its_own_rows_and_auditors_read_all(lc, gw, role, conns):
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns()
    other = f"{role}_other"
    auditors = f"{role}_auditors"
    auditor = f"{role}_auditor"
    for name in (other, auditor):
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        admin.execute(sql.SQL("GRANT SELECT ON customers TO {}").format(sql.Identifier(name)))
    admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(auditors)))
    admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(auditors), sql.Identifier(auditor)))
    mine, theirs, audit = conns(user=role), conns(user=other), conns(user=auditor)
    mine.execute("SELECT sqlchat.ask('how many customers for me?')")
    theirs.execute("SELECT sqlchat.ask('how many customers for them?')")
    wait_for_rows(admin, other, 1)
    wait_for_rows(admin, role, 1)
    assert {r[0] for r in mine.execute("SELECT role_name FROM sqlchat.log").fetchall()} == {role}
    assert {r[0] for r in theirs.execute("SELECT role_name FROM sqlchat.log").fetchall()} == {other}
    assert audit.execute("SELECT count(*) FROM sqlchat.log").fetchone()[0] == 0
    # Only superusers name the auditors.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        mine.execute(sql.SQL("SET sqlchat.auditor_role = {}").format(sql.Literal(role)))
    for statement in ("DELETE FROM sqlchat.log", "UPDATE sqlchat.log SET question = 'x'",
                      "INSERT INTO sqlchat.log (asked_at, role_oid, role_name, verified, from_cache, attempts, "
                      "llm_calls, prompt_tokens, completion_tokens, tokens_estimated, gateway_ms, sql_ms, total_ms) "
                      "VALUES (now(), 10, 'postgres', false, false, 0, 0, 0, 0, false, 0, 0, 0)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            mine.execute(statement)
    lc.set_system({"sqlchat.auditor_role": auditors})
    try:
        audit = conns(user=auditor)
        seen = {r[0] for r in audit.execute("SELECT role_name FROM sqlchat.log").fetchall()}
        assert {role, other} <= seen
        assert {r[0] for r in conns(user=role).execute("SELECT role_name FROM sqlchat.log").fetchall()} == {role}
    finally:
        lc.set_system({"sqlchat.auditor_role": None})
    # A role created later with a dropped role's name does not inherit its rows.
    admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(other)))
    admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(other)))
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(other)))
    assert conns(user=other).execute("SELECT count(*) FROM sqlchat.log").fetchone()[0] == 0


def test_questions_follow_log_questions_and_secrets_never_appear(lc, gw, role, conns):
    gw.rule(purpose=GEN, contains="gateway fails", status=500, body={"error": {"message": f"bad key {harness.API_KEY}"}})
    gw.rule(purpose=GEN, content=COUNT)
    conn = conns(user=role)
    conn.execute("SET sqlchat.enable_cache = off")
    conn.execute(f"SELECT sqlchat.ask('kept question with {harness.API_KEY} inside')")
    conn.execute("SET sqlchat.request_retries = 0")
    with pytest.raises(psycopg.Error):
        conn.execute("SELECT sqlchat.ask('the gateway fails here')")
    admin = conns()
    wait_for_rows(admin, role, 2)
    lc.set_system({"sqlchat.log_questions": "hash"})
    try:
        conns(user=role).execute("SELECT sqlchat.ask('a hashed secret plan')")
        wait_for_rows(admin, role, 3)
        lc.set_system({"sqlchat.log_questions": "off"})
        conns(user=role).execute("SELECT sqlchat.ask('a question left out')")
        wait_for_rows(admin, role, 4)
        questions = [r[0] for r in rows_of(admin, role, "question")]
    finally:
        lc.set_system({"sqlchat.log_questions": None})
    assert questions[0] == "kept question with [redacted] inside"
    assert questions[1] == "the gateway fails here"
    assert questions[2].startswith("sha256:") and len(questions[2]) == 71
    assert questions[3] is None
    everything = admin.execute("SELECT string_agg(l::text, ' ') FROM sqlchat.log l WHERE role_name = %s",
                               (role,)).fetchone()[0]
    assert harness.API_KEY not in everything and "secret plan" not in everything
    failed = rows_of(admin, role, "sqlstate, message")[1]
    assert failed[0] and failed[1], failed


def test_values_of_private_columns_never_appear(lc, gw, role, conns):
    # The model casts a private column's values: PostgreSQL's error quotes one of them.
    gw.rule(purpose=[GEN, "repair"], contains="private", content="SELECT name::int FROM customers")
    admin = conns()
    admin.execute("SELECT sqlchat.set_private('customers', 'name')")
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.max_attempts = 2")
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute("SELECT sqlchat.ask('the private names as numbers')")
    finally:
        admin.execute("SELECT sqlchat.set_private('customers', 'name', false)")
    wait_for_rows(admin, role, 1)
    sqlstate, message = rows_of(admin, role, "sqlstate, message")[0]
    assert sqlstate == "22P02" and "withheld" in message, message
    everything = admin.execute("SELECT string_agg(l::text, ' ') FROM sqlchat.log l WHERE role_name = %s",
                               (role,)).fetchone()[0]
    assert "customer " not in everything, everything


def test_32_concurrent_sessions_lose_no_row(lc, gw, role, conns):
    gw.rule(purpose=GEN, content=COUNT)
    per_session = 4

    def session(i):
        with lc.connect("logdb", user=role) as c:
            c.execute("SET sqlchat.enable_cache = off")
            for k in range(per_session):
                c.execute("SELECT sqlchat.ask(%s)", (f"concurrent {i} {k}",))

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(session, range(32)))
    admin = conns()
    rows = wait_for_rows(admin, role, 32 * per_session)
    questions = {r[0] for r in rows_of(admin, role, "question")}
    stats = stats_of(admin, role)
    assert len(rows) == 32 * per_session and len(questions) == 32 * per_session
    assert stats["log_records_dropped"] == 0
    harness.write_results("ops_log_concurrency", {
        "sessions": 32, "asks": 32 * per_session, "log_rows": len(rows),
        "lost": 32 * per_session - len(rows), "dropped": stats["log_records_dropped"],
    })


def test_a_worker_stopped_while_writing_gives_its_rows_back(lc, gw, role, conns):
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns(autocommit=False)
    admin.execute("LOCK TABLE sqlchat.log IN ACCESS EXCLUSIVE MODE")
    asker = conns(user=role)
    for i in range(5):
        asker.execute("SELECT sqlchat.ask(%s)", (f"asked while the log is locked {i}",))
    watcher = conns()
    blocked = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sqlchat worker' AND datname = 'logdb' " \
              "AND wait_event_type = 'Lock'"
    pid = wait_until(lambda: watcher.execute(blocked).fetchone(), 10)
    assert pid, "the worker waits for the lock with the rows it claimed"
    watcher.execute("SELECT pg_terminate_backend(%s)", (pid[0],))
    assert wait_until(lambda: watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                              (pid[0],)).fetchone()[0] == 0, 10)
    admin.rollback()
    rows = wait_for_rows(watcher, role, 5)
    assert len(rows) == 5, "another worker wrote the rows the stopped one gave back"
    assert stats_of(watcher, role)["log_records_dropped"] == 0


def test_background_jobs_are_logged_as_the_role_that_submitted_them(lc, gw, role, conns):
    gw.rule(purpose=GEN, content=COUNT)
    conn = conns(user=role)
    job = conn.execute("SELECT sqlchat.submit('how many customers, in the background?')").fetchone()[0]
    assert conn.execute("SELECT (sqlchat.result(%s, 20000)).sql", (job,)).fetchone()[0] == COUNT
    rows = wait_for_rows(conns(), role, 1)
    assert len(rows) == 1
    assert rows_of(conns(), role, "question, engine")[0] == ("how many customers, in the background?", "llm")


def test_retention_removes_old_rows(lc, gw, role, conns):
    gw.rule(purpose=GEN, content=COUNT)
    conns(user=role).execute("SELECT sqlchat.ask('how many customers, soon removed?')")
    admin = conns()
    assert len(wait_for_rows(admin, role, 1)) == 1
    first = rows_of(admin, role, "id")[0][0]
    lc.set_system({"sqlchat.log_retention": 1})
    try:
        # The next worker in the database removes rows past the retention when it starts and
        # before it ends (after 1 s idle here); the next ask brings one.
        time.sleep(1.5)
        conns(user=role).execute("SELECT sqlchat.ask('how many customers, asked later?')")
        assert wait_until(lambda: admin.execute("SELECT count(*) FROM sqlchat.log WHERE id = %s",
                                                (first,)).fetchone()[0] == 0, 30), "the old row is removed"
        assert wait_until(lambda: admin.execute("SELECT count(*) FROM sqlchat.log").fetchone()[0] == 0, 30), \
            "the later one too, once it is past the retention"
    finally:
        lc.set_system({"sqlchat.log_retention": None})


def test_a_hot_standby_does_not_log_but_counts_and_reads(lc, gw, role, conns):
    gw.rule(purpose=GEN, content=COUNT)
    conns(user=role).execute("SELECT sqlchat.ask('asked on the primary')")
    admin = conns()
    wait_for_rows(admin, role, 1)
    standby_dir = lc.dir / "standby"
    standby_dir.mkdir()
    os.chmod(standby_dir, 0o777)
    port = harness.free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        as_pg + [str(harness.PGBIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(lc.port), "-U", "postgres",
                 "-D", str(standby_dir / "data"), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"],
        check=True, capture_output=True, timeout=300,
    )
    try:
        subprocess.run(lc.start_args(standby_dir, port), check=True, capture_output=True, timeout=120)
        with psycopg.connect(host="127.0.0.1", port=port, user=role, dbname="logdb", autocommit=True) as standby:
            notices = []
            standby.add_notice_handler(lambda d: notices.append(d.message_primary))
            for i in range(2):
                standby.execute("SELECT sqlchat.ask(%s)", (f"asked on the standby {i}",))
            said = [n for n in notices if "hot standby" in n]
            assert len(said) == 1 and "sqlchat.log" in said[0] and "sqlchat.stats" in said[0], notices
            # Its own rows, replayed from the primary, read as on the primary.
            assert [r[0] for r in standby.execute("SELECT question FROM sqlchat.log").fetchall()] == \
                ["asked on the primary"]
            assert standby.execute("SELECT asks FROM sqlchat.stats WHERE rolname = current_user").fetchone()[0] == 2
        # Nothing reaches the primary's log: a later ask there is the only new row.
        conns(user=role).execute("SELECT sqlchat.ask('asked on the primary again')")
        wait_for_rows(admin, role, 2)
        assert [r[0] for r in rows_of(admin, role, "question")] == ["asked on the primary", "asked on the primary again"]
    finally:
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "stop", str(standby_dir)], capture_output=True, timeout=120)


# ---- a small hand-over buffer, workers paused -------------------------------------------------------


def metric(conn, name):
    text = conn.execute("SELECT sqlchat.metrics()").fetchone()[0]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return sum(s.value for s in families[name].samples if s.labels.get("datname") == "smalldb")


def test_a_full_buffer_drops_and_counts_without_waiting_and_a_restart_keeps_waiting_rows(gateway):
    c = LogCluster(["sqlchat.log_buffer=64kB"])
    try:
        c.load_shop("smalldb", gateway)
        c.set_system({"sqlchat.max_workers": 0, "sqlchat.engine": "offline"})
        long_question = "how many customers are there? " + "and so on " * 300
        with c.connect("smalldb") as conn:
            times = []
            for i in range(60):
                started = time.monotonic()
                conn.execute("SELECT sqlchat.ask(%s)", (f"{long_question} {i}",))
                times.append(time.monotonic() - started)
            dropped = conn.execute("SELECT log_records_dropped FROM sqlchat.stats "
                                   "WHERE rolname = current_user").fetchone()[0]
            assert 20 <= dropped < 60, dropped
            assert metric(conn, "sqlchat_log_records_dropped") == dropped
            assert conn.execute("SELECT count(*) FROM sqlchat.log").fetchone()[0] == 0, "no worker wrote yet"
            assert max(times) < 5, "a full buffer never makes an ask wait"
        # A clean restart keeps the waiting rows; once workers run they are written.
        c.restart()
        c.set_system({"sqlchat.max_workers": 2})
        with c.connect("smalldb") as conn:
            written = wait_until(lambda: conn.execute("SELECT count(*) FROM sqlchat.log").fetchone()[0] == 60 - dropped,
                                 30)
            n = conn.execute("SELECT count(*) FROM sqlchat.log").fetchone()[0]
            assert written, f"{n} rows written, {60 - dropped} expected"
            # The restart kept the counter too (a clean shutdown saves the statistics).
            assert conn.execute("SELECT log_records_dropped FROM sqlchat.stats "
                                "WHERE rolname = current_user").fetchone()[0] == dropped
        harness.write_results("ops_log_full_buffer", {
            "log_buffer": "64kB", "asks": 60, "dropped_and_counted": dropped, "written_after_restart": n,
            "slowest_ask_s": round(max(times), 3),
        })
    finally:
        c.stop()


def test_without_preloading_the_log_says_so():
    c = harness.Cluster(preload=False)
    try:
        try:
            c.create_database("log_plain")
        except harness.ExtensionMissing as e:
            pytest.skip(str(e))
        with c.connect("log_plain") as conn:
            conn.execute("CREATE ROLE log_plain_role LOGIN")
            conn.execute("CREATE TABLE t (id int)")
            conn.execute("GRANT SELECT ON t TO log_plain_role")
        with c.connect("log_plain", user="log_plain_role") as conn:
            notices = []
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            conn.execute("SET sqlchat.engine = 'offline'")
            conn.execute("SELECT sqlchat.ask('how many t are there?')")
            said = [n for n in notices if "sqlchat.log" in n and "shared_preload_libraries" in n]
            assert len(said) == 1, notices
            assert conn.execute("SELECT count(*) FROM sqlchat.log").fetchone()[0] == 0
        # Rows kept from a time the library was preloaded: read as ever, and the NOTICE says why
        # no new ones come.
        with c.connect("log_plain") as conn:
            conn.execute("INSERT INTO sqlchat.log (asked_at, role_oid, role_name, verified, from_cache, attempts, "
                         "llm_calls, prompt_tokens, completion_tokens, tokens_estimated, gateway_ms, sql_ms, total_ms) "
                         "SELECT now(), oid, rolname, false, false, 1, 0, 0, 0, false, 0, 0, 0 FROM pg_roles "
                         "WHERE rolname IN ('postgres', 'log_plain_role')")
        with c.connect("log_plain", user="log_plain_role") as conn:
            notices = []
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            assert conn.execute("SELECT role_name FROM sqlchat.log").fetchall() == [("log_plain_role",)]
            assert any("sqlchat.log" in n and "shared_preload_libraries" in n for n in notices), notices
    finally:
        c.stop()
