"""The catalog snapshot a new backend loads instead of introspecting: it is used only while it is
current, every committed change of the schema makes new backends see the new schema, and a role
never sees through it what it may not read."""

import pytest

DB = "snapshot_e2e"


@pytest.fixture
def db(make_db, connect):
    name = make_db(DB)
    conn = connect(name)
    conn.execute("DROP SCHEMA IF EXISTS snap CASCADE")
    conn.execute(
        """
        CREATE SCHEMA snap;
        CREATE TABLE snap.widgets (id int PRIMARY KEY, name text NOT NULL, colour text NOT NULL);
        INSERT INTO snap.widgets VALUES (1, 'a', 'red'), (2, 'b', 'blue'), (3, 'c', 'red');
        CREATE TABLE snap.vault (id int PRIMARY KEY, secret_code text);
        """
    )
    return name


def offline_sql(connect, db, question, user=None):
    conn = connect(db, user=user)
    conn.execute("SET sqlchat.engine = 'offline'")
    return conn.execute("SELECT sql FROM sqlchat.ask_full(%s)", (question,)).fetchone()[0]


def snapshot_files(cluster):
    return sorted(p.name for p in (cluster.dir / "data" / "sqlchat").glob("catalog-*.bin"))


def test_new_backends_see_committed_schema_changes(db, connect, cluster, gw):
    assert "snap.widgets" in offline_sql(connect, db, "How many widgets are there?")
    assert snapshot_files(cluster), "the first backend leaves a snapshot"
    # Each question below runs in a new backend.
    assert "snap.widgets" in offline_sql(connect, db, "How many widgets are there?")
    connect(db).execute("ALTER TABLE snap.widgets RENAME TO gadgets")
    assert "snap.gadgets" in offline_sql(connect, db, "How many gadgets are there?")
    assert offline_sql(connect, db, "How many widgets are there?") is None
    connect(db).execute("ALTER TABLE snap.gadgets RENAME COLUMN colour TO shade")
    assert "shade" in offline_sql(connect, db, "How many gadgets are there per shade?")
    connect(db).execute("COMMENT ON COLUMN snap.gadgets.shade IS 'The paint of the gadget'")
    gw.rule(purpose="generate_sql", content="SELECT 1")
    connect(db).execute("SELECT sqlchat.generate_sql('How many gadgets are there per shade?')")
    prompt = " ".join(m["content"] for m in gw.requests("generate_sql")[-1]["messages"])
    assert "The paint of the gadget" in prompt


def test_a_snapshot_shows_no_role_what_it_may_not_read(db, connect, make_role):
    role = make_role("snapshot_reader")
    admin = connect(db)
    admin.execute("GRANT USAGE ON SCHEMA snap TO snapshot_reader; GRANT SELECT ON snap.widgets TO snapshot_reader")
    # A superuser's backend leaves the snapshot; the reader's new backend loads it.
    assert "snap.vault" in offline_sql(connect, db, "How many vaults are there?")
    assert offline_sql(connect, db, "How many vaults are there?", user=role) is None
    assert "snap.widgets" in offline_sql(connect, db, "How many widgets are there?", user=role)
    reader = connect(db, user=role)
    reader.execute("SET sqlchat.engine = 'offline'")
    answer = reader.execute("SELECT answer FROM sqlchat.ask_full('How many secret codes are there?')").fetchone()[0]
    assert "vault" not in answer.lower(), answer
