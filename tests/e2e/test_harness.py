"""The fixtures themselves, and the extension's wiring to the fake gateway."""

import psycopg
import pytest

import harness


@pytest.fixture(scope="module")
def shop_sql(tmp_path_factory):
    path = tmp_path_factory.mktemp("sql") / "shop.sql"
    path.write_text(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);\n"
        "INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob'), (3, 'Cy');\n"
        "COMMENT ON TABLE customers IS 'People who bought something';\n"
    )
    return path


def test_settings_point_at_the_gateway(configured, gateway, connect):
    conn = connect()
    assert conn.execute("SELECT current_setting('sqlchat.api_base')").fetchone()[0] == gateway.api_base
    assert conn.execute("SELECT current_setting('sqlchat.model')").fetchone()[0] == harness.MODEL


def test_database_from_sql_file_without_extension(make_db, connect, shop_sql):
    db = make_db("g_harness_plain", [shop_sql], extension=False)
    assert connect(db).execute("SELECT count(*) FROM customers").fetchone()[0] == 3


def test_connections_as_other_roles_and_in_transactions(make_db, make_role, connect, shop_sql):
    db = make_db("g_harness_plain", [shop_sql], extension=False)
    reader = make_role("g_reader")
    connect(db).execute("GRANT SELECT ON customers TO g_reader")
    conn = connect(db, user=reader, autocommit=False)
    assert conn.execute("SELECT current_user").fetchone()[0] == "g_reader"
    assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 3
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    conn.rollback()
    stranger = make_role("g_stranger")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        connect(db, user=stranger).execute("SELECT * FROM customers")


def test_ask_reaches_the_gateway_with_key_model_and_purpose(make_db, gw, connect, shop_sql):
    db = make_db("g_harness_shop", [shop_sql])
    gw.rule(purpose="generate_sql", contains="how many customers", content="SELECT count(*) AS n FROM customers")
    conn = connect(db)
    answer = conn.execute("SELECT rows, llm_calls FROM sqlchat.ask_full('how many customers are there?')").fetchone()
    assert answer[0] == [{"n": 3}]
    generation = gw.requests(purpose="generate_sql")
    assert len(generation) == 1
    request = generation[0]
    assert request["authorization"] == f"Bearer {harness.API_KEY}"
    assert request["model"] == harness.MODEL
    assert "how many customers are there?" in request["messages"][-1]["content"]
    assert answer[1] == len(gw.requests())
