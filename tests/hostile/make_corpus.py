#!/usr/bin/env python3
"""Writes corpus.jsonl: hostile statements a model might return, one JSON object a line
({"category", "sql"}), for tests/e2e/test_safety.py. Each base statement comes with variations of
case, comments, quoting and nesting in subqueries and CTEs. The objects they name exist in the
test's fixture database (tests/hostile/fixture.sql). Regenerate with:
    python3 tests/hostile/make_corpus.py > tests/hostile/corpus.jsonl
"""

import json

# Placeholders filled by the test: {capture_port} (a TCP capture server), {tmp} (a scratch dir
# the server may write to).
BASE = {
    "multi_statement": [
        "DELETE FROM accounts; SELECT 1",
        "INSERT INTO audit(note) VALUES ('x'); SELECT * FROM accounts",
        "UPDATE accounts SET balance = 0; SELECT count(*) FROM accounts",
        "DROP TABLE accounts; SELECT 1",
        "SELECT 1; DELETE FROM accounts",
        "SELECT * FROM accounts; DROP TABLE accounts",
        "SELECT 1; SELECT pg_advisory_lock(7)",
    ],
    "dml": [
        "DELETE FROM accounts",
        "DELETE FROM accounts WHERE id = 1 RETURNING *",
        "UPDATE accounts SET balance = balance + 100",
        "UPDATE accounts SET owner = 'mallory' WHERE id = 2 RETURNING id",
        "INSERT INTO accounts VALUES (99, 'mallory', 1e9)",
        "INSERT INTO audit(note) SELECT owner FROM accounts RETURNING id",
        "INSERT INTO audit DEFAULT VALUES",
        "TRUNCATE accounts",
        "TRUNCATE audit RESTART IDENTITY",
    ],
    "ddl": [
        "CREATE TABLE pwned (id int)",
        "CREATE TABLE pwned AS SELECT * FROM accounts",
        "DROP TABLE accounts",
        "ALTER TABLE accounts ADD COLUMN pwned int",
        "ALTER TABLE accounts DISABLE ROW LEVEL SECURITY",
        "CREATE FUNCTION pwned() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE VIEW pwned AS SELECT * FROM accounts",
        "CREATE INDEX pwned ON accounts(owner)",
        "COMMENT ON TABLE accounts IS 'pwned'",
        "GRANT ALL ON accounts TO PUBLIC",
        "CREATE ROLE pwned SUPERUSER LOGIN",
        "ALTER ROLE CURRENT_USER SET sqlchat.max_rows = 1",
        "CREATE EXTENSION IF NOT EXISTS pageinspect",
        "REFRESH MATERIALIZED VIEW balances_mv",
        "CREATE TEMP TABLE pwned (id int)",
    ],
    "merge": [
        "MERGE INTO accounts a USING (SELECT 1 AS id) s ON a.id = s.id WHEN MATCHED THEN DELETE",
        "MERGE INTO accounts a USING accounts s ON a.id = s.id WHEN MATCHED THEN UPDATE SET balance = 0",
        "MERGE INTO audit t USING (VALUES (1)) s(x) ON false WHEN NOT MATCHED THEN INSERT (note) VALUES ('m')",
    ],
    "copy": [
        "COPY accounts TO '{tmp}/copy_out.csv'",
        "COPY (SELECT * FROM accounts) TO '{tmp}/copy_q.csv' CSV",
        "COPY accounts TO PROGRAM 'touch {tmp}/copy_prog'",
        "COPY audit(note) FROM PROGRAM 'echo pwned'",
        "COPY accounts FROM '{tmp}/missing.csv'",
        "COPY (SELECT 1) TO STDOUT",
    ],
    "call": [
        "CALL bump_proc()",
        "CALL public.bump_proc()",
    ],
    "do": [
        "DO $$ BEGIN DELETE FROM accounts; END $$",
        "DO $x$ BEGIN PERFORM nextval('counter_seq'); END $x$",
        "DO LANGUAGE plpgsql $$ BEGIN EXECUTE 'DROP TABLE accounts'; END $$",
    ],
    "set": [
        "SET work_mem = '1MB'",
        "SET search_path = evil, public",
        "SET SESSION AUTHORIZATION DEFAULT",
        "SET ROLE NONE",
        "SET transaction_read_only = off",
        "SET LOCAL statement_timeout = 0",
        "RESET ALL",
        "SET sqlchat.max_rows = 1",
        "SHOW sqlchat.api_key",
        "SHOW ALL",
    ],
    "lock": [
        "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE",
        "LOCK accounts",
        "LOCK TABLE audit IN SHARE MODE NOWAIT",
    ],
    "vacuum": [
        "VACUUM accounts",
        "VACUUM FULL accounts",
        "ANALYZE accounts",
        "CLUSTER accounts USING accounts_pkey",
        "REINDEX TABLE accounts",
        "CHECKPOINT",
    ],
    "explain_analyze": [
        "EXPLAIN ANALYZE SELECT * FROM accounts",
        "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM accounts",
        "EXPLAIN ANALYZE INSERT INTO audit(note) VALUES ('e')",
        "EXPLAIN SELECT * FROM accounts",
    ],
    "select_into": [
        "SELECT * INTO pwned FROM accounts",
        "SELECT id, owner INTO TEMP pwned FROM accounts",
        "SELECT * INTO UNLOGGED TABLE pwned FROM accounts",
    ],
    "modifying_cte": [
        "WITH d AS (DELETE FROM accounts RETURNING *) SELECT * FROM d",
        "WITH u AS (UPDATE accounts SET balance = 0 RETURNING id) SELECT count(*) FROM u",
        "WITH i AS (INSERT INTO audit(note) VALUES ('cte') RETURNING id) SELECT * FROM i",
        "WITH a AS (SELECT 1), d AS (DELETE FROM audit RETURNING 1) SELECT * FROM a",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3), d AS (DELETE FROM accounts WHERE id IN (SELECT n FROM r) RETURNING id) SELECT * FROM d",
    ],
    "for_update": [
        "SELECT * FROM accounts FOR UPDATE",
        "SELECT * FROM accounts FOR SHARE",
        "SELECT * FROM accounts FOR NO KEY UPDATE SKIP LOCKED",
        "SELECT * FROM accounts FOR KEY SHARE NOWAIT",
        "SELECT * FROM (SELECT * FROM accounts FOR UPDATE) s",
        "SELECT a.* FROM accounts a JOIN audit b ON true FOR UPDATE OF a",
    ],
    "utility_other": [
        "PREPARE p AS DELETE FROM accounts",
        "EXECUTE p",
        "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM accounts",
        "LISTEN hostile",
        "NOTIFY hostile, 'utility'",
        "DISCARD ALL",
        "LOAD 'dblink'",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "SECURITY LABEL ON TABLE accounts IS 'x'",
        "IMPORT FOREIGN SCHEMA public FROM SERVER nowhere INTO public",
    ],
    "fn_sleep": [
        "SELECT pg_sleep(30)",
        "SELECT pg_sleep_for('30 seconds')",
        "SELECT pg_sleep_until(now() + interval '30 seconds')",
        "SELECT id FROM accounts WHERE pg_sleep(10) IS NOT NULL",
    ],
    "fn_sequence": [
        "SELECT nextval('counter_seq')",
        "SELECT setval('counter_seq', 1000)",
        "SELECT id, nextval('counter_seq') FROM accounts",
        "SELECT setval('audit_id_seq'::regclass, 500, false)",
        "SELECT currval('counter_seq')",
    ],
    "fn_set_config": [
        "SELECT set_config('work_mem', '1MB', false)",
        "SELECT set_config('search_path', 'evil', false)",
        "SELECT set_config('transaction_read_only', 'off', true)",
        "SELECT set_config('sqlchat.max_rows', '1', false)",
        "SELECT id FROM accounts WHERE set_config('role', 'postgres', false) IS NOT NULL",
    ],
    "fn_settings_read": [
        "SELECT current_setting('sqlchat.api_key')",
        "SELECT current_setting('sqlchat.api_key', true)",
        "SELECT setting FROM pg_settings WHERE name LIKE 'sqlchat.%'",
        "SELECT * FROM pg_show_all_settings() WHERE name = 'sqlchat.api_key'",
        "SELECT setconfig FROM pg_db_role_setting",
        "SELECT rolname, rolconfig FROM pg_roles",
        "SELECT * FROM pg_file_settings",
        "SELECT pg_settings_get_flags('sqlchat.api_key')",
        "SELECT * FROM pg_catalog.pg_authid",
        "SELECT query_to_xml('SELECT current_setting(''sqlchat.api_key'')', true, false, '')",
    ],
    "fn_dblink": [
        "SELECT * FROM dblink('host=127.0.0.1 port={capture_port} dbname=x user=x', 'SELECT 1') AS t(a int)",
        "SELECT dblink_exec('host=127.0.0.1 port={capture_port} dbname=x user=x', 'DELETE FROM accounts')",
        "SELECT dblink_connect('c', 'host=127.0.0.1 port={capture_port} dbname=x user=x')",
        "SELECT dblink_connect_u('host=127.0.0.1 port={capture_port} dbname=x user=x')",
        "SELECT public.dblink_exec('dbname=' || current_database(), 'DELETE FROM accounts')",
    ],
    "fn_large_object": [
        "SELECT lo_import('/etc/hostname')",
        "SELECT lo_export(lo_from_bytea(0, 'x'), '{tmp}/lo_out')",
        "SELECT lo_from_bytea(0, 'pwned')",
        "SELECT lo_create(0)",
        "SELECT lo_unlink(1)",
        "SELECT lowrite(lo_open(lo_creat(-1), 131072), 'x')",
        "SELECT lo_get(1)",
        "SELECT data FROM pg_largeobject",
    ],
    "fn_file_access": [
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_read_binary_file('/etc/hostname')",
        "SELECT pg_read_file('postgresql.auto.conf')",
        "SELECT * FROM pg_ls_dir('.')",
        "SELECT pg_stat_file('postgresql.conf')",
        "SELECT * FROM pg_ls_logdir()",
        "SELECT * FROM pg_ls_waldir()",
        "SELECT pg_current_logfile()",
    ],
    "fn_advisory_lock": [
        "SELECT pg_advisory_lock(4242)",
        "SELECT pg_try_advisory_lock(4242)",
        "SELECT pg_advisory_lock_shared(1, 2)",
        "SELECT pg_advisory_xact_lock(4242)",
        "SELECT id FROM accounts WHERE pg_try_advisory_lock(id)",
    ],
    "fn_notify": [
        "SELECT pg_notify('hostile', 'fn')",
        "SELECT id, pg_notify('hostile', owner) FROM accounts",
        "SELECT 1 WHERE pg_notify('hostile', 'where') IS NULL",
    ],
    "fn_signal_backend": [
        "SELECT pg_terminate_backend({victim_pid})",
        "SELECT pg_cancel_backend({victim_pid})",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
        "SELECT pg_reload_conf()",
        "SELECT pg_rotate_logfile()",
        "SELECT pg_stat_reset()",
        "SELECT pg_log_backend_memory_contexts(pg_backend_pid())",
    ],
    "fn_query_string": [
        "SELECT query_to_xml('DELETE FROM accounts RETURNING *', true, false, '')",
        "SELECT query_to_xml('SELECT nextval(''counter_seq'')', true, false, '')",
        "SELECT table_to_xml('accounts', true, false, '')",
        "SELECT query_to_xml_and_xmlschema('SELECT 1', true, false, '')",
        "SELECT database_to_xml(true, false, '')",
        "SELECT * FROM ts_stat('SELECT to_tsvector(owner) FROM accounts')",
        "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
        "SELECT cursor_to_xml('c', 1, true, false, '')",
    ],
    "fn_mislabelled": [
        "SELECT stable_writer()",
        "SELECT public.stable_writer()",
        "SELECT immutable_bumper()",
        "SELECT notify_fn('mislabelled')",
        "SELECT lock_fn()",
        "SELECT id FROM accounts WHERE stable_writer() > 0",
        "SELECT * FROM rows_writer()",
    ],
    "fn_hidden_in_view": [
        "SELECT * FROM v_bump",
        "SELECT id FROM v_bump",
        "SELECT count(*) FROM v_lock",
        "SELECT * FROM v_notify",
        "SELECT owner FROM v_writer",
    ],
    "fn_hidden_in_default": [
        "INSERT INTO audit(note) VALUES ('default')",
        "INSERT INTO bumped_default DEFAULT VALUES",
        "WITH i AS (INSERT INTO bumped_default DEFAULT VALUES RETURNING *) SELECT * FROM i",
    ],
    "fn_operator": [
        "SELECT 1 ~+~ 2",
        "SELECT id FROM accounts WHERE id ~+~ 1 > 0",
        "SELECT id FROM accounts ORDER BY id ~+~ 0",
        "SELECT 1 OPERATOR(public.~+~) 2",
    ],
    "fn_cast": [
        "SELECT 1::mood",
        "SELECT CAST(id AS mood) FROM accounts",
        "SELECT 2::bumped_int",
        "SELECT id::bumped_int FROM accounts",
    ],
    "fn_aggregate_window": [
        "SELECT bump_sum(id) FROM accounts",
        "SELECT bump_sum(id) OVER () FROM accounts",
        "SELECT owner, bump_sum(id) FROM accounts GROUP BY owner",
    ],
    "fn_rte_function": [
        "SELECT * FROM rows_writer()",
        "SELECT * FROM accounts, LATERAL (SELECT stable_writer()) s",
        "SELECT * FROM ROWS FROM (generate_series(1, 2), rows_writer()) AS t(a, b)",
        "SELECT * FROM pg_ls_dir('/') AS f",
    ],
    "fn_other_volatile": [
        "SELECT txid_current()",
        "SELECT pg_current_xact_id()",
        "SELECT pg_export_snapshot()",
        "SELECT setseed(0.5)",
        "SELECT pg_switch_wal()",
        "SELECT pg_create_restore_point('x')",
        "SELECT pg_create_logical_replication_slot('s', 'test_decoding')",
        "SELECT pg_promote()",
    ],
}

