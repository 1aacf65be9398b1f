"""The gateway client under faults (THREATS.md A, B, F): every fault of the fake gateway gives the
documented SQLSTATE or recovers; cancels, statement_timeout and terminate end a hung call at once
and close the gateway socket; retries, Retry-After and fallback models; no redirect followed; TLS
verified; the key visible in no channel a plain role can read. After each test: the backend and a
canary session are alive, the backend runs no leftover helper thread, and the server log has no
crash."""

import email.utils
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

import faults
import harness

GEN = "generate_sql"
SQL = "SELECT count(*) FROM widgets"


@pytest.fixture(scope="module")
def db(make_db, cluster):
    name = make_db("faults")
    with cluster.connect(name) as conn:
        conn.execute(faults.TABLE_SQL)
        conn.execute("GRANT SELECT ON widgets TO PUBLIC")
        conn.execute("GRANT USAGE ON SCHEMA sqlchat TO PUBLIC")
    return name


@pytest.fixture(scope="module")
def canary(cluster, db):
    conn = cluster.connect(db)
    yield conn
    conn.close()


@pytest.fixture
def session(connect, db, canary, cluster, gw):
    """A prepared session; afterwards the canary, the backend and the log are checked."""
    conn = faults.prepare(connect(db))
    pid = conn.info.backend_pid
    log_before = len(cluster.server_log())
    yield conn
    assert canary.execute("SELECT 1").fetchone()[0] == 1
    if not conn.closed:
        assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        assert faults.wait_threads(pid) == 1, "a helper thread outlived its call"
    assert faults.crash_lines(cluster.server_log()[log_before:]) == []


@pytest.fixture
def admin(connect):
    return connect()


def chat_requests(gw):
    return [r for r in gw.requests() if r["path"].endswith("chat/completions")]


def run(conn, gw, rule, question="how many widgets are there?"):
    if rule is not None:
        gw.rule(purpose=GEN, **rule)
    out = faults.call(conn, question)
    faults.finish(conn, out)
    return out


# ---- malformed and failing replies ------------------------------------------------------------

BAD_REPLIES = [
    ({"fault": "truncated_json"}, "58000", "not JSON"),
    ({"fault": "malformed_json"}, "58000", "not JSON"),
    ({"fault": "wrong_shape"}, "58000", "choices"),
    ({"fault": "empty_choices"}, "58000", "empty"),
    ({"fault": "tool_calls"}, "58000", "tool_calls"),
    ({"fault": "invalid_utf8"}, "58000", "UTF-8"),
    ({"fault": "reset_mid_body"}, "08006", "connection"),
    ({"fault": "huge", "size_mb": 50}, "54000", "larger than"),
    ({"status": 500}, "58000", "HTTP 500"),
    ({"status": 502}, "58000", "HTTP 502"),
    ({"status": 503}, "58000", "HTTP 503"),
    ({"status": 400}, "58000", "HTTP 400"),
    ({"status": 404}, "58000", "HTTP 404"),
    ({"status": 401}, "28000", "refused the API key"),
    ({"status": 403}, "28000", "refused the API key"),
    ({"status": 429}, "53400", "rate limiting"),
    ({"status": 200, "body": "[" * 100_000}, "58000", "deeper"),
    ({"status": 200, "body": '{"choices":[{"message":{"content":null,"refusal":"no"}}]}'}, "58000", "no text"),
]


@pytest.mark.parametrize("rule,sqlstate,text", BAD_REPLIES, ids=[str(r[0])[:40] for r in BAD_REPLIES])
def test_bad_reply_is_a_documented_error(session, gw, rule, sqlstate, text):
    out = run(session, gw, rule)
    assert out.sqlstate == sqlstate, out.message
    assert text in out.message
    assert out.error.diag.message_hint, "every gateway error says what to do"
    assert len(chat_requests(gw)) == 1, "retries are off in this test"


