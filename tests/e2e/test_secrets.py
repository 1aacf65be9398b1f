"""The gateway key in every channel a role can read, probed as a role that never called sqlchat in
its session: SHOW, SHOW ALL, current_setting, pg_settings, pg_file_settings and the function behind
it, pg_db_role_setting (ALTER ROLE/DATABASE ... SET), the configuration files, pg_stat_activity,
errors of a failing ask, and sqlchat's own tables. With the library preloaded (the README's
installation) none shows the key; without it PostgreSQL shows a key set in the configuration to
anyone, so sqlchat refuses to use such a key. Figures go to results/secrets.json."""

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

import harness

AUTH_HEADER = "Token hdr-secret-9876543210fedcba"
SHOP_SQL = harness.REPO / "demo" / "shop.sql"


def probe(conn, statement):
    """The text a statement gives this role: its rows, or its error."""
    try:
        return str(conn.execute(statement).fetchall())
    except psycopg.Error as e:
        conn.rollback() if not conn.autocommit else None
        return f"ERROR {e.sqlstate}: {e}"


CHANNELS = [
    "SHOW sqlchat.api_key",
    "SHOW sqlchat.auth_header",
    "SHOW sqlchat.api_key_file",
    "SHOW ALL",
    "SELECT current_setting('sqlchat.api_key')",
    "SELECT current_setting('sqlchat.api_key', true)",
    "SELECT current_setting('sqlchat.auth_header', true)",
    "SELECT * FROM pg_settings",
    "SELECT * FROM pg_settings WHERE name LIKE 'sqlchat.%'",
    "SELECT * FROM pg_file_settings",
    "SELECT * FROM pg_show_all_file_settings()",
    "SELECT * FROM pg_db_role_setting",
    "SELECT pg_read_file('postgresql.auto.conf')",
    "SELECT pg_read_file('postgresql.conf')",
    "SELECT query FROM pg_stat_activity",
    "SELECT * FROM sqlchat.cache",
    "SELECT * FROM sqlchat.turn",
]


