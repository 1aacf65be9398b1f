"""Security review of background jobs, error masking and quotas (third review): each test
reproduces one finding (its docstring tells the attack) and passes once it is fixed. A preloaded cluster of this module's own."""

import concurrent.futures
import re
import time

import psycopg
import pytest
from psycopg import sql

from test_log import COUNT, GEN, LogCluster, connections, new_role

STAFF = """
CREATE TABLE staff (id int PRIMARY KEY, nickname text NOT NULL);
INSERT INTO staff VALUES (1, 'tiger');
"""


@pytest.fixture(scope="module")
def rc(gateway):
    c = LogCluster([])
    try:
        c.load_shop("r3db", gateway)
        with c.connect("r3db") as admin:
            admin.execute(STAFF)
        yield c
    finally:
        c.stop()


@pytest.fixture
def conns(rc):
    yield from connections(rc, "r3db")


@pytest.fixture
def role(rc, conns):
    return new_role(conns(), "r3_role", ("customers", "staff"))


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_no_private_character_leaks_through_a_quoted_error(rc, gw, role, conns):
    """mask_row_values keeps a double-quoted part when it occurs anywhere in the schema text
    (`names.contains(quoted)`, a substring test), not when it is a name of the schema. Any one
    character (and most short runs) occurs somewhere in the schema, so a hostile model reads a
    private value back one character per repair: `substr(col, k, 1)::int` fails with
    `invalid input syntax for type integer: "t"`, kept as it is in the repair request."""
    admin = conns()
    admin.execute("SELECT sqlchat.set_private('staff', 'nickname')")
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.max_attempts = 2")
        conn.execute("SET sqlchat.enable_cache = off")
        gw.rule(purpose=GEN, content="SELECT substr(nickname, 1, 1)::int AS n FROM staff")
        gw.rule(purpose="repair", content="SELECT substr(nickname, 2, 1)::int AS n FROM staff")
        gw.clear_requests()
        with pytest.raises(psycopg.Error) as failed:
            conn.execute("SELECT sqlchat.ask('the staff nickname as a number')")
        repair = str(gw.requests("repair"))
    finally:
        admin.execute("SELECT sqlchat.set_private('staff', 'nickname', false)")
    leaked = re.findall(r'type integer: \\*"(\w)\\*"', repair)
    assert not leaked, f"private characters {leaked} went to the model in the repair request"
    # The final error (and so sqlchat.log.message) keeps the second one.
    assert 'integer: "i"' not in str(failed.value), str(failed.value)


def tokens_today(admin, name):
    row = admin.execute("SELECT tokens_today FROM sqlchat.quotas WHERE role_name = %s", (name,)).fetchone()
    return row[0] if row else 0


def wait_job(conn, job, timeout=20):
    def ended():
        row = conn.execute("SELECT state FROM sqlchat.job_status(%s)", (job,)).fetchone()
        return row is not None and row[0] in ("done", "failed", "cancelled")
    assert wait_until(ended, timeout), f"job {job} did not end"
    return conn.execute("SELECT state, message FROM sqlchat.job_status(%s)", (job,)).fetchone()


def test_a_jobs_tokens_are_charged_to_the_login_that_set_role(rc, gw, role, conns):
    """An ask charges its tokens to current_user and session_user (quota.askers). A job runs with
    its role as the session user (SetSessionAuthorization), so its tokens are charged to the role
    only: a login with a tokens_per_day quota that SET ROLEs to a group and submits never has its
    own tokens counted, and its token quota never refuses it."""
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns()
    group = f"{role}_group"
    admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(group)))
    admin.execute(sql.SQL("GRANT SELECT ON customers TO {}").format(sql.Identifier(group)))
    admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role)))
    admin.execute("SELECT sqlchat.set_quota(%s, NULL, 1000000)", (role,))
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.enable_cache = off")
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(group)))
        direct_before = tokens_today(admin, role)
        conn.execute("SELECT sqlchat.ask('how many customers, asked directly?')")
        direct = tokens_today(admin, role) - direct_before
        assert direct > 0, "precondition: a direct ask under SET ROLE charges the login's tokens"
        job = conn.execute("SELECT sqlchat.submit('how many customers, as a job?')").fetchone()[0]
        assert wait_job(conn, job)[0] == "done"
        by_job = tokens_today(admin, role) - direct_before - direct
    finally:
        admin.execute("SELECT sqlchat.set_quota(%s, NULL, NULL)", (role,))
    assert by_job > 0, "the job's tokens were not charged to the login that submitted it"