def test_sql_wrapped_in_fences_and_nul_are_handled(session, gw):
    out = run(session, gw, {"content": f"```sql\n{SQL}\n```"})
    assert out.error is None and "widgets" in out.value
    out = run(session, gw, {"content": "SELECT 1\u0000; DROP TABLE widgets"})
    assert out.error is None or out.sqlstate != "XX000", out.message


# ---- hangs: deadlines ---------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["hang_before_headers", "hang_mid_body", "drip"])
def test_request_timeout_bounds_each_hang(session, gw, fault):
    faults.prepare(session, {"sqlchat.request_timeout_ms": 600})
    started = time.monotonic()
    out = run(session, gw, {"fault": fault, "drip_ms": 200})
    elapsed = time.monotonic() - started
    assert out.sqlstate == "08000", out.message
    assert 0.5 < elapsed < 2.5, elapsed
    rec = gw.wait_for(lambda rs: rs and rs[-1]["client_disconnected"], timeout=3)[-1]
    assert rec["client_disconnected"]


@pytest.mark.parametrize("fault", ["hang_before_headers", "drip"])
def test_statement_timeout_ends_a_hang_with_57014(session, gw, fault):
    gw.rule(purpose=GEN, fault=fault, drip_ms=1000)
    session.execute("SET statement_timeout = 800")
    started = time.monotonic()
    out = faults.call(session)
    elapsed = time.monotonic() - started
    session.execute("ROLLBACK")
    session.execute("SET statement_timeout = 0")
    assert out.sqlstate == "57014" and "statement timeout" in out.message, out.message
    assert 0.75 < elapsed < 1.2, f"overshoot {elapsed - 0.8:.3f}s"
    gw.wait_for(lambda rs: rs and rs[-1]["client_disconnected"], timeout=3)


# ---- hangs: cancel and terminate ----------------------------------------------------------------

@pytest.mark.parametrize("kind", faults.HANGS)
def test_cancel_ends_a_hang_at_once(session, gw, admin, kind):
    stack = []
    try:
        peer_saw_close = faults.setup_hang(kind, gw, session, stack, wait_s=3.0)
        pid = session.info.backend_pid
        out, done, _ = faults.call_in_thread(session)
        faults.wait_backend_state(admin, pid)
        time.sleep(0.3)
        latency = faults.cancel_and_time(admin, pid, out, done)
        assert out.sqlstate == "57014" and "user request" in out.message, out.message
        assert latency < 0.5, f"cancel took {latency * 1000:.0f} ms"
        assert peer_saw_close is None or peer_saw_close(), "the peer did not see the client go away"
        session.execute("ROLLBACK TO SAVEPOINT before_call")
        session.execute("COMMIT")
        session.execute("RESET sqlchat.api_base")
        assert faults.wait_threads(pid) == 1
    finally:
        for close in stack:
            close()


def test_terminate_ends_a_hang_with_57P01(session, gw, admin):
    gw.rule(purpose=GEN, fault="hang_before_headers")
    pid = session.info.backend_pid
    out, done, _ = faults.call_in_thread(session)
    faults.wait_backend_state(admin, pid)
    # The hang is in progress once the gateway holds the whole request (head and body are
    # separate writes, and a terminate between them leaves the gateway nothing to answer).
    gw.wait_for(lambda rs: rs, timeout=3)
    latency = faults.cancel_and_time(admin, pid, out, done, how="terminate")
    assert out.sqlstate == "57P01", out.message
    assert latency < 1.0
    gw.wait_for(lambda rs: rs and rs[-1]["client_disconnected"], timeout=3)
    deadline = time.monotonic() + 5
    while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
        assert time.monotonic() < deadline, "the backend did not exit"
        time.sleep(0.02)


def test_reply_wakes_the_wait_at_once(session, gw):
    """The backend wakes on the helper's socket, not at a polling slice."""
    gw.rule(purpose=GEN, content=SQL, delay_ms=130)
    times = []
    for _ in range(5):
        started = time.monotonic()
        out = faults.call(session)
        times.append(time.monotonic() - started)
        faults.finish(session, out)
        assert out.error is None, out.message
    assert min(times) < 0.4, times


