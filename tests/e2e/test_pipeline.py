"""The pipeline end to end through the SQL surface: repair, generate_sql, bad input, transactions,
and calls from PL/pgSQL functions, procedures, views and LATERAL."""

import os

import psycopg
import pytest

SHOP = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(10,2));
INSERT INTO customers VALUES (1, 'Ann', 'Oslo'), (2, 'Bob', 'Rome'), (3, 'Cy', 'Oslo');
INSERT INTO orders VALUES (1, 1, 10), (2, 1, 20), (3, 2, 5);
COMMENT ON TABLE customers IS 'People who bought something';
CREATE TABLE audit (id serial PRIMARY KEY, note text);
CREATE TABLE questions (id int PRIMARY KEY, q text);
INSERT INTO questions VALUES (1, 'how many customers are there?'), (2, 'how many orders are there?');
"""

COUNT_CUSTOMERS = "SELECT count(*) AS n FROM customers"
COUNT_ORDERS = "SELECT count(*) AS n FROM orders"


@pytest.fixture(scope="module")
def db(make_db, tmp_path_factory):
    path = tmp_path_factory.mktemp("sql") / "shop.sql"
    path.write_text(SHOP)
    return make_db("e2e_pipeline", [path])


@pytest.fixture
def scripted(gw):
    gw.rule(purpose="generate_sql", contains="how many customers", content=f"```sql\n{COUNT_CUSTOMERS};\n```")
    gw.rule(purpose="generate_sql", contains="how many orders", content=f"Here you go:\n\n{COUNT_ORDERS}")
    return gw


def test_ask_answers_in_words_with_two_calls(db, scripted, connect):
    row = connect(db).execute(
        "SELECT answer, sql, rows, suggestions, tables, attempts, llm_calls, from_cache, engine "
        "FROM sqlchat.ask_full('how many customers are there?')"
    ).fetchone()
    answer, sql, rows, suggestions, tables, attempts, llm_calls, from_cache, engine = row
    assert sql == COUNT_CUSTOMERS
    assert rows == [{"n": 3}]
    assert answer and isinstance(suggestions, list)
    assert "public.customers" in tables
    assert (attempts, llm_calls, engine) == (1, 2, "llm")
    assert [r["purpose"] for r in scripted.requests()] == ["generate_sql", "answer"]


def test_repair_feeds_the_error_back(db, gw, connect):
    gw.rule(purpose="generate_sql", contains="repair me", content="SELECT count(nope) FROM customers")
    gw.rule(purpose="repair", content=COUNT_CUSTOMERS)
    row = connect(db).execute("SELECT rows, attempts, llm_calls FROM sqlchat.ask_full('repair me please')").fetchone()
    assert row == ([{"n": 3}], 2, 3)
    repair = gw.requests(purpose="repair")[0]
    text = " ".join(m["content"] for m in repair["messages"])
    assert "nope" in text and "does not exist" in text


def test_repair_stops_when_the_model_repeats_itself(db, gw, connect):
    gw.rule(purpose="generate_sql", contains="stubborn", content="SELECT nope FROM customers")
    gw.rule(purpose="repair", content="SELECT nope FROM customers")
    with pytest.raises(psycopg.errors.UndefinedColumn) as e:
        connect(db).execute("SELECT sqlchat.ask('stubborn question')")
    # The repeated statement is the model's second attempt; it is not run again.
    assert "after 2 attempts and 2 model calls" in str(e.value)
    assert len(gw.requests(purpose="repair")) == 1


def test_max_attempts_bounds_repairs(db, gw, connect):
    gw.rule(purpose="generate_sql", contains="hopeless", content="SELECT a1 FROM customers")
    gw.rule(purpose="repair", contents=[f"SELECT a{i} FROM customers" for i in range(2, 10)])
    conn = connect(db)
    conn.execute("SET sqlchat.max_attempts = 2")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute("SELECT sqlchat.ask('hopeless question')")
    assert len(gw.requests(purpose="repair")) == 1


def test_generate_sql_makes_one_call_and_runs_nothing(db, gw, connect):
    gw.rule(purpose="generate_sql", contains="remove", content="DELETE FROM audit")
    conn = connect(db)
    assert conn.execute("SELECT sqlchat.generate_sql('remove the audit rows')").fetchone()[0] == "DELETE FROM audit"
    assert len(gw.requests()) == 1
    conn.execute("INSERT INTO audit (note) VALUES ('kept')")
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] >= 1


def test_refusal_is_an_answer_not_an_error(db, gw, connect):
    gw.rule(purpose="generate_sql", contains="weather", content="CANNOT_ANSWER: there is no weather data")
    row = connect(db).execute("SELECT answer, sql, rows FROM sqlchat.ask_full('what is the weather in Oslo?')").fetchone()
    assert "weather" in row[0] and row[1] is None and row[2] is None


def test_model_without_sql_is_a_clear_error(db, gw, connect):
    # The empty reply gets one more request for the SQL alone (purpose repair); empty again, the
    # ask ends.
    gw.rule(purpose=["generate_sql", "repair"], contains="empty reply", content="   ")
    with pytest.raises(psycopg.Error) as e:
        connect(db).execute("SELECT sqlchat.ask('empty reply please')")
    assert e.value.sqlstate == "22000"
    assert e.value.diag.message_hint
    assert [r["purpose"] for r in gw.requests()] == ["generate_sql", "repair"]


def test_unreachable_gateway(db, gw, connect):
    conn = connect(db)
    conn.execute("SET sqlchat.api_base = 'http://127.0.0.1:9/v1'")
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT sqlchat.ask('is the gateway there?')")
    assert e.value.sqlstate == "08001"
    assert "sqlchat.api_base" in e.value.diag.message_hint


def test_gateway_auth_failure_names_the_key_setting(db, gw, connect):
    gw.rule(purpose="generate_sql", status=401, body={"error": {"message": "Invalid API key"}})
    with pytest.raises(psycopg.Error) as e:
        connect(db).execute("SELECT sqlchat.ask('who am I to the gateway?')")
    assert e.value.sqlstate == "28000"
    assert "sqlchat.api_key" in e.value.diag.message_hint


def test_caller_reading_nothing_gets_a_privilege_error(db, gw, make_role, connect):
    role = make_role("e2e_nobody")
    with pytest.raises(psycopg.Error) as e:
        connect(db, user=role).execute("SELECT sqlchat.ask('how many customers are there?')")
    assert e.value.sqlstate == "42501"
    assert gw.requests() == []


def test_errors_of_generated_sql_never_abort_the_callers_transaction(db, gw, connect):
    gw.rule(purpose="generate_sql", contains="divide", content="SELECT 1/0 AS x")
    gw.rule(purpose="repair", content=COUNT_CUSTOMERS)
    conn = connect(db, autocommit=False)
    conn.execute("INSERT INTO audit (note) VALUES ('before')")
    assert conn.execute("SELECT rows FROM sqlchat.ask_full('divide by zero')").fetchone()[0] == [{"n": 3}]
    conn.execute("INSERT INTO audit (note) VALUES ('after')")
    assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "off"
    conn.commit()
    notes = [r[0] for r in connect(db).execute("SELECT note FROM audit WHERE note IN ('before', 'after')")]
    assert sorted(notes) == ["after", "before"]


def test_rollback_to_savepoint_after_an_error_leaves_nothing_behind(db, gw, cluster, connect):
    gw.rule(purpose="generate_sql", status=500, body={"error": {"message": "boom"}})
    conn = connect(db, autocommit=False)
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute("INSERT INTO audit (note) VALUES ('savepoint')")
    conn.execute("SAVEPOINT s")
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT sqlchat.ask('a question the gateway fails on')")
    assert e.value.sqlstate == "58000"
    conn.execute("ROLLBACK TO SAVEPOINT s")
    assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "off"
    conn.execute("INSERT INTO audit (note) VALUES ('still writable')")
    locks = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'"
    ).fetchone()[0]
    assert locks == 0
    conn.commit()
    if os.path.isdir(f"/proc/{pid}/task"):
        assert len(os.listdir(f"/proc/{pid}/task")) == 1, "a helper thread outlived the call"


def test_plpgsql_function_and_procedure_with_commits(db, scripted, connect):
    conn = connect(db)
    conn.execute(
        """
        CREATE OR REPLACE FUNCTION count_customers_in_words() RETURNS text LANGUAGE plpgsql AS $$
        BEGIN
            RETURN sqlchat.ask('how many customers are there?');
        END $$;
        CREATE OR REPLACE PROCEDURE ask_all() LANGUAGE plpgsql AS $$
        DECLARE q record;
        BEGIN
            FOR q IN SELECT * FROM questions ORDER BY id LOOP
                INSERT INTO audit (note) VALUES ('answer: ' || sqlchat.ask(q.q));
                COMMIT;
            END LOOP;
        END $$;
        """
    )
    assert conn.execute("SELECT count_customers_in_words()").fetchone()[0]
    conn.execute("CALL ask_all()")
    assert conn.execute("SELECT count(*) FROM audit WHERE note LIKE 'answer: %'").fetchone()[0] >= 2


def test_ask_full_in_a_view_and_with_lateral(db, scripted, connect):
    conn = connect(db)
    conn.execute(
        "CREATE OR REPLACE VIEW customer_count AS "
        "SELECT a.rows, a.sql FROM sqlchat.ask_full('how many customers are there?') a"
    )
    assert conn.execute("SELECT rows FROM customer_count").fetchone()[0] == [{"n": 3}]
    got = conn.execute(
        "SELECT q.id, a.rows FROM questions q CROSS JOIN LATERAL sqlchat.ask_full(q.q) a ORDER BY q.id"
    ).fetchall()
    assert got == [(1, [{"n": 3}]), (2, [{"n": 3}])]


ROWS = '[{"month": "2024-01-01", "revenue": 10}, {"month": "2024-02-01", "revenue": 12}, {"month": "2024-03-01", "revenue": 9}]'


def test_suggest_chart_refines_the_title_with_the_model(db, gw, connect):
    gw.rule(purpose="chart", content="Monthly revenue, first quarter")
    chart = connect(db).execute("SELECT sqlchat.suggest_chart('revenue per month', 'SELECT month, revenue FROM t', %s)", (ROWS,)).fetchone()[0]
    assert chart["chart_type"] == "line"
    assert chart["title"] == "Monthly revenue, first quarter"
    assert chart["vega_lite"]["data"]["values"]


def test_suggest_chart_stands_without_the_model(db, gw, connect):
    gw.rule(purpose="chart", status=500, body={"error": {"message": "down"}})
    conn = connect(db)
    chart = conn.execute("SELECT sqlchat.suggest_chart('revenue per month', '', %s)", (ROWS,)).fetchone()[0]
    assert chart["chart_type"] == "line" and chart["title"]
    conn.execute("SET sqlchat.engine = 'offline'")
    gw.clear_requests()
    conn.execute("SELECT sqlchat.suggest_chart('revenue per month', '', %s)", (ROWS,))
    assert gw.requests() == []


def test_called_from_a_trigger(db, scripted, connect):
    conn = connect(db)
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, question text, answer text);
        CREATE OR REPLACE FUNCTION answer_note() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.answer := sqlchat.ask(NEW.question);
            RETURN NEW;
        END $$;
        DROP TRIGGER IF EXISTS notes_answer ON notes;
        CREATE TRIGGER notes_answer BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION answer_note();
        """
    )
    conn.execute("INSERT INTO notes (question) VALUES ('how many customers are there?')")
    assert conn.execute("SELECT answer FROM notes").fetchone()[0]
    assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "off"