def test_concurrent_submits_stay_within_max_queued_jobs(rc, gw, role, conns):
    """submit counts the role's queued jobs and then inserts: sessions of one role whose
    transactions are open at once would each see none of the others' jobs, and together queue
    several times sqlchat.max_queued_jobs. One role's submits wait for each other's commits."""
    admin = conns()
    admin.execute(sql.SQL("ALTER ROLE {} SET sqlchat.max_queued_jobs = 2").format(sql.Identifier(role)))
    admin.execute("ALTER SYSTEM SET sqlchat.max_workers = 0")
    admin.execute("SELECT pg_reload_conf()")

    def submit_twice(session):
        try:
            for k in range(2):
                session.execute("SELECT sqlchat.submit(%s)", (f"question {k}",))
            time.sleep(0.5)
            session.commit()
            return None
        except psycopg.Error as e:
            session.rollback()
            return e.sqlstate

    try:
        sessions = [conns(user=role, autocommit=False) for _ in range(3)]
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            outcomes = list(pool.map(submit_twice, sessions))
        queued = admin.execute(
            "SELECT count(*) FROM sqlchat.job WHERE role_name = %s AND state = 'queued'", (role,)).fetchone()[0]
    finally:
        admin.execute("UPDATE sqlchat.job SET state = 'cancelled', finished_at = now() "
                      "WHERE role_name = %s AND state = 'queued'", (role,))
        admin.execute("ALTER SYSTEM RESET sqlchat.max_workers")
        admin.execute("SELECT pg_reload_conf()")
    assert queued <= 2, f"{queued} jobs queued for a role capped at 2"
    assert outcomes.count("53400") == 2 and outcomes.count(None) == 1, outcomes


SLOW = "SELECT count(*) AS n FROM " + ", ".join(f"customers c{k}" for k in range(9))


def test_no_role_holds_the_workers_past_job_timeout(rc, gw, role, conns):
    """A job runs as long as its own settings allow, and the submitting role chooses them all
    (statement_timeout, sqlchat.query_timeout_ms, request_timeout_ms, request_retries,
    max_attempts are user settings captured at submit). Round-robin orders only queued jobs:
    a role that submits sqlchat.max_workers slow jobs holds every worker slot of the cluster.
    sqlchat.job_timeout bounds each job's run, and so another role's wait."""
    gw.rule(purpose=GEN, contains="slowly", content=SLOW)
    gw.rule(purpose=GEN, content=COUNT)
    admin = conns()
    other = f"{role}_other"
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(other)))
    admin.execute(sql.SQL("GRANT SELECT ON customers TO {}").format(sql.Identifier(other)))
    rc.set_system({"sqlchat.job_timeout": 6})
    try:
        hog = conns(user=role)
        hog.execute("SET statement_timeout = 0")
        hog.execute("SET sqlchat.query_timeout_ms = 3600000")
        hog.execute("SET sqlchat.enable_cache = off")
        workers = int(admin.execute("SHOW sqlchat.max_workers").fetchone()[0])
        slow = [hog.execute("SELECT sqlchat.submit(%s)", (f"count slowly, take {k}",)).fetchone()[0]
                for k in range(workers)]
        try:
            assert wait_until(lambda: admin.execute(
                "SELECT count(*) FROM sqlchat.job WHERE id = ANY(%s) AND state = 'running'", (slow,)).fetchone()[0]
                == workers, 20), "precondition: the slow jobs run"
            victim = conns(user=other)
            job = victim.execute("SELECT sqlchat.submit('how many customers?')").fetchone()[0]
            ended = wait_until(lambda: victim.execute(
                "SELECT state FROM sqlchat.job_status(%s)", (job,)).fetchone()[0] == "done", 15)
            hogs = hog.execute("SELECT state, sqlstate, message FROM sqlchat.job_status() WHERE job = ANY(%s)",
                               (slow,)).fetchall()
        finally:
            for j in slow:
                hog.execute("SELECT sqlchat.cancel_job(%s)", (j,))
    finally:
        rc.set_system({"sqlchat.job_timeout": None})
    assert ended, "another role's job waited behind one role's jobs past sqlchat.job_timeout"
    assert all(h[0] == "failed" and h[1] == "57014" and "sqlchat.job_timeout" in h[2] for h in hogs), hogs