# ---- retries, Retry-After, fallback models ------------------------------------------------------

def test_429_retry_after_seconds_is_honoured(session, gw):
    faults.prepare(session, {"sqlchat.request_retries": 2})
    gw.rules([
        {"purpose": GEN, "status": 429, "headers": {"Retry-After": "1"}, "times": 1},
        {"purpose": GEN, "content": SQL},
    ])
    started = time.monotonic()
    out = run(session, gw, None)
    elapsed = time.monotonic() - started
    assert out.error is None and "widgets" in out.value, out.message
    reqs = chat_requests(gw)
    assert len(reqs) == 2
    gap = reqs[1]["time"] - reqs[0]["time"]
    assert 0.9 < gap < 1.5, gap
    assert elapsed < 2.5


def test_429_retry_after_http_date_is_honoured(session, gw):
    faults.prepare(session, {"sqlchat.request_retries": 2})
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    gw.rules([
        {"purpose": GEN, "status": 429, "headers": {"Retry-After": when}, "times": 1},
        {"purpose": GEN, "content": SQL},
    ])
    out = run(session, gw, None)
    assert out.error is None, out.message
    reqs = chat_requests(gw)
    assert len(reqs) == 2
    assert 0.8 < reqs[1]["time"] - reqs[0]["time"] < 3.2


def test_absurd_retry_after_gives_up_at_once(session, gw):
    faults.prepare(session, {"sqlchat.request_retries": 3})
    started = time.monotonic()
    out = run(session, gw, {"status": 429, "headers": {"Retry-After": "86400"}})
    assert out.sqlstate == "53400"
    assert time.monotonic() - started < 1.0
    assert len(chat_requests(gw)) == 1


def test_retry_after_beyond_statement_timeout_gives_up(session, gw):
    faults.prepare(session, {"sqlchat.request_retries": 3})
    session.execute("SET statement_timeout = '2s'")
    out = run(session, gw, {"status": 429, "headers": {"Retry-After": "5"}})
    session.execute("SET statement_timeout = 0")
    assert out.sqlstate == "53400", out.message
    assert len(chat_requests(gw)) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_5xx_are_retried_then_recover(session, gw, status):
    faults.prepare(session, {"sqlchat.request_retries": 2})
    gw.rules([{"purpose": GEN, "status": status, "times": 2}, {"purpose": GEN, "content": SQL}])
    out = run(session, gw, None)
    assert out.error is None, out.message
    reqs = chat_requests(gw)
    assert len(reqs) == 3
    assert reqs[1]["time"] - reqs[0]["time"] >= 0.09  # jittered back-off of 100..200 ms


def test_reset_is_retried_a_bounded_number_of_times(session, gw):
    faults.prepare(session, {"sqlchat.request_retries": 2})
    out = run(session, gw, {"fault": "reset_mid_body"})
    assert out.sqlstate == "08006"
    assert len(chat_requests(gw)) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
def test_no_retry_on_client_errors(session, gw, status):
    faults.prepare(session, {"sqlchat.request_retries": 3})
    run(session, gw, {"status": status})
    assert len(chat_requests(gw)) == 1


def test_fallback_models_in_order(session, gw):
    faults.prepare(session, {"sqlchat.request_retries": 1, "sqlchat.fallback_models": "backup-a, backup-b"})
    gw.rules([
        {"purpose": GEN, "model": harness.MODEL, "status": 503},
        {"purpose": GEN, "model": "backup-a", "fault": "malformed_json"},
        {"purpose": GEN, "model": "backup-b", "content": SQL},
    ])
    out = run(session, gw, None)
    assert out.error is None, out.message
    assert [r["model"] for r in chat_requests(gw)] == [harness.MODEL, harness.MODEL, "backup-a", "backup-b"]


