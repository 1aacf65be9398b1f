"""Conversation memory and the LLM cache: follow-ups, summaries, role isolation, read-only
transactions, a hot standby, pg_dump and concurrency."""

import concurrent.futures
import json
import os
import statistics
import subprocess
import tempfile
import time

import psycopg
import pytest

import harness

SHOP = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, city text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(10,2), ordered_at date);
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com', (ARRAY['Oslo','Rome','Lima'])[1 + g % 3]
FROM generate_series(1, 30) g;
INSERT INTO orders SELECT g, 1 + g % 30, (g * 7) % 100, date '2022-01-01' + g * 5 FROM generate_series(1, 300) g;
"""

TOP = "SELECT c.name, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.name ORDER BY total DESC LIMIT 5"
TOP_2023 = TOP.replace("GROUP BY", "WHERE o.ordered_at >= '2023-01-01' AND o.ordered_at < '2024-01-01' GROUP BY")


@pytest.fixture(scope="module")
def db(make_db, tmp_path_factory):
    path = tmp_path_factory.mktemp("sql") / "shop.sql"
    path.write_text(SHOP)
    return make_db("e2e_memory", [path])


def generation_text(request):
    return "\n".join(m["content"] for m in request["messages"])


def test_follow_up_builds_on_the_previous_turn(db, gw, connect):
    # The follow-up's prompt contains the first question too: match it first.
    gw.rule(purpose="generate_sql", contains="and in 2023", content=TOP_2023)
    gw.rule(purpose="generate_sql", contains="top 5 customers", content=TOP)
    conn = connect(db)
    conn.execute("SELECT sqlchat.ask('top 5 customers by revenue', 'follow-1')")
    conn.execute("SELECT sqlchat.ask('and in 2023?', 'follow-1')")
    second = gw.requests(purpose="generate_sql")[-1]
    text = generation_text(second)
    assert "top 5 customers by revenue" in text, "the earlier question is in the prompt"
    assert "sum(o.amount)" in text, "the earlier SQL is in the prompt"
    turns = conn.execute("SELECT turn, question, sql FROM sqlchat.history('follow-1')").fetchall()
    assert [t[1] for t in turns] == ["top 5 customers by revenue", "and in 2023?"]
    assert turns[1][2] == TOP_2023


def test_older_turns_are_summarised_once_and_stored(db, gw, connect):
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    gw.rule(purpose="summarize", content="The user counted customers several times.")
    conn = connect(db)
    conn.execute("SET sqlchat.max_history = 2")
    conn.execute("SET sqlchat.enable_cache = off")
    for i in range(5):
        conn.execute("SELECT sqlchat.ask(%s, 'long-session')", (f"count customers, take {i}",))
    summaries = gw.requests(purpose="summarize")
    # Turns 1-2 are recent until the 4th question; from then on each new question makes exactly
    # one older turn to fold in.
    assert len(summaries) == 2
    last = gw.requests(purpose="generate_sql")[-1]
    assert "The user counted customers several times." in generation_text(last)
    stored = conn.execute(
        "SELECT count(*) FROM sqlchat.session_summary WHERE session_id = 'long-session'"
    ).fetchone()[0]
    assert stored == 1


def test_one_role_never_sees_another_roles_turns(db, gw, make_role, connect):
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    for r in ("mem_alice", "mem_bob"):
        make_role(r)
        connect(db).execute(f"GRANT SELECT ON customers, orders TO {r}")
    alice = connect(db, user="mem_alice")
    bob = connect(db, user="mem_bob")
    alice.execute("SELECT sqlchat.ask('alice private question', 'shared-name')")
    assert bob.execute("SELECT count(*) FROM sqlchat.history('shared-name')").fetchone()[0] == 0
    assert bob.execute("SELECT sqlchat.forget('shared-name')").fetchone()[0] == 0
    bob.execute("SELECT sqlchat.ask('bob question', 'shared-name')")
    gen = gw.requests(purpose="generate_sql")[-1]
    assert "alice private question" not in generation_text(gen)
    assert alice.execute("SELECT count(*) FROM sqlchat.history('shared-name')").fetchone()[0] == 1
    for table in ("sqlchat.turn", "sqlchat.cache", "sqlchat.session_summary"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bob.execute(f"SELECT * FROM {table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bob.execute(f"DELETE FROM {table}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        bob.execute("SELECT sqlchat.clear_cache()")


def test_repeated_question_makes_no_sql_call(db, gw, connect):
    gw.rule(purpose="generate_sql", contains="cities", content="SELECT city, count(*) FROM customers GROUP BY city ORDER BY city")
    conn = connect(db)
    first = conn.execute("SELECT from_cache, llm_calls FROM sqlchat.ask_full('customers per cities')").fetchone()
    second = conn.execute("SELECT from_cache, llm_calls, rows FROM sqlchat.ask_full('customers per cities')").fetchone()
    assert first == (False, 2)
    assert second[0] is True and second[1] == 1
    assert len(gw.requests(purpose="generate_sql")) == 1
    # Another backend reads it from the table.
    third = connect(db).execute("SELECT from_cache FROM sqlchat.ask_full('customers per cities')").fetchone()[0]
    assert third is True
    conn.execute("SET sqlchat.enable_cache = off")
    assert conn.execute("SELECT from_cache FROM sqlchat.ask_full('customers per cities')").fetchone()[0] is False


def test_cache_is_per_role_and_reruns_under_the_callers_rights(db, gw, make_role, connect):
    gw.rule(purpose="generate_sql", contains="emails", content="SELECT email FROM customers ORDER BY id LIMIT 3")
    make_role("cache_full")
    make_role("cache_part")
    admin = connect(db)
    admin.execute("GRANT SELECT ON customers TO cache_full")
    admin.execute("GRANT SELECT (id, name, email) ON customers TO cache_part")
    full = connect(db, user="cache_full").execute("SELECT rows FROM sqlchat.ask_full('customer emails')").fetchone()[0]
    assert len(full) == 3
    part = connect(db, user="cache_part").execute("SELECT from_cache FROM sqlchat.ask_full('customer emails')").fetchone()[0]
    assert part is False, "another role's cached SQL must not be reused"


def test_ttl_expires_entries(db, gw, connect):
    gw.rule(purpose="generate_sql", contains="expiring", content="SELECT 1 AS one FROM customers LIMIT 1")
    conn = connect(db)
    conn.execute("SET sqlchat.cache_ttl = 1")
    conn.execute("SELECT sqlchat.ask('expiring question')")
    assert conn.execute("SELECT from_cache FROM sqlchat.ask_full('expiring question')").fetchone()[0] is True
    time.sleep(1.3)
    assert conn.execute("SELECT from_cache FROM sqlchat.ask_full('expiring question')").fetchone()[0] is False


def test_clear_cache_for_superusers(db, gw, connect):
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    conn = connect(db)
    conn.execute("SELECT sqlchat.ask('something to cache')")
    assert conn.execute("SELECT sqlchat.clear_cache()").fetchone()[0] >= 1
    assert conn.execute("SELECT count(*) FROM sqlchat.cache").fetchone()[0] == 0


@pytest.mark.parametrize("mode", ["read only transaction", "default_transaction_read_only"])
def test_read_only_transactions_still_answer(db, gw, connect, mode):
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    conn = connect(db, autocommit=False)
    if mode == "read only transaction":
        conn.execute("SET TRANSACTION READ ONLY")
    else:
        conn.execute("SET default_transaction_read_only = on")
        conn.commit()
    session = f"ro-{mode}"
    rows = conn.execute("SELECT rows FROM sqlchat.ask_full('ro count', %s)", (session,)).fetchone()[0]
    assert rows == [{"n": 30}]
    conn.execute("SELECT sqlchat.ask('ro count again', %s)", (session,))
    # Memory fell back to the backend: the follow-up saw the first turn.
    assert "ro count" in generation_text(gw.requests(purpose="generate_sql")[-1])
    assert conn.execute("SELECT count(*) FROM sqlchat.history(%s)", (session,)).fetchone()[0] == 2
    conn.rollback()


def test_pg_dump_keeps_memory_not_cache(db, gw, cluster, connect):
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    conn = connect(db)
    conn.execute("SELECT sqlchat.ask('remember me in the dump', 'dumped')")
    dump = subprocess.run(
        [str(harness.PGBIN / "pg_dump"), "-d", cluster.conninfo(db), "--data-only", "--schema=sqlchat"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "remember me in the dump" in dump
    assert "COPY sqlchat.cache" not in dump


def test_concurrent_sessions(db, gw, connect, cluster):
    gw.rule(purpose="generate_sql", content="SELECT city, count(*) FROM customers GROUP BY city")
    sessions, asks = 32, 4

    def worker(i):
        errors = 0
        with cluster.connect(db) as conn:
            for j in range(asks):
                q = "same question for everyone" if j % 2 == 0 else f"question {i}-{j}"
                try:
                    conn.execute("SELECT sqlchat.ask(%s, %s)", (q, f"conc-{i}"))
                except psycopg.Error:
                    errors += 1
        return errors

    with concurrent.futures.ThreadPoolExecutor(max_workers=sessions) as pool:
        errors = sum(pool.map(worker, range(sessions)))
    figures = {"sessions": sessions, "asks_per_session": asks, "errors": errors}
    harness.write_results("memory_cache_concurrency", figures)
    print("\nconcurrency:", figures)
    assert errors == 0
    assert "deadlock" not in cluster.server_log()


def test_cache_lookup_cost_against_a_generate_call(db, gw, connect):
    """Figure: an ask served from the cache against one that waits 100 ms for generation."""
    gw.rule(purpose="generate_sql", contains="timed", content="SELECT count(*) AS n FROM orders", delay_ms=100)
    gw.rule(purpose="answer", content=json.dumps({"answer": "ok", "followups": []}))
    conn = connect(db)
    misses, hits = [], []
    for i in range(7):
        conn.execute("SET sqlchat.enable_cache = off")
        misses.append(conn.execute("SELECT elapsed_ms FROM sqlchat.ask_full(%s)", (f"timed {i}",)).fetchone()[0])
        conn.execute("SET sqlchat.enable_cache = on")
        conn.execute("SELECT sqlchat.ask(%s)", (f"timed c{i}",))
        hits.append(conn.execute("SELECT elapsed_ms FROM sqlchat.ask_full(%s)", (f"timed c{i}",)).fetchone()[0])
    figures = {"ask_ms_generate_100ms_median": statistics.median(misses), "ask_ms_cache_hit_median": statistics.median(hits)}
    figures["hit_over_miss"] = figures["ask_ms_cache_hit_median"] / figures["ask_ms_generate_100ms_median"]
    harness.write_results("memory_cache_timing", figures)
    print("\ncache timing:", figures)
    assert figures["ask_ms_cache_hit_median"] < figures["ask_ms_generate_100ms_median"]


def test_hot_standby_answers(db, gw, cluster, connect):
    """A real streaming replica: memory and cache writes are skipped there, answers still come."""
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    standby_dir = tempfile.mkdtemp(prefix="sqlchat-standby-")
    os.chmod(standby_dir, 0o777)
    port = harness.free_port()
    data = os.path.join(standby_dir, "data")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        as_pg + [str(harness.PGBIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
                 "-D", data, "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"],
        check=True, capture_output=True, timeout=300,
    )
    try:
        preload = ["shared_preload_libraries=sqlchat"] if cluster.preloaded else []
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "start", standby_dir, str(port), *preload], check=True,
                       capture_output=True, timeout=120)
        asked, answered = 5, 0
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=db, autocommit=True) as standby:
            assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
            for i in range(asked):
                rows = standby.execute("SELECT rows FROM sqlchat.ask_full(%s, 'on-standby')", (f"standby count {i}",)).fetchone()[0]
                answered += rows == [{"n": 30}]
            assert standby.execute("SELECT count(*) FROM sqlchat.history('on-standby')").fetchone()[0] == asked
        harness.write_results("memory_cache_standby", {"asked": asked, "answered": answered})
        print(f"\nstandby: {answered}/{asked} answered")
        assert answered == asked
    finally:
        subprocess.run(["bash", str(harness.CLUSTER_SCRIPT), "stop", standby_dir], capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", standby_dir])


def test_callers_operators_never_run_as_the_owner(db, gw, make_role, connect):
    """The store runs as the tables' owner: a caller's own `=` operator on its search_path must not
    be picked up there (that would run the caller's code with the owner's rights)."""
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    attacker = make_role("mem_attacker")
    admin = connect(db)
    admin.execute(f"DROP SCHEMA IF EXISTS evil CASCADE; CREATE SCHEMA evil AUTHORIZATION {attacker}")
    admin.execute(f"GRANT SELECT ON customers TO {attacker}")
    conn = connect(db, user=attacker)
    conn.execute(
        """
        CREATE TABLE evil.log (who text);
        CREATE FUNCTION evil.eq(name, text) RETURNS bool LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO evil.log VALUES (current_user);
            RETURN $1::text OPERATOR(pg_catalog.=) $2;
        END $$;
        CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = text, FUNCTION = evil.eq);
        CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO evil.log VALUES (current_user);
            RETURN pg_catalog.now();
        END $$;
        """
    )
    conn.execute("SET search_path = evil, public, pg_catalog")
    conn.execute("SELECT sqlchat.ask('count the customers', 'evil-session')")
    conn.execute("SELECT sqlchat.ask('count the customers again', 'evil-session')")
    conn.execute("SELECT * FROM sqlchat.history('evil-session')")
    conn.execute("SELECT sqlchat.forget('evil-session')")
    ran_as = {r[0] for r in admin.execute("SELECT who FROM evil.log")}
    assert "postgres" not in ran_as, ran_as
    admin.execute("DROP SCHEMA evil CASCADE")


def test_a_new_role_with_a_dropped_roles_name_sees_nothing_of_it(db, gw, connect, cluster):
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    with cluster.connect(db) as admin:
        admin.execute("DROP ROLE IF EXISTS mc_reborn")
        admin.execute("CREATE ROLE mc_reborn LOGIN")
        admin.execute("GRANT SELECT ON customers TO mc_reborn")
    first = connect(db, user="mc_reborn")
    first.execute("SELECT sqlchat.ask('how many customers? my secret project', 'reborn')")
    assert len(first.execute("SELECT * FROM sqlchat.history('reborn')").fetchall()) == 1
    first.close()
    with cluster.connect(db) as admin:
        admin.execute("DROP OWNED BY mc_reborn")
        admin.execute("DROP ROLE mc_reborn")
        admin.execute("CREATE ROLE mc_reborn LOGIN")
        admin.execute("GRANT SELECT ON customers TO mc_reborn")
    again = connect(db, user="mc_reborn")
    assert again.execute("SELECT * FROM sqlchat.history('reborn')").fetchall() == []
    gw.clear_requests()
    again.execute("SELECT sqlchat.ask('and now?', 'reborn')")
    assert "secret project" not in generation_text(gw.requests(purpose="generate_sql")[-1])


def test_one_roles_open_transaction_never_blocks_anothers_ask(db, gw, connect, cluster):
    """Role A holds an expired cache row locked in an open transaction; role B's ask, which cleans up
    expired rows, goes on without waiting for A."""
    gw.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM customers")
    with cluster.connect(db) as admin:
        for role in ("mc_holder", "mc_other"):
            admin.execute(f"DROP ROLE IF EXISTS {role}")
            admin.execute(f"CREATE ROLE {role} LOGIN")
            admin.execute(f"GRANT SELECT ON customers TO {role}")
    holder = connect(db, user="mc_holder", autocommit=False)
    holder.execute("SET sqlchat.cache_ttl = 1")
    holder.execute("SELECT sqlchat.ask('how many customers, held?')")
    holder.commit()
    time.sleep(1.2)
    # The same question again: its expired row is updated, and stays locked until A commits.
    holder.execute("SELECT sqlchat.ask('how many customers, held?')")
    other = connect(db, user="mc_other")
    other.execute("SET lock_timeout = '3s'")
    started = time.monotonic()
    other.execute("SELECT sqlchat.ask('how many customers, other?')")
    waited = time.monotonic() - started
    holder.rollback()
    assert waited < 2.0, waited