def test_never_runs_in_a_parallel_worker(db, connect):
    conn = connect(db)
    row = conn.execute(
        "SELECT proparallel FROM pg_proc WHERE oid = 'sqlchat.ask(text, text)'::regprocedure"
    ).fetchone()
    assert row[0] == "u"


def test_shadowed_privilege_functions_reveal_nothing(db, gw, make_role, connect):
    """The catalog filter uses PostgreSQL's own privilege functions, not look-alikes the caller put
    first on its search_path."""
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    role = make_role("e2e_shadow")
    admin = connect(db)
    admin.execute("CREATE TABLE IF NOT EXISTS payroll_secret (id int, salary int)")
    admin.execute(f"DROP SCHEMA IF EXISTS shadow CASCADE; CREATE SCHEMA shadow AUTHORIZATION {role}")
    admin.execute(f"GRANT SELECT ON customers TO {role}")
    conn = connect(db, user=role)
    conn.execute(
        """
        CREATE FUNCTION shadow.has_table_privilege(oid, text) RETURNS bool LANGUAGE sql AS 'SELECT true';
        CREATE FUNCTION shadow.has_any_column_privilege(oid, text) RETURNS bool LANGUAGE sql AS 'SELECT true';
        CREATE FUNCTION shadow.has_schema_privilege(oid, text) RETURNS bool LANGUAGE sql AS 'SELECT true';
        """
    )
    conn.execute("SET search_path = shadow, public, pg_catalog")
    conn.execute("SELECT sqlchat.ask('what is the total salary in the payroll secret table?')")
    prompt = "\n".join(m["content"] for m in gw.requests(purpose="generate_sql")[-1]["messages"])
    assert "payroll_secret" not in prompt
    admin.execute("DROP SCHEMA shadow CASCADE")