def test_no_fallback_on_a_refused_key(session, gw):
    faults.prepare(session, {"sqlchat.fallback_models": "backup-a"})
    out = run(session, gw, {"status": 401})
    assert out.sqlstate == "28000"
    assert len(chat_requests(gw)) == 1


# ---- redirects, TLS, the key ---------------------------------------------------------------------

def test_redirect_to_another_port_is_not_followed(session, gw):
    with harness.Gateway() as capture:
        out = run(session, gw, {"fault": "redirect", "location": f"{capture.api_base}/chat/completions"})
        time.sleep(0.2)
        assert capture.requests() == []
    assert out.sqlstate == "58000" and "redirect" in out.message
    assert len(chat_requests(gw)) == 1


@pytest.fixture(scope="module")
def tls_gateway():
    # Readable by the server's user (pytest's own temporary directories are private to root).
    d = Path(tempfile.mkdtemp(prefix="sqlchat-tls-"))
    ca, ca_key, cert, key, csr, ext = (d / n for n in ("ca.pem", "ca.key", "cert.pem", "key.pem", "leaf.csr", "leaf.ext"))
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for cmd in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sqlchat test CA",
         "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
         "-extfile", ext, "-out", cert],
    ):
        subprocess.run(["openssl", *map(str, cmd)], check=True, capture_output=True)
    d.chmod(0o755)
    ca.chmod(0o644)
    with harness.Gateway(tls=(cert, key, ca)) as g:
        g.cert = ca
        yield g
    shutil.rmtree(d, ignore_errors=True)


def test_tls_is_verified_and_ca_file_trusts_a_private_ca(session, tls_gateway, make_role, connect, db):
    tls_gateway.reset()
    tls_gateway.rule(purpose=GEN, content=SQL)
    faults.prepare(session, {"sqlchat.api_base": tls_gateway.api_base})
    out = faults.call(session)
    faults.finish(session, out)
    assert out.sqlstate == "08001" and "TLS" in out.message, out.message
    assert tls_gateway.requests() == [], "nothing is sent over an unverified connection"
    faults.prepare(session, {"sqlchat.ca_file": str(tls_gateway.cert)})
    out = faults.call(session)
    faults.finish(session, out)
    assert out.error is None and "widgets" in out.value, out.message
    assert tls_gateway.requests()[0]["authorization"] == f"Bearer {harness.API_KEY}"
    session.execute("RESET sqlchat.api_base")
    session.execute("RESET sqlchat.ca_file")
    plain = connect(db, user=make_role("fault_plain"))
    # The library is preloaded: the settings exist, with their protection, from the first command.
    for name in ("sqlchat.ca_file", "sqlchat.api_base", "sqlchat.api_key", "sqlchat.auth_header"):
        with pytest.raises(psycopg.Error) as refused:
            plain.execute(f"SET {name} = '/tmp/x'")
        assert refused.value.sqlstate in ("42501", "55P02"), name


def test_plain_http_to_another_host_is_refused(session, gw):
    session.execute("SET sqlchat.api_base = 'http://192.0.2.1/v1'")
    out = run(session, gw, None)
    session.execute("RESET sqlchat.api_base")
    assert out.sqlstate == "22023" and "https" in out.message


def test_credentials_in_the_url_are_never_sent(session, gw):
    session.execute("SELECT set_config('sqlchat.api_base', %s, false)", (gw.api_base.replace("://", "://who:pw@", 1),))
    out = run(session, gw, {"content": SQL})
    session.execute("RESET sqlchat.api_base")
    assert out.error is None, out.message
    assert chat_requests(gw)[-1]["authorization"] == f"Bearer {harness.API_KEY}"


def test_unsendable_key_is_refused_before_any_request(gw, cluster, connect, db):
    try:
        for key in ("k" * 9000, "bad\x7fkey"):
            cluster.set_system({"sqlchat.api_key": key})
            conn = faults.prepare(connect(db))
            out = run(conn, gw, None)
            assert out.sqlstate == "22023", out.message
            assert key not in out.message
    finally:
        cluster.set_system({"sqlchat.api_key": harness.API_KEY})
    assert chat_requests(gw) == []


