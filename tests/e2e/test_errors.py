"""Errors as users see them, on a server started with RUST_BACKTRACE=1: no backtrace or panic text
in any error, the documented hint for each SQLSTATE, refusal kind and cancel cause (read from
docs/errors.md), attempts and model calls counted the same way in messages and in
sqlchat.answer, and the API key scrubbed from every text in every form a gateway echoes it."""

import base64
import json
import re
import threading
import urllib.parse

import psycopg
import pytest

import harness

DOCS = harness.REPO / "docs" / "errors.md"
SCHEMA = """
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);
INSERT INTO items VALUES (1, 'cup', 3), (2, 'pot', 0), (3, 'pan', 12);
CREATE TABLE hidden (id int, secret text);
CREATE TABLE fenced (id int, owner text);
ALTER TABLE fenced ENABLE ROW LEVEL SECURITY;
CREATE ROLE err_plain LOGIN;
CREATE ROLE err_stranger;
GRANT SELECT ON items, fenced TO err_plain;
CREATE DOMAIN positive AS int CHECK (VALUE > 0 AND pg_catalog.pg_advisory_lock(VALUE) IS NOT NULL);
ALTER DOMAIN positive OWNER TO err_stranger;
"""
# A key without the "sk-" prefix that key-like masking recognises: only scrubbing of the configured
# secret can remove it.
KEY = "gw-key-7Hq2Lm9Xv4Rt8Np3Zc6Wd1"
# A backtrace line as Rust prints one ("  12: pgrx_pg_sys::...", "at /path/file.rs:10:5").
BACKTRACE_LINE = re.compile(r"^\s*\d+: \S|^\s+at \S+\.rs:\d+", re.M)


def doc_hints(section):
    """First cell -> last cell (the hint) of the table rows under `## {section}` in docs/errors.md."""
    rows, current = {}, None
    for line in DOCS.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
        elif current == section and line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows.setdefault(cells[0], cells[-1])
    assert rows, f"no table under ## {section} in {DOCS}"
    return rows


