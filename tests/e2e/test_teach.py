"""Teaching: verified answers (no SQL-generation call), worked examples that never leak what a
caller cannot read, definitions, the stored spelling of values, private columns whose values never
reach the gateway, feedback and its promotion, starter questions, and the errors of bad input."""

import psycopg
import pytest

import harness

SHOP = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, city text, segment text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(10,2), ordered_at date);
CREATE TABLE salaries (id int PRIMARY KEY, amount numeric);
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@secret.example', (ARRAY['New York City','São Paulo','Lima'])[1 + g % 3],
       (ARRAY['Small Business','Enterprise'])[1 + g % 2]
FROM generate_series(1, 30) g;
INSERT INTO orders SELECT g, 1 + g % 30, (g * 7) % 100, date '2022-01-01' + g * 5 FROM generate_series(1, 300) g;
INSERT INTO salaries VALUES (1, 100);
CREATE ROLE teach_plain LOGIN;
CREATE ROLE teach_teacher LOGIN;
CREATE ROLE teachers;
GRANT teachers TO teach_teacher;
GRANT SELECT ON customers, orders TO teach_plain, teach_teacher;
"""

TOP = "SELECT c.name, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.name ORDER BY total DESC LIMIT 5"


@pytest.fixture(scope="module")
def db(make_db, tmp_path_factory):
    path = tmp_path_factory.mktemp("sql") / "teach.sql"
    path.write_text(SHOP)
    return make_db("e2e_teach", [path])


def prompt_text(request):
    return "\n".join(m["content"] for m in request["messages"])


def sqlstate(conn, statement, params=()):
    try:
        conn.execute(statement, params)
    except psycopg.Error as e:
        return e.sqlstate, e.diag.message_hint
    raise AssertionError(f"no error: {statement}")


@pytest.fixture
def clean(db, connect):
    conn = connect(db)
    conn.execute("SELECT sqlchat.unteach(id) FROM sqlchat.examples")
    conn.execute("SELECT sqlchat.undefine(id) FROM sqlchat.definitions")
    conn.execute("SELECT sqlchat.set_private(table_name::regclass, column_name, false) FROM sqlchat.private_columns")
    return conn


def test_a_taught_question_asked_again_is_verified_with_no_generation_call(clean, gw, connect, db):
    example = clean.execute("SELECT sqlchat.teach('Top 5 customers by revenue?', %s, 'revenue is the sum of amount')", (TOP,)).fetchone()[0]
    gw.clear_requests()
    for reworded in ["top 5 customers BY revenue", "  Top 5 customers, by revenue!  "]:
        row = clean.execute(
            "SELECT verified, example_id, llm_calls, engine, jsonb_array_length(rows) FROM sqlchat.ask_full(%s)", (reworded,)
        ).fetchone()
        assert row == (True, example, 1, "verified", 5), row
    assert gw.requests(purpose="generate_sql") == []
    # A number changed: never the old SQL as is, but the example goes in the prompt.
    gw.rule(purpose="generate_sql", content=TOP.replace("LIMIT 5", "LIMIT 10"))
    row = clean.execute("SELECT verified, example_id, jsonb_array_length(rows) FROM sqlchat.ask_full('top 10 customers by revenue')").fetchone()
    assert row == (False, None, 10)
    text = prompt_text(gw.requests(purpose="generate_sql")[-1])
    assert "<examples>\nQuestion: Top 5 customers by revenue?\nNote: revenue is the sum of amount\nSQL: SELECT c.name" in text
    uses = clean.execute("SELECT uses FROM sqlchat.examples WHERE id = %s", (example,)).fetchone()[0]
    assert uses == 2, "each verified answer counts, a worked example does not"


def test_bad_teaching_is_refused_and_nothing_is_stored(clean, connect, db, make_role):
    assert sqlstate(clean, "SELECT sqlchat.teach('delete them', 'DELETE FROM orders')")[0] == "42501"
    assert sqlstate(clean, "SELECT sqlchat.teach('x', 'SELECT nope FROM orders')")[0] == "42703"
    assert sqlstate(clean, "SELECT sqlchat.teach('x', 'SELECT 1; SELECT 2')")[0] == "42501"
    assert sqlstate(clean, "SELECT sqlchat.teach(NULL, 'SELECT 1')")[0] == "22023"
    assert sqlstate(clean, "SELECT sqlchat.teach(%s, 'SELECT 1')", ("q" * 1001,))[0] == "22023"
    assert sqlstate(clean, "SELECT sqlchat.unteach(987654)")[0] == "22023"
    assert sqlstate(clean, "SELECT sqlchat.undefine(987654)")[0] == "22023"
    assert clean.execute("SELECT count(*) FROM sqlchat.examples").fetchone()[0] == 0
    plain = connect(db, user="teach_plain")
    state, hint = sqlstate(plain, "SELECT sqlchat.teach('x', 'SELECT 1')")
    assert state == "42501" and "teacher_role" in hint
    assert sqlstate(plain, "SELECT sqlchat.define('churn', 'x')")[0] == "42501"
    teacher = connect(db, user="teach_teacher")
    assert sqlstate(teacher, "SELECT sqlchat.teach('x', 'SELECT 1')")[0] == "42501"
    clean.execute("ALTER SYSTEM SET sqlchat.teacher_role = 'teachers'")
    clean.execute("SELECT pg_reload_conf()")
    try:
        teacher = connect(db, user="teach_teacher")
        # What the teacher cannot read cannot be taught.
        assert sqlstate(teacher, "SELECT sqlchat.teach('salaries', 'SELECT sum(amount) FROM salaries')")[0] == "42501"
        assert teacher.execute("SELECT sqlchat.teach('how many orders', 'SELECT count(*) FROM orders')").fetchone()[0] > 0
    finally:
        clean.execute("ALTER SYSTEM RESET sqlchat.teacher_role")
        clean.execute("SELECT pg_reload_conf()")
    # Read-only transactions (and standbys) refuse teaching with 25006.
    ro = connect(db, autocommit=False)
    ro.execute("SET TRANSACTION READ ONLY")
    assert sqlstate(ro, "SELECT sqlchat.teach('how many customers', 'SELECT count(*) FROM customers')")[0] == "25006"


def test_an_example_never_reaches_a_caller_who_cannot_read_what_it_reads(clean, gw, connect, db):
    clean.execute("SELECT sqlchat.teach('total salaries', 'SELECT sum(amount) FROM salaries')")
    clean.execute("SELECT sqlchat.teach('total order amount', 'SELECT sum(amount) FROM orders')")
    plain = connect(db, user="teach_plain")
    assert [r[0] for r in plain.execute("SELECT question FROM sqlchat.examples")] == ["total order amount"]
    gw.clear_requests()
    gw.rule(purpose="generate_sql", content="SELECT sum(amount) FROM orders")
    row = plain.execute("SELECT verified FROM sqlchat.ask_full('total salaries')").fetchone()
    assert row == (False,)
    text = prompt_text(gw.requests(purpose="generate_sql")[-1])
    assert "salaries" not in text.replace("Question: total salaries", "")
    suggested = [r[0] for r in plain.execute("SELECT * FROM sqlchat.suggest_questions(3)")]
    assert suggested[0] == "total order amount" and len(suggested) == 3, suggested
    assert not any("salar" in q for q in suggested)


def test_definitions_and_value_spellings_go_in_the_prompt(clean, gw, connect, db):
    clean.execute("SELECT sqlchat.define('big customer', 'a customer with more than 10 orders')")
    clean.execute("SELECT sqlchat.define(NULL, 'Amounts are in euros.')")
    clean.execute("ANALYZE customers")
    gw.clear_requests()
    gw.rule(purpose="generate_sql", content="SELECT count(*) FROM customers")
    clean.execute("SELECT sqlchat.ask('how many big customers are in new york and sao paulo?')")
    text = prompt_text(gw.requests(purpose="generate_sql")[-1])
    assert "<definitions>\nAlways: Amounts are in euros.\nbig customer: a customer with more than 10 orders" in text, text
    assert "values include 'New York City', 'São Paulo'" in text or "values include 'São Paulo', 'New York City'" in text, text
    gw.clear_requests()
    clean.execute("SELECT sqlchat.ask('how many orders per month?')")
    text = prompt_text(gw.requests(purpose="generate_sql")[-1])
    assert "big customer" not in text and "values include" not in text and "euros" in text
    explained = clean.execute("SELECT sqlchat.explain('how many big customers in lima?')").fetchone()[0]
    assert explained["definitions"] == ["(always)", "big customer"], explained["definitions"]
    assert any("'Lima'" in h for h in explained["value_hints"]), explained["value_hints"]


def test_private_values_never_reach_the_gateway(clean, gw, connect, db):
    clean.execute("SELECT sqlchat.set_private('customers', 'email')")
    clean.execute("SELECT sqlchat.set_private('customers', 'city')")
    plain = connect(db, user="teach_plain")
    assert sqlstate(plain, "SELECT sqlchat.set_private('customers', 'name')")[0] == "42501"
    assert sorted(r[1] for r in plain.execute("SELECT * FROM sqlchat.private_columns")) == ["city", "email"]
    gw.clear_requests()
    gw.rule(purpose="generate_sql", contains="emails", content="SELECT name, email, upper(email) AS e2, count(*) OVER () AS n FROM customers ORDER BY id LIMIT 3")
    gw.rule(purpose="generate_sql", contains="cast", content="SELECT email::int FROM customers")
    gw.rule(purpose="repair", content="SELECT count(*) FROM customers")
    gw.rule(purpose="generate_sql", content="SELECT count(*) FROM customers WHERE city ILIKE 'new york%'")
    row = plain.execute("SELECT rows, answer FROM sqlchat.ask_full('the emails of the first customers', 's1')").fetchone()
    assert row[0][0]["email"].endswith("@secret.example"), "the caller still gets the values"
    plain.execute("SELECT sqlchat.ask('cast the emails to numbers')")
    plain.execute("SELECT sqlchat.ask('how many customers live in new york?')")
    plain.execute("SELECT sqlchat.ask('and the next question', 's1')")
    seen = "\n".join(prompt_text(r) for r in gw.requests())
    assert "@secret.example" not in seen and "New York City" not in seen
    # A statement that read a private column sends no value at all: its other columns, a count or a
    # filter over the private one can spell its values as well as the column itself.
    assert "customer 1" not in seen, "values of a statement that read a private column were sent"
    findings = [r[1] for r in clean.execute("SELECT * FROM sqlchat.check_setup()")]
    assert any("private" in f for f in findings), findings


def test_feedback_on_own_turns_and_promotion(clean, gw, connect, db, make_role):
    plain = connect(db, user="teach_plain")
    gw.rule(purpose="generate_sql", content="SELECT count(*) FROM orders")
    plain.execute("SELECT sqlchat.ask('how many orders do we have', 'fb')")
    turn = plain.execute("SELECT turn FROM sqlchat.history('fb')").fetchone()[0]
    plain.execute("SELECT sqlchat.feedback(%s, false, 'should count only 2023')", (turn,))
    other = connect(db, user=make_role("teach_other"))
    assert sqlstate(other, "SELECT sqlchat.feedback(%s, true)", (turn,))[0] == "22023"
    assert sqlstate(clean, "SELECT sqlchat.teach_from_turn(987654)")[0] == "22023"
    queue = clean.execute("SELECT turn, role_name, helpful, correction FROM sqlchat.feedback_queue").fetchall()
    assert (turn, "teach_plain", False, "should count only 2023") in queue
    assert other.execute("SELECT count(*) FROM sqlchat.feedback_queue").fetchone()[0] == 0
    example = clean.execute(
        "SELECT sqlchat.teach_from_turn(%s, 'SELECT count(*) FROM orders WHERE ordered_at >= ''2023-01-01''')", (turn,)
    ).fetchone()[0]
    assert clean.execute("SELECT example_id FROM sqlchat.feedback_queue WHERE turn = %s", (turn,)).fetchone()[0] == example
    row = plain.execute("SELECT verified, example_id FROM sqlchat.ask_full('How many orders do we have?')").fetchone()
    assert row == (True, example)


def test_teaching_survives_dump_and_restore(clean, gw, connect, db, cluster):
    import subprocess

    example = clean.execute("SELECT sqlchat.teach('how many customers are there', 'SELECT count(*) FROM customers')").fetchone()[0]
    clean.execute("SELECT sqlchat.define('vip', 'a customer in the Enterprise segment')")
    clean.execute("SELECT sqlchat.set_private('customers', 'email')")
    gw.rule(purpose="generate_sql", content="SELECT count(*) FROM orders")
    clean.execute("SELECT sqlchat.ask('count the orders', 'dump-session')")
    turn = clean.execute("SELECT turn FROM sqlchat.history('dump-session')").fetchone()[0]
    clean.execute("SELECT sqlchat.feedback(%s, true)", (turn,))
    restored = "e2e_teach_restored"
    with cluster.connect() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {restored}")
        admin.execute(f"CREATE DATABASE {restored}")
    dump = subprocess.run(
        [str(harness.PGBIN / "pg_dump"), "-Fc", "-d", cluster.conninfo(db)], capture_output=True, timeout=120, check=True
    ).stdout
    subprocess.run(
        [str(harness.PGBIN / "pg_restore"), "-d", cluster.conninfo(restored)], input=dump, capture_output=True,
        timeout=120, check=True,
    )
    copy = connect(restored)
    assert copy.execute("SELECT id, question FROM sqlchat.examples").fetchall() == [(example, "how many customers are there")]
    assert copy.execute("SELECT term FROM sqlchat.definitions").fetchall() == [("vip",)]
    assert copy.execute("SELECT table_name, column_name FROM sqlchat.private_columns").fetchall() == [("public.customers", "email")]
    assert (turn, True) in copy.execute("SELECT turn, helpful FROM sqlchat.feedback_queue").fetchall()
    assert copy.execute("SELECT verified FROM sqlchat.ask_full('How many customers are there?')").fetchone() == (True,)
    # New examples get new ids after the restored ones.
    assert copy.execute("SELECT sqlchat.teach('orders', 'SELECT count(*) FROM orders')").fetchone()[0] > example


def test_a_hot_standby_uses_what_is_taught_and_refuses_teaching(clean, gw, connect, db, cluster):
    import os
    import subprocess
    import tempfile

    example = clean.execute("SELECT sqlchat.teach('how many customers are there', 'SELECT count(*) AS n FROM customers')").fetchone()[0]
    clean.execute("SELECT sqlchat.define(NULL, 'Amounts are in euros.')")
    clean.execute("SELECT sqlchat.set_private('customers', 'email')")
    gw.rule(purpose="generate_sql", content="SELECT email FROM customers LIMIT 2")
    standby_dir = tempfile.mkdtemp(prefix="sqlchat-teach-standby-")
    os.chmod(standby_dir, 0o777)
    port = harness.free_port()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        as_pg + [str(harness.PGBIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
                 "-D", os.path.join(standby_dir, "data"), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"],
        check=True, capture_output=True, timeout=300,
    )
    try:
        preload = ["shared_preload_libraries=sqlchat"] if cluster.preloaded else []
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "start", standby_dir, str(port), *preload], check=True,
                       capture_output=True, timeout=120)
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=db, autocommit=True) as standby:
            assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
            row = standby.execute("SELECT verified, example_id FROM sqlchat.ask_full('How many customers are there?')").fetchone()
            assert row == (True, example)
            gw.clear_requests()
            standby.execute("SELECT sqlchat.ask('the emails of two customers')")
            seen = "\n".join("\n".join(m["content"] for m in r["messages"]) for r in gw.requests())
            assert "euros" in seen and "@secret.example" not in seen
            assert sqlstate(standby, "SELECT sqlchat.teach('x', 'SELECT 1')")[0] == "25006"
            assert sqlstate(standby, "SELECT sqlchat.define('x', 'y')")[0] == "25006"
    finally:
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "stop", standby_dir], capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", standby_dir])