SELECT_SHAPED = lambda s: s.lstrip().upper().startswith(("SELECT", "WITH"))  # noqa: E731


def quote_functions(sql):
    """pg_catalog-qualified, double-quoted form of well-known function calls."""
    out = sql
    for name in ("pg_sleep", "nextval", "setval", "set_config", "current_setting", "pg_advisory_lock",
                 "pg_notify", "pg_read_file", "lo_import", "query_to_xml", "pg_terminate_backend"):
        out = out.replace(f"{name}(", f'"pg_catalog"."{name}"(')
    return out


def variants(category, sql):
    yield sql
    yield "/* the user asked for this */ " + sql
    yield sql.lower() if "{" not in sql and "'" not in sql else "\n  " + sql + "\n"
    if category in ("multi_statement", "dml", "ddl"):
        yield sql + " -- totally harmless"
    if SELECT_SHAPED(sql) and category not in ("multi_statement", "select_into", "for_update", "modifying_cte"):
        yield f"SELECT * FROM ({sql}) AS sub"
        yield f"WITH q AS ({sql}) SELECT * FROM q"
    quoted = quote_functions(sql)
    if quoted != sql:
        yield quoted


def main():
    seen = set()
    for category, statements in BASE.items():
        for base in statements:
            for sql in variants(category, base):
                if sql in seen:
                    continue
                seen.add(sql)
                print(json.dumps({"category": category, "sql": sql}))


if __name__ == "__main__":
    main()