def test_a_cancel_stops_only_its_own_databases_job(rc, gw, conns):
    """Job ids are one sequence per database, but cancel_job's shared-memory cancel
    (shmem::cancel_running) stops every busy worker whose job has that id, in any database: a
    role cancelling its own running job 1 in one database also cancels another role's job 1
    running in another."""
    gw.rule(purpose=GEN, contains="slowly", content=SLOW)
    for name in ("r3_cancel_a", "r3_cancel_b"):
        rc.create_database(name, [rc.dir / "shop.sql"])
    first, second = conns(dbname="r3_cancel_a"), conns(dbname="r3_cancel_b")
    for conn in (first, second):
        conn.execute("SET statement_timeout = 0")
        conn.execute("SET sqlchat.query_timeout_ms = 3600000")
    ids = [conn.execute("SELECT sqlchat.submit('count slowly')").fetchone()[0] for conn in (first, second)]
    assert ids[0] == ids[1], f"precondition: the same id in both databases ({ids})"
    job = ids[0]

    def running(conn):
        return conn.execute("SELECT state FROM sqlchat.job_status(%s)", (job,)).fetchone()[0] == "running"
    try:
        assert wait_until(lambda: running(first) and running(second), 20), "precondition: both jobs run"
        first.execute("SELECT sqlchat.cancel_job(%s)", (job,))
        wait_until(lambda: not running(first), 10)
        time.sleep(1)
        other = second.execute("SELECT state, message FROM sqlchat.job_status(%s)", (job,)).fetchone()
    finally:
        for conn in (first, second):
            conn.execute("SELECT sqlchat.cancel_job(%s)", (job,))
    assert other[0] == "running", f"the other database's job {job} was stopped: {other}"


def test_no_private_value_leaks_through_an_unquoted_error(rc, gw, role, conns):
    """mask_row_values masks double-quoted parts and tokens that start with a digit; PostgreSQL
    prints some values bare and with letters first. regclass input prints a name with too many
    dots as it is: `improper relation name (too many dotted names): a.b.c.tiger`. Any value gets
    through whole as hex behind a letter (`x74696765...`: its digits are inside a word)."""
    admin = conns()
    admin.execute("SELECT sqlchat.set_private('staff', 'nickname')")
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.max_attempts = 2")
        conn.execute("SET sqlchat.enable_cache = off")
        gw.rule(purpose=GEN, content="SELECT ('a.b.c.' || nickname)::regclass AS r FROM staff")
        gw.rule(purpose="repair",
                content="SELECT ('a.b.c.x' || encode(convert_to(nickname, 'UTF8'), 'hex'))::regclass AS r FROM staff")
        gw.clear_requests()
        with pytest.raises(psycopg.Error) as failed:
            conn.execute("SELECT sqlchat.ask('the staff nickname as a table')")
        repair = str(gw.requests("repair"))
    finally:
        admin.execute("SELECT sqlchat.set_private('staff', 'nickname', false)")
    leaks = [where for where, text in (("repair request", repair), ("final error", str(failed.value)))
             if "tiger" in text or "7469676572" in text]
    assert not leaks, f"the private value (or its hex) is kept in: {leaks}; final error: {failed.value}"


