"""Fixtures for sqlchat's end-to-end tests: a private PostgreSQL cluster, the fake gateway, databases
loaded from SQL files, and connections as any role.

The extension must already be installed into the system PostgreSQL (`cargo pgrx install`); tests
that need it skip when CREATE EXTENSION cannot find it. Run: `python3 -m pytest tests/e2e -q`.
Environment:
    SQLCHAT_EVAL_DIR     the public eval data (default <repo>/../shared/eval)
    SQLCHAT_RESULTS_DIR  where measured figures are written (default ./results)
    SQLCHAT_E2E_PORTS    LOW-HIGH port range for the private cluster (default: any free port)
    PGBIN                PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
"""

import pytest

import harness
from psycopg import sql

@pytest.fixture(scope="session")
def gateway():
    """The fake gateway process for the whole session."""
    gw = harness.Gateway()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def gw(gateway):
    """The fake gateway with no rules and no recorded requests."""
    gateway.reset()
    return gateway


@pytest.fixture(scope="session")
def cluster():
    """A private cluster for the session, stopped and removed at the end whatever happens."""
    try:
        c = harness.Cluster()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def configured(cluster, gateway):
    """The cluster's sqlchat settings point at the fake gateway."""
    cluster.set_system({
        "sqlchat.api_base": gateway.api_base,
        "sqlchat.api_key": harness.API_KEY,
        "sqlchat.model": harness.MODEL,
    })
    return cluster


@pytest.fixture(scope="session")
def make_db(configured):
    """make_db(name, sql_files=(), extension=True): a database loaded from SQL files, created once
    per session; the test skips when the sqlchat extension is not installed."""
    made = {}

    def make(name, sql_files=(), extension=True):
        key = (name, tuple(str(p) for p in sql_files), extension)
        if key not in made:
            try:
                made[key] = configured.create_database(name, sql_files, extension)
            except harness.ExtensionMissing as e:
                made[key] = e
        if isinstance(made[key], harness.ExtensionMissing):
            pytest.skip(f"the sqlchat extension is not installed in the system PostgreSQL: {made[key]}")
        return made[key]

    return make


@pytest.fixture(scope="session")
def make_role(cluster):
    """make_role(name, superuser=False): a login role (created once), granted CONNECT on new databases
    through PUBLIC as PostgreSQL does by default."""
    made = set()

    def make(name, superuser=False):
        if name not in made:
            with cluster.connect() as conn:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
                if not exists:
                    conn.execute(
                        sql.SQL("CREATE ROLE {} LOGIN {}").format(
                            sql.Identifier(name), sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER")
                        )
                    )
            made.add(name)
        return name

    return make


@pytest.fixture
def connect(cluster):
    """connect(dbname, user=None, autocommit=True): a psycopg connection, closed after the test."""
    opened = []

    def open_connection(dbname="postgres", user=None, autocommit=True, **kwargs):
        conn = cluster.connect(dbname, user=user, autocommit=autocommit, **kwargs)
        opened.append(conn)
        return conn

    try:
        yield open_connection
    finally:
        for conn in opened:
            conn.close()


@pytest.fixture(scope="session")
def eval_dir():
    path = harness.eval_dir()
    if path is None:
        pytest.skip("eval data not found: set SQLCHAT_EVAL_DIR or place it at <repo>/../shared/eval")
    return path