QUERY_HINTS = doc_hints("The generated SQL")
REFUSAL_HINTS = doc_hints("Refusals")
CANCEL_HINTS = doc_hints("Cancels")
REPLY_HINTS = doc_hints("The model's reply")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A cluster of this module's own, with RUST_BACKTRACE=1 in the server's environment."""
    try:
        cluster = harness.Cluster(env={"RUST_BACKTRACE": "1"})
    except FileNotFoundError as e:
        pytest.skip(str(e))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def db(server, gateway, tmp_path_factory):
    server.set_system({"sqlchat.api_base": gateway.api_base, "sqlchat.api_key": KEY, "sqlchat.model": harness.MODEL})
    path = tmp_path_factory.mktemp("sql") / "errors.sql"
    path.write_text(SCHEMA)
    try:
        return server.create_database("e2e_errors", [path])
    except harness.ExtensionMissing as e:
        pytest.skip(f"the sqlchat extension is not installed: {e}")


@pytest.fixture
def conn(server, db):
    opened = []

    def connect(user=None):
        c = server.connect(db, user=user)
        c.execute("SET sqlchat.engine = 'llm'")
        c.execute("SET sqlchat.enable_cache = off")
        c.execute("SET sqlchat.request_retries = 0")
        opened.append(c)
        return c

    yield connect
    for c in opened:
        c.close()


def ask_error(c, question, sql=None):
    """The error `ask` raises for `question`; `sql` is a statement run before it."""
    if sql:
        c.execute(sql)
    with pytest.raises(psycopg.Error) as e:
        c.execute("SELECT sqlchat.ask(%s)", (question,))
    return e.value


def texts(error):
    d = error.diag
    return [d.message_primary or "", d.message_detail or "", d.message_hint or ""]


def assert_no_backtrace(error):
    for text in texts(error):
        assert not BACKTRACE_LINE.search(text), f"a backtrace in {text[:500]!r}"
        assert "panicked" not in text and "pgrx" not in text, text[:500]


# ---- no backtrace or panic text ------------------------------------------------------------------


def test_no_backtrace_reaches_the_client(server, gw, conn):
    gw.rule(purpose="generate_sql", contains="hang", fault="hang_before_headers", hang_ms=30_000)
    c = conn()
    c.execute("SET statement_timeout = '300ms'")
    timeout = ask_error(c, "hang until the statement times out")
    c.execute("RESET statement_timeout")
    assert timeout.sqlstate == "57014"
    assert_no_backtrace(timeout)
    assert timeout.diag.message_detail is None
    assert timeout.diag.message_hint == CANCEL_HINTS["statement_timeout"]

    c, killer = conn(), conn()
    pid = c.info.backend_pid
    timer = threading.Timer(0.3, lambda: killer.execute("SELECT pg_cancel_backend(%s)", (pid,)))
    timer.start()
    cancel = ask_error(c, "hang until cancelled")
    timer.join()
    assert cancel.sqlstate == "57014"
    assert_no_backtrace(cancel)
    assert cancel.diag.message_hint == CANCEL_HINTS["Ctrl-C, pg_cancel_backend"]

    gw.rule(purpose="generate_sql", contains="bad column", content="SELECT nope FROM items")
    failed = ask_error(conn(), "bad column please", "SET sqlchat.max_attempts = 1")
    assert failed.sqlstate == "42703"
    assert_no_backtrace(failed)

    log = server.server_log()
    assert not BACKTRACE_LINE.search(log), "a backtrace in the server log"


# ---- a hint for each SQLSTATE, refusal kind and cancel cause ----------------------------------------

QUERY_CASES = [
    # (SQLSTATE raised, the model's SQL, settings, docs row, whether more repairs could help)
    ("42703", "SELECT nope FROM items", {}, "42703", True),
    ("42P01", "SELECT * FROM no_such_table", {}, "42P01", True),
    ("42883", "SELECT name + 1 FROM items", {}, "42883", True),
    ("42601", "SELECT FROM FROM items", {}, "42601", True),
    ("42803", "SELECT name, count(*) FROM items", {}, "42xxx", True),
    ("22012", "SELECT sum(price) / 0 AS x FROM items", {}, "22012", True),
    ("22P02", "SELECT 'abc'::int AS x", {}, "22xxx", True),
    ("21000", "SELECT (SELECT id FROM items) AS x", {}, "21000", True),
    ("53400", "SELECT count(*) FROM generate_series(1, 3000000) g", {"sqlchat.temp_file_limit": "1MB"}, "53400", False),
    ("54000", "SELECT repeat('x', 1100000000) AS x", {}, "54xxx", False),
]


@pytest.mark.parametrize("sqlstate,sql,settings,row,repairable", QUERY_CASES, ids=[c[0] for c in QUERY_CASES])
def test_each_query_error_gets_its_documented_hint(gw, conn, sqlstate, sql, settings, row, repairable):
    gw.rule(purpose="generate_sql", contains=f"case {sqlstate}", content=sql)
    c = conn()
    c.execute("SET sqlchat.max_attempts = 1")
    for name, value in settings.items():
        c.execute("SELECT set_config(%s, %s, false)", (name, value))
    e = ask_error(c, f"case {sqlstate}")
    assert e.sqlstate == sqlstate, e.diag.message_primary
    hint = e.diag.message_hint
    assert hint.startswith(QUERY_HINTS[row]), hint
    assert ("sqlchat.max_attempts" in hint) == repairable, hint
    assert e.diag.message_primary.startswith("sqlchat: the generated SQL failed after 1 attempt and 1 model call:")
    assert e.diag.message_detail.startswith("Stopped: sqlchat.max_attempts (1) reached. Last statement tried: ")
    assert_no_backtrace(e)


def test_a_missing_privilege_is_not_told_to_retry(gw, conn):
    gw.rule(purpose="generate_sql", contains="hidden rows", content="SELECT * FROM hidden")
    c = conn(user="err_plain")
    e = ask_error(c, "show the hidden rows", "SET sqlchat.max_attempts = 1")
    assert e.sqlstate == "42501"
    assert e.diag.message_hint == QUERY_HINTS["42501"]
    assert "max_attempts" not in e.diag.message_hint


REFUSAL_CASES = [
    # (kind, the model's SQL, settings, SQLSTATE, caller)
    ("statement", "DELETE FROM items", {}, "42501", None),
    ("function", "SELECT pg_sleep(0)", {}, "42501", None),
    ("relation", "SELECT count(*) FROM sqlchat.cache", {}, "42501", None),
    ("foreign_code", "SELECT 5::positive AS x", {}, "42501", "err_plain"),
    ("rls_bypass", "SELECT * FROM fenced", {"sqlchat.rls_bypass": "refuse"}, "42501", None),
    ("cost", "SELECT count(*) FROM generate_series(1, 1000) a, generate_series(1, 1000) b", {"sqlchat.max_cost": "1"}, "54000", None),
    ("malformed", "SELECT 1 AS one\x00", {}, "22021", None),
]


@pytest.mark.parametrize("kind,sql,settings,sqlstate,user", REFUSAL_CASES, ids=[c[0] for c in REFUSAL_CASES])
def test_each_refusal_gets_the_hint_of_its_kind(gw, conn, kind, sql, settings, sqlstate, user):
    gw.rule(purpose="generate_sql", contains=f"refusal {kind}", content=sql)
    c = conn(user=user)
    c.execute("SET sqlchat.max_attempts = 1")
    for name, value in settings.items():
        c.execute("SELECT set_config(%s, %s, false)", (name, value))
    e = ask_error(c, f"refusal {kind}")
    assert e.sqlstate == sqlstate, e.diag.message_primary
    assert e.diag.message_primary.startswith("sqlchat: the generated SQL was refused after 1 attempt and"), e.diag.message_primary
    assert e.diag.message_hint == REFUSAL_HINTS[kind]
    assert_no_backtrace(e)


def test_each_cancel_cause_gets_its_hint(gw, conn):
    slow = "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b"
    gw.rule(purpose="generate_sql", contains="slow query", content=slow)
    c = conn()
    e = ask_error(c, "slow query one", "SET sqlchat.query_timeout_ms = 200")
    assert e.sqlstate == "57014"
    assert "sqlchat.query_timeout_ms" in e.diag.message_primary
    assert e.diag.message_hint == CANCEL_HINTS["sqlchat.query_timeout_ms"]
    c.execute("SET sqlchat.query_timeout_ms = 0")
    e = ask_error(c, "slow query two", "SET statement_timeout = '300ms'")
    c.execute("RESET statement_timeout")
    assert e.sqlstate == "57014"
    assert e.diag.message_hint == CANCEL_HINTS["statement_timeout"]
    assert_no_backtrace(e)


# ---- counting ------------------------------------------------------------------------------------------


def test_statements_tried_and_model_calls_are_counted_as_in_the_answer(gw, conn):
    gw.rule(purpose="generate_sql", contains="stubborn", content="SELECT a1 FROM items")
    gw.rule(purpose="repair", contains="stubborn", contents=["SELECT a2 FROM items", "SELECT a2 FROM items"])
    c = conn()
    c.execute("SET sqlchat.max_attempts = 4")
    e = ask_error(c, "stubborn question")
    calls = len(gw.requests())
    assert calls == 3
    # The repeated statement is the third attempt; it is not run again.
    assert "after 3 attempts and 3 model calls" in e.diag.message_primary, e.diag.message_primary
    assert e.diag.message_detail.startswith("Stopped: the model's repair gave no new statement.")
    assert "max_attempts" not in e.diag.message_hint

    gw.reset()
    gw.rule(purpose="generate_sql", contains="fixable", content="SELECT nope FROM items")
    gw.rule(purpose="repair", contains="fixable", content="SELECT count(*) AS n FROM items")
    attempts, llm_calls = c.execute("SELECT attempts, llm_calls FROM sqlchat.ask_full('fixable question')").fetchone()
    assert (attempts, llm_calls) == (2, len(gw.requests())) == (2, 3)

    gw.clear_requests()
    gw.rule(purpose=["generate_sql", "repair"], contains="no sql", content="   ")
    e = ask_error(c, "no sql here")
    calls = len(gw.requests())
    assert e.sqlstate == "22000"
    plural = "" if calls == 1 else "s"
    assert e.diag.message_primary == f"sqlchat: the model's reply held no SQL statement ({calls} model call{plural})"
    assert e.diag.message_hint == REPLY_HINTS["22000"]


# ---- secrets -------------------------------------------------------------------------------------------


def echoes():
    """Forms in which a gateway might echo the key: name -> (HTTP status, body, SQLSTATE raised)."""
    bearer = f"Bearer {KEY}"
    refused = {
        "whole, in a long message": "x" * 285 + f" key {KEY} was refused",
        "upper case": f"invalid key {KEY.upper()}",
        "percent-encoded": "GET /v1?key=" + "".join(f"%{b:02X}" for b in KEY.encode()),
        "percent-encoded, lower hex": "key=" + urllib.parse.quote(KEY, safe="").replace("-", "%2d"),
        "JSON-escaped": json.dumps({"error": {"message": "bad key " + "".join(f"\\u{ord(ch):04x}" for ch in KEY)}}),
        "base64 of the Authorization value": "authorization: " + base64.b64encode(bearer.encode()).decode(),
        "a prefix of 14 characters": f"key {KEY[:14]}... is invalid",
        "a middle fragment": f"key ...{KEY[3:17]}... is invalid",
    }
    forms = {name: (401, body, "28000") for name, body in refused.items()}
    # An error inside a 200 reply, the key straddling the 300 characters once cut before scrubbing.
    forms["across the old cut"] = (200, {"error": {"message": "y" * 290 + f" {KEY}"}}, "58000")
    return forms


def leftovers(text):
    """Runs of 8 characters of the key (any case) left in text."""
    lower = text.lower()
    return [KEY[i:i + 8] for i in range(len(KEY) - 7) if KEY[i:i + 8].lower() in lower]


@pytest.mark.parametrize("form", list(echoes()))
def test_the_key_is_scrubbed_from_gateway_errors_in_every_form(server, gw, conn, form):
    status, body, sqlstate = echoes()[form]
    gw.rule(purpose="generate_sql", contains="echo", status=status, body=body)
    e = ask_error(conn(), "echo my key")
    assert e.sqlstate == sqlstate
    for text in texts(e):
        assert not leftovers(text), f"{form}: {text!r}"
        for decoded in (urllib.parse.unquote(text), base64_words(text)):
            assert not leftovers(decoded), f"{form}: {text!r}"
    assert "[redacted]" in " ".join(texts(e)), texts(e)


def base64_words(text):
    out = []
    for word in re.findall(r"[A-Za-z0-9+/=]{12,}", text):
        try:
            out.append(base64.b64decode(word + "=" * (-len(word) % 4)).decode(errors="replace"))
        except ValueError:
            pass
    return " ".join(out)


def test_the_key_is_scrubbed_from_replies_notices_and_memory(gw, conn):
    gw.rule(purpose="generate_sql", contains="echo answer", content="SELECT count(*) AS n FROM items")
    gw.rule(purpose="answer", content=json.dumps({"answer": f"3 items; your key is {KEY}", "followups": []}))
    c = conn()
    answer = c.execute("SELECT sqlchat.ask('echo answer', 'echo-session')").fetchone()[0]
    assert answer.startswith("3 items") and not leftovers(answer), answer
    stored = c.execute("SELECT answer FROM sqlchat.history('echo-session')").fetchall()
    assert stored and not leftovers(str(stored)), stored

    notices = []
    c.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    gw.rule(purpose="generate_sql", contains="echo refusal", content=f"CANNOT_ANSWER: the key {KEY} cannot answer that")
    assert c.execute("SELECT sqlchat.generate_sql('echo refusal')").fetchone()[0] is None
    assert notices and not leftovers(" ".join(notices)), notices

    gw.rule(purpose="generate_sql", contains="echo sql", content=f"SELECT '{KEY}'::int AS x")
    c.execute("SET sqlchat.max_attempts = 1")
    e = ask_error(c, "echo sql")
    assert e.sqlstate == "22P02"
    assert not any(leftovers(t) for t in texts(e)), texts(e)