def test_generation_expressions_over_hidden_columns_stay_out_of_the_prompt(db, gw, make_role, connect):
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM bonuses")
    role = make_role("e2e_generated")
    admin = connect(db)
    admin.execute("DROP TABLE IF EXISTS bonuses")
    admin.execute(
        "CREATE TABLE bonuses (id int, hidden_rate_zz numeric, base numeric, "
        "doubled numeric GENERATED ALWAYS AS (base * 2) STORED, "
        "payout numeric GENERATED ALWAYS AS (base * hidden_rate_zz) STORED)"
    )
    admin.execute(f"GRANT SELECT (id, base, doubled, payout) ON bonuses TO {role}")
    conn = connect(db, user=role)
    conn.execute("SELECT sqlchat.ask('how many bonuses are there?')")
    prompt = "\n".join(m["content"] for m in gw.requests(purpose="generate_sql")[-1]["messages"])
    assert "payout" in prompt and "doubled" in prompt
    assert "hidden_rate_zz" not in prompt
    assert "(base * " in prompt, "expressions over readable columns are kept"


def test_columns_give_the_query_order_and_types(db, gw, connect):
    gw.rule(purpose="generate_sql", content=(
        "SELECT 3 AS order_id, now() AS ordered_at, 'new'::text AS status, ARRAY[1,2] AS tags, "
        "'{\"a\": 1}'::jsonb AS extra, 1 AS order_id"))
    conn = connect(db)
    columns, rows = conn.execute("SELECT a.columns, a.rows FROM sqlchat.ask_full('columns please') a").fetchone()
    assert [c["name"] for c in columns] == ["order_id", "ordered_at", "status", "tags", "extra", "order_id_2"]
    assert [c["type"] for c in columns][:4] == ["integer", "timestamp with time zone", "text", "integer[]"]
    row = rows[0]
    assert row["tags"] == [1, 2] and row["extra"] == {"a": 1} and row["order_id_2"] == 1
    assert "+" in row["ordered_at"] or row["ordered_at"].endswith("Z") or "-" in row["ordered_at"][19:]
    # The rows in column order, as the README shows.
    ordered = conn.execute(
        "SELECT array_agg(a.rows -> 0 -> (c.col ->> 'name') ORDER BY c.n) "
        "FROM sqlchat.ask_full('columns please') a, jsonb_array_elements(a.columns) WITH ORDINALITY c(col, n)"
    ).fetchone()[0]
    assert ordered[0] == 3 and ordered[3] == [1, 2]