def leaks(texts, secrets):
    found = []
    for text in texts:
        for secret in secrets:
            for fragment in (secret, secret[len(secret) // 2:], secret[: len(secret) // 2]):
                if fragment and fragment in text:
                    found.append((fragment, text[max(0, text.find(fragment) - 60): text.find(fragment) + 60]))
    return found


def test_no_channel_shows_the_key_to_a_role_that_never_loaded_sqlchat(configured, make_db, make_role, gateway):
    cluster = configured
    assert cluster.preloaded, "the e2e cluster preloads sqlchat as the README installs it"
    db = make_db("secrets", [SHOP_SQL])
    cluster.set_system({"sqlchat.auth_header": AUTH_HEADER})
    role = make_role("sec_probe")
    try:
        # ALTER ROLE/DATABASE ... SET would store a key where every role can read it: refused, for
        # superusers too, because the settings exist from the server's start.
        with cluster.connect(db) as admin:
            admin.execute("GRANT USAGE ON SCHEMA shop TO sec_probe")
            admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA shop TO sec_probe")
            for target in ("ROLE sec_probe", "DATABASE secrets"):
                with pytest.raises(psycopg.Error) as refused:
                    admin.execute(f"ALTER {target} SET sqlchat.api_key = 'stored-where-all-can-read'")
                assert refused.value.sqlstate == "55P02", refused.value
        texts = []
        with psycopg.connect(cluster.conninfo(db, user=role), autocommit=True) as conn:
            # The first command of the session, before anything of sqlchat ran in it.
            texts.append(probe(conn, CHANNELS[0]))
            texts += [probe(conn, c) for c in CHANNELS[1:]]
            # A failing ask whose gateway echoes the key.
            gateway.reset()
            gateway.rule(purpose="generate_sql", status=401,
                         body={"error": {"message": f"bad key {harness.API_KEY}; header {AUTH_HEADER}"}})
            texts.append(probe(conn, "SELECT sqlchat.ask('how many orders are there?')"))
            with pytest.raises(psycopg.Error) as e:
                conn.execute("SELECT sqlchat.ask('how many orders are there?')")
            texts += [e.value.diag.message_detail or "", e.value.diag.message_hint or ""]
        sent = [r["authorization"] for r in gateway.requests()]
        assert sent and sent[0] == AUTH_HEADER, "the header was used, so it was configured"
        log = "\n".join(line for line in cluster.server_log().splitlines()
                        if 'parameter "sqlchat.' not in line)  # PostgreSQL's own reload line, superusers only
        texts.append(log)
        found = leaks(texts, [harness.API_KEY, AUTH_HEADER])
        harness.write_results("secrets", {
            "channels_probed": len(CHANNELS) + 4,
            "channels": CHANNELS + ["ask error message", "ask error detail", "ask error hint", "server log (sqlchat's lines)"],
            "leaks": len(found),
        })
        print(f"\nsecrets: {len(CHANNELS) + 4} channels probed as a role that never loaded sqlchat, {len(found)} leaks")
        assert found == []
    finally:
        cluster.set_system({"sqlchat.auth_header": None})


def test_without_preloading_a_key_in_a_setting_is_refused(gateway):
    """Not preloaded, PostgreSQL shows a key set in postgresql.conf to any role until sqlchat is
    loaded in its session: sqlchat refuses to use such a key (55000, with the fix in the hint); a
    key from sqlchat.api_key_file still works."""
    if not harness.library_installed():
        pytest.skip("sqlchat is not installed")
    cluster = harness.Cluster(preload=False)
    key_dir = Path(tempfile.mkdtemp(prefix="sqlchat-key-"))
    try:
        assert not cluster.preloaded
        cluster.set_system({"sqlchat.api_base": gateway.api_base, "sqlchat.api_key": harness.API_KEY,
                            "sqlchat.model": harness.MODEL})
        db = cluster.create_database("plain_load", [SHOP_SQL])
        with cluster.connect(db) as admin:
            admin.execute("CREATE ROLE np_probe LOGIN")
            admin.execute("GRANT USAGE ON SCHEMA shop TO np_probe")
            admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA shop TO np_probe")
        with psycopg.connect(cluster.conninfo(db, user="np_probe"), autocommit=True) as conn:
            # PostgreSQL's placeholder: this is why the key must not stay usable.
            assert conn.execute("SHOW sqlchat.api_key").fetchone()[0] == harness.API_KEY
            gateway.reset()
            gateway.rule(purpose="generate_sql", content="SELECT count(*) AS n FROM shop.orders")
            with pytest.raises(psycopg.Error) as refused:
                conn.execute("SELECT sqlchat.ask('how many orders?')")
            assert refused.value.sqlstate == "55000", refused.value
            assert "shared_preload_libraries" in refused.value.diag.message_hint
            assert harness.API_KEY not in str(refused.value)
            assert gateway.requests() == [], "nothing was sent with the exposed key"
        with cluster.connect(db) as admin:
            # Not preloaded, PostgreSQL accepts this placeholder: check_setup must find it.
            admin.execute("ALTER ROLE np_probe SET sqlchat.api_key = 'in-role-settings-0123456789'")
            found = admin.execute("SELECT severity, problem FROM sqlchat.check_setup()").fetchall()
        with cluster.connect(db) as fresh:
            # Where sqlchat is loaded the setting is real (SIGHUP) and can no longer be reset per role.
            fresh.execute("ALTER ROLE np_probe RESET sqlchat.api_key")
        problems = "\n".join(f"{s}: {p}" for s, p in found)
        assert found[0][0] == "error", problems
        assert "not in shared_preload_libraries" in problems
        assert "ROLE np_probe" in problems
        assert "sqlchat.api_key holds the key" in problems
        assert "in-role-settings" not in problems and harness.API_KEY not in problems
        os.chmod(key_dir, 0o755)
        key_file = key_dir / "key"
        key_file.write_text("file-key-for-unpreloaded-0123\n")
        os.chmod(key_file, 0o644)
        cluster.set_system({"sqlchat.api_key": None, "sqlchat.api_key_file": str(key_file)})
        with psycopg.connect(cluster.conninfo(db, user="np_probe"), autocommit=True) as conn:
            n = conn.execute("SELECT rows FROM sqlchat.ask_full('how many orders?')").fetchone()[0]
            assert n and "n" in n[0]
            assert gateway.requests()[-1]["authorization"] == "Bearer file-key-for-unpreloaded-0123"
    finally:
        cluster.stop()
        shutil.rmtree(key_dir, ignore_errors=True)


def test_check_setup_reports_what_needs_attention(configured, make_db, gateway):
    cluster = configured
    db = make_db("secrets_setup", [SHOP_SQL])
    with cluster.connect(db) as conn:
        found = conn.execute("SELECT severity, problem, fix FROM sqlchat.check_setup()").fetchall()
        problems = "\n".join(f"{s}: {p}" for s, p, _ in found)
        # The tests set the key with ALTER SYSTEM: the server log records it on reload.
        assert any(s == "warning" and "postgresql.auto.conf" in p and "server log" in p for s, p, _ in found), problems
        assert not any(s == "error" for s, _, _ in found), problems
        assert all(f for s, _, f in found if s != "ok"), "every finding has a fix"
        assert harness.API_KEY not in problems
        conn.execute("SET sqlchat.model = 'no-such-model'")
        found = conn.execute("SELECT severity, problem FROM sqlchat.check_setup()").fetchall()
        assert any(s == "warning" and "no-such-model" in p for s, p in found), found
        conn.execute("RESET sqlchat.model")
        conn.execute(f"SET sqlchat.api_base = 'http://127.0.0.1:{harness.free_port()}/v1'")
        found = conn.execute("SELECT severity, problem FROM sqlchat.check_setup()").fetchall()
        assert found[0][0] == "error" and "did not answer" in found[0][1], found
        conn.execute("SET sqlchat.api_base = 'http://192.0.2.1/v1'")
        found = conn.execute("SELECT severity, problem FROM sqlchat.check_setup()").fetchall()
        assert found[0][0] == "error" and "https" in found[0][1], found