def test_counts_over_a_private_column_are_not_sent_for_wording(rc, gw, role, conns):
    """An output column that is a count is never private (guard::OutputOrigin::Count: "a count
    shows no value of what it counts"), but a count can be made to equal a value: with FILTER
    over generate_series, each count is the character code of one letter of a private value,
    and the rows go to the model to be worded."""
    admin = conns()
    admin.execute("SELECT sqlchat.set_private('staff', 'nickname')")
    counts = ", ".join(
        f"count(*) FILTER (WHERE g <= ascii(substr(nickname, {k}, 1))) AS c{k}" for k in range(1, 6))
    gw.rule(purpose=GEN, content=f"SELECT {counts} FROM staff CROSS JOIN generate_series(1, 255) g")
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.enable_cache = off")
        gw.clear_requests()
        conn.execute("SELECT sqlchat.ask('letters of the staff nickname')")
        sent = str(gw.requests("answer"))
    finally:
        admin.execute("SELECT sqlchat.set_private('staff', 'nickname', false)")
    codes = [str(ord(ch)) for ch in "tiger"]
    assert not re.search(r"\D+".join(codes), sent), \
        f"the private value's character codes {codes} went to the model to word the answer"


def test_send_rows_none_sends_no_stored_values_as_hints(rc, gw, role, conns):
    """sqlchat.send_rows = none promises that no row leaves the database, but value hints are not
    governed by it: a question word that is the first word of a longer stored value puts the whole
    stored value (read from the table by the bounded scan) into the generation prompt, words the
    caller never typed included."""
    admin = conns()
    admin.execute("CREATE TABLE IF NOT EXISTS pets (id int PRIMARY KEY, name text NOT NULL)")
    admin.execute("INSERT INTO pets VALUES (1, 'Tigerlily Moonshadow') ON CONFLICT DO NOTHING")
    admin.execute(sql.SQL("GRANT SELECT ON pets TO {}").format(sql.Identifier(role)))
    admin.execute(sql.SQL("ALTER ROLE {} SET sqlchat.send_rows = none").format(sql.Identifier(role)))
    gw.rule(purpose=GEN, content="SELECT count(*) AS n FROM pets")
    conn = conns(user=role)
    assert conn.execute("SHOW sqlchat.send_rows").fetchone()[0] == "none", "precondition"
    conn.execute("SET sqlchat.enable_cache = off")
    gw.clear_requests()
    conn.execute("SELECT sqlchat.ask('how many pets are called tigerlily?')")
    sent = str(gw.requests(GEN))
    assert "Moonshadow" not in sent, "a stored value went to the model with sqlchat.send_rows = none"


def test_a_double_quote_before_a_private_value_does_not_unquote_it(rc, gw, role, conns):
    """mask_row_values pairs double quotes as it meets them: a value PostgreSQL quotes that itself
    holds a double quote ends the quoted part early, and what follows is masked only if it starts
    with a digit. `('"' || col)::int` fails with `invalid input syntax for type integer:` then the
    value `"tiger` in quotes: the quoted part is empty and `tiger` goes out as plain text."""
    admin = conns()
    admin.execute("SELECT sqlchat.set_private('staff', 'nickname')")
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.max_attempts = 2")
        conn.execute("SET sqlchat.enable_cache = off")
        gw.rule(purpose=[GEN, "repair"], content="""SELECT ('"' || nickname)::int AS n FROM staff""")
        gw.clear_requests()
        with pytest.raises(psycopg.Error):
            conn.execute("SELECT sqlchat.ask('the staff nickname as a number, quoted')")
        repair = str(gw.requests("repair"))
    finally:
        admin.execute("SELECT sqlchat.set_private('staff', 'nickname', false)")
    assert "tiger" not in repair, "the private value went to the model in the repair request"
