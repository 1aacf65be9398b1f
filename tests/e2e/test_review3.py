"""Security review of background jobs, error masking and quotas (third review): each test
reproduces one finding and fails until it is fixed. A preloaded cluster of this module's own."""

import itertools
import os
import re
import time

import psycopg
import pytest
from psycopg import sql

from test_log import COUNT, GEN, LogCluster

ROLES = itertools.count(1)
STAFF = """
CREATE TABLE staff (id int PRIMARY KEY, nickname text NOT NULL);
INSERT INTO staff VALUES (1, 'tiger');
"""


@pytest.fixture(scope="module")
def rc(gateway):
    c = LogCluster([])
    try:
        c.load_shop("r3db", gateway)
        with c.connect("r3db") as admin:
            admin.execute(STAFF)
        yield c
    finally:
        c.stop()


@pytest.fixture
def conns(rc):
    opened = []

    def open_connection(user=None, dbname="r3db", autocommit=True):
        conn = rc.connect(dbname, user=user, autocommit=autocommit)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        conn.close()


@pytest.fixture
def role(rc, conns):
    name = f"r3_role_{next(ROLES)}_{os.getpid()}"
    admin = conns()
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    admin.execute(sql.SQL("GRANT SELECT ON customers, staff TO {}").format(sql.Identifier(name)))
    return name


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_a_private_value_leaks_one_quoted_character_at_a_time(rc, gw, role, conns):
    """mask_row_values keeps a double-quoted part when it occurs anywhere in the schema text
    (`names.contains(quoted)`, a substring test), not when it is a name of the schema. Any one
    character (and most short runs) occurs somewhere in the schema, so a hostile model reads a
    private value back one character per repair: `substr(col, k, 1)::int` fails with
    `invalid input syntax for type integer: "t"`, kept as it is in the repair request."""
    admin = conns()
    admin.execute("SELECT sqlchat.set_private('staff', 'nickname')")
    try:
        conn = conns(user=role)
        conn.execute("SET sqlchat.max_attempts = 2")
        conn.execute("SET sqlchat.enable_cache = off")
        gw.rule(purpose=GEN, content="SELECT substr(nickname, 1, 1)::int AS n FROM staff")
        gw.rule(purpose="repair", content="SELECT substr(nickname, 2, 1)::int AS n FROM staff")
        gw.clear_requests()
        with pytest.raises(psycopg.Error) as failed:
            conn.execute("SELECT sqlchat.ask('the staff nickname as a number')")
        repair = str(gw.requests("repair"))
    finally:
        admin.execute("SELECT sqlchat.set_private('staff', 'nickname', false)")
    leaked = re.findall(r'type integer: \\*"(\w)\\*"', repair)
    assert not leaked, f"private characters {leaked} went to the model in the repair request"
    # The final error (and so sqlchat.log.message) keeps the second one.
    assert 'integer: "i"' not in str(failed.value), str(failed.value)