def test_key_in_no_channel_a_plain_role_reads(session, gw, make_role, connect, db, cluster):
    key = harness.API_KEY
    gw.rule(purpose=GEN, status=401, body={"error": {"message": f"Incorrect API key provided: {key}"}})
    role = make_role("fault_plain")
    plain = faults.prepare(connect(db, user=role))
    out = faults.call(plain)
    faults.finish(plain, out)
    assert out.sqlstate == "28000", out.message
    texts = [str(out.error), out.error.diag.message_detail or "", out.error.diag.message_hint or ""]
    for probe in ("SHOW sqlchat.api_key", "SELECT current_setting('sqlchat.api_key')",
                  "SHOW sqlchat.auth_header", "SELECT current_setting('sqlchat.api_key', true)"):
        try:
            texts.append(str(plain.execute(probe).fetchall()))
        except psycopg.Error as e:
            texts.append(str(e))
    texts.append(str(plain.execute("SHOW ALL").fetchall()))
    texts.append(str(plain.execute("SELECT * FROM pg_settings").fetchall()))
    texts.append(str(plain.execute("SELECT * FROM pg_stat_activity").fetchall()))
    # PostgreSQL itself logs 'parameter "sqlchat.api_key" changed to ...' when the postmaster
    # reloads its configuration (the log is readable by superusers only); sqlchat's own lines
    # must never hold the key.
    texts.append("\n".join(line for line in cluster.server_log().splitlines()
                           if 'parameter "sqlchat.api_key" changed to' not in line))
    prefix = key[: len(key) // 2]
    leaks = [t[max(0, t.find(prefix) - 80): t.find(prefix) + 80] for t in texts if prefix in t]
    assert leaks == []


# ---- resources -----------------------------------------------------------------------------------

def test_many_calls_leave_threads_and_fds_flat(session, gw):
    gw.rule(purpose=GEN, content=SQL)
    pid = session.info.backend_pid
    for _ in range(20):  # warm-up: first-use allocations
        faults.finish(session, faults.call(session))
    before = faults.proc_status(pid)
    for _ in range(200):
        out = faults.call(session)
        faults.finish(session, out)
        assert out.error is None
    after = faults.proc_status(pid)
    assert after["threads"] == 1 and after["fds"] <= before["fds"], (before, after)
    assert after["rss_kb"] - before["rss_kb"] < 4096, (before, after)


def test_key_from_a_file_is_sent_and_never_logged(gw, cluster, connect, db):
    """sqlchat.api_key_file keeps the key out of the configuration and the server log."""
    d = Path(tempfile.mkdtemp(prefix="sqlchat-key-"))
    os.chmod(d, 0o755)
    key_file = d / "key"
    file_key = "file-key-0123456789abcdef"
    key_file.write_text(file_key + "\n")
    os.chmod(key_file, 0o644)
    try:
        cluster.set_system({"sqlchat.api_key": None, "sqlchat.api_key_file": str(key_file)})
        gw.rule(purpose=GEN, content="SELECT 1 AS one")
        conn = connect(db)
        assert conn.execute("SELECT rows FROM sqlchat.ask_full('key file question')").fetchone()[0] == [{"one": 1}]
        assert chat_requests(gw)[0]["authorization"] == f"Bearer {file_key}"
        assert file_key not in cluster.server_log()
        cluster.set_system({"sqlchat.api_key_file": str(d / "missing")})
        with pytest.raises(psycopg.Error) as e:
            connect(db).execute("SELECT sqlchat.ask('key file missing')")
        assert e.value.sqlstate == "22023" and "sqlchat.api_key_file" in str(e.value)
    finally:
        cluster.set_system({"sqlchat.api_key_file": None, "sqlchat.api_key": harness.API_KEY})
        shutil.rmtree(d, ignore_errors=True)
