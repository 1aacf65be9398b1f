"""Upgrades between releases: every released version (its install script kept in sql/released/),
filled with memory, cache and settings, then `ALTER EXTENSION sqlchat UPDATE`, must end up identical
to a fresh install of the current version (functions and their attributes, types, tables, columns,
constraints, indexes, sequences, comments, grants, extension membership, pg_extension_config_dump
registrations) with its data kept. A change to the extension's SQL objects without its upgrade step
fails here, and so does a change to a released version's objects without a version bump."""

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from psycopg import sql

import harness

RELEASED = harness.REPO / "sql" / "released"

# Rows each released version's tables are filled with before the upgrade, in that version's columns.
# 'upgrade_gone' names no role (a role dropped before the upgrade): its rows may be removed.
# A release adds its entry here when its install script is kept in sql/released/.
FILL = {
    "0.1.0": """
        INSERT INTO sqlchat.turn (role_name, session_id, question, sql, answer, created_at) VALUES
            ('upgrade_alice', 's1', 'how many orders?', 'SELECT count(*) FROM orders', 'There are 3 orders.',
             '2025-01-02 03:04:05+00'),
            ('upgrade_alice', 's1', 'and customers?', 'SELECT count(*) FROM customers', 'There are 2.',
             '2025-01-02 03:05:00+00'),
            ('upgrade_bob', 's1', 'top city', NULL, 'I cannot tell.', '2025-02-01 00:00:00+00'),
            ('upgrade_gone', 'old', 'anything', NULL, NULL, '2024-12-31 23:59:59+00');
        INSERT INTO sqlchat.session_summary (role_name, session_id, summary, through_turn, updated_at) VALUES
            ('upgrade_alice', 's1', 'Alice counted orders.', 1, '2025-01-02 03:06:00+00'),
            ('upgrade_gone', 'old', 'Gone asked about anything.', 4, '2025-01-01 00:00:00+00');
        INSERT INTO sqlchat.cache (key, role_name, model, sql, created_at, expires_at) VALUES
            ('k-alice', 'upgrade_alice', 'fake-model', 'SELECT 1', '2025-01-02 00:00:00+00', '2999-01-01 00:00:00+00'),
            ('k-bob', 'upgrade_bob', 'fake-model', 'SELECT 2', '2025-01-02 00:00:00+00', '2999-01-01 00:00:00+00'),
            ('k-gone', 'upgrade_gone', 'fake-model', 'SELECT 3', '2025-01-02 00:00:00+00', '2999-01-01 00:00:00+00');
    """,
}
ROLES = ("upgrade_alice", "upgrade_bob")

# Everything the extension creates, one line per object or property, grouped by kind. Objects are
# named, never numbered by oid, so two databases compare line by line.
DESCRIBE = r"""
WITH ext AS (SELECT e.oid, e.extnamespace FROM pg_extension e WHERE e.extname = 'sqlchat'),
member AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
rel AS (SELECT c.* FROM pg_class c, ext WHERE c.relnamespace = ext.extnamespace)
SELECT 'extension', format('schema %s relocatable %s', e.extnamespace::regnamespace, e.extrelocatable)
FROM pg_extension e WHERE e.extname = 'sqlchat'
UNION ALL
SELECT 'schema', format('%s acl %s comment %s', n.nspname, n.nspacl, obj_description(n.oid, 'pg_namespace'))
FROM pg_namespace n, ext WHERE n.oid = ext.extnamespace
UNION ALL
SELECT 'member', pg_describe_object(m.classid, m.objid, 0) FROM member m
UNION ALL
SELECT 'function', format(
    '%s returns %s | args %s | kind %s lang %s volatile %s strict %s secdef %s leakproof %s parallel %s '
    'cost %s rows %s symbol %s library %s config %s acl %s comment %s',
    p.oid::regprocedure, pg_get_function_result(p.oid), pg_get_function_arguments(p.oid), p.prokind,
    l.lanname, p.provolatile, p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel, p.procost,
    p.prorows, p.prosrc, p.probin, p.proconfig, p.proacl, obj_description(p.oid, 'pg_proc'))
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang, ext WHERE p.pronamespace = ext.extnamespace
UNION ALL
SELECT 'type', format('%s type %s acl %s comment %s', t.oid::regtype, t.typtype, t.typacl,
    obj_description(t.oid, 'pg_type'))
FROM pg_type t, ext WHERE t.typnamespace = ext.extnamespace
UNION ALL
SELECT 'relation', format('%s kind %s persistence %s options %s acl %s rls %s/%s comment %s',
    r.oid::regclass, r.relkind, r.relpersistence, r.reloptions, r.relacl, r.relrowsecurity,
    r.relforcerowsecurity, obj_description(r.oid, 'pg_class'))
FROM rel r
UNION ALL
SELECT 'column', format('%s.%s #%s %s collation %s not null %s default %s identity %s generated %s acl %s comment %s',
    r.oid::regclass, a.attname,
    row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum),
    format_type(a.atttypid, a.atttypmod), a.attcollation::regcollation, a.attnotnull,
    pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated, a.attacl,
    col_description(r.oid, a.attnum))
FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
UNION ALL
SELECT 'constraint', format('%s %s: %s', r.oid::regclass, c.conname, pg_get_constraintdef(c.oid))
FROM rel r JOIN pg_constraint c ON c.conrelid = r.oid
UNION ALL
SELECT 'constraint', format('%s %s: %s', t.oid::regtype, c.conname, pg_get_constraintdef(c.oid))
FROM pg_type t JOIN pg_constraint c ON c.contypid = t.oid, ext WHERE t.typnamespace = ext.extnamespace
UNION ALL
SELECT 'index', pg_get_indexdef(r.oid) FROM rel r WHERE r.relkind IN ('i', 'I')
UNION ALL
SELECT 'sequence', format('%s %s start %s increment %s min %s max %s cache %s cycle %s owned by %s',
    r.oid::regclass, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
    s.seqcache, s.seqcycle, owned.owner)
FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
LEFT JOIN LATERAL (
    SELECT pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) AS owner FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid AND d.deptype IN ('a', 'i')
      AND d.refclassid = 'pg_class'::regclass
) owned ON true
UNION ALL
SELECT 'trigger', pg_get_triggerdef(tg.oid) FROM rel r JOIN pg_trigger tg ON tg.tgrelid = r.oid AND NOT tg.tgisinternal
UNION ALL
SELECT 'policy', format('%s %s %s %s using %s check %s', r.oid::regclass, p.polname, p.polcmd, p.polroles::regrole[],
    pg_get_expr(p.polqual, r.oid), pg_get_expr(p.polwithcheck, r.oid))
FROM rel r JOIN pg_policy p ON p.polrelid = r.oid
UNION ALL
SELECT 'config_dump', format('%s where %s', c.cfg::regclass, coalesce(e.extcondition[c.i], '(none)'))
FROM pg_extension e, unnest(e.extconfig) WITH ORDINALITY c(cfg, i) WHERE e.extname = 'sqlchat'
UNION ALL
SELECT 'init_privs', format('%s %s %s', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), ip.privtype, ip.initprivs)
FROM pg_init_privs ip JOIN member m ON m.objid = ip.objoid AND m.classid = ip.classoid
"""


def released_versions():
    return sorted((p.name[len("sqlchat--") : -len(".sql")] for p in RELEASED.glob("sqlchat--*.sql")), key=version_key)


def version_key(v):
    return tuple(int(x) for x in re.findall(r"\d+", v))


def current_version():
    return tomllib.loads((harness.REPO / "Cargo.toml").read_text())["package"]["version"]


def extension_dir():
    run = subprocess.run([str(harness.PGBIN / "pg_config"), "--sharedir"], capture_output=True, text=True)
    return Path(run.stdout.strip(), "extension") if run.returncode == 0 else None


def describe(conn):
    """{kind: sorted lines} of everything the extension created in this database."""
    out = {}
    for kind, line in conn.execute(DESCRIBE).fetchall():
        out.setdefault(kind, []).append(line)
    return {k: sorted(v) for k, v in out.items()}


def differences(fresh, upgraded):
    diff = []
    for kind in sorted(set(fresh) | set(upgraded)):
        a, b = set(fresh.get(kind, [])), set(upgraded.get(kind, []))
        diff += [f"only in a fresh install: {kind}: {x}" for x in sorted(a - b)]
        diff += [f"only after the upgrade:  {kind}: {x}" for x in sorted(b - a)]
    return diff


def table_rows(conn):
    """{table: rows as JSON objects} of the extension's tables."""
    tables = [r[0] for r in conn.execute(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'sqlchat' AND c.relkind = 'r' ORDER BY 1"
    ).fetchall()]
    return {
        t: [r[0] for r in conn.execute(sql.SQL("SELECT to_jsonb(x) FROM {} x").format(sql.SQL(t))).fetchall()]
        for t in tables
    }


def keyed(rows):
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


@pytest.fixture(scope="module")
def installed_release_scripts():
    """Puts each kept release script into the server's extension directory for the module's tests
    (over any script an earlier build of that version left there), and puts back what was there."""
    directory = extension_dir()
    if directory is None or not (directory / "sqlchat.control").exists():
        pytest.skip("the sqlchat extension is not installed")
    replaced = {}
    try:
        for version in released_versions():
            if version == current_version():
                continue
            target = directory / f"sqlchat--{version}.sql"
            previous = target.read_text() if target.exists() else None
            try:
                target.write_text((RELEASED / target.name).read_text())
            except PermissionError:
                pytest.skip(f"cannot write {directory} (run as its owner or root)")
            replaced[target] = previous
        yield directory
    finally:
        for path, previous in replaced.items():
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(previous)


def test_every_released_version_has_rows_to_fill():
    assert released_versions(), "sql/released/ keeps the install script of every released version"
    missing = [v for v in released_versions() if v not in FILL]
    assert not missing, f"add FILL rows for the released versions {missing}"
    newest = released_versions()[-1]
    assert version_key(newest) <= version_key(current_version()), (
        f"Cargo.toml's version {current_version()} is older than the released {newest}"
    )


def test_the_current_version_if_released_is_unchanged(installed_release_scripts):
    """Once a version is released its objects are frozen: a change needs a new version and a step."""
    version = current_version()
    kept = RELEASED / f"sqlchat--{version}.sql"
    if not kept.exists():
        pytest.skip(f"{version} is not released yet (no sql/released/sqlchat--{version}.sql)")

    def statements(text):
        return re.sub(r"\s+", " ", re.sub(r"--[^\n]*|/\*.*?\*/", " ", text, flags=re.S)).strip()

    built = (installed_release_scripts / f"sqlchat--{version}.sql").read_text()
    assert statements(built) == statements(kept.read_text()), (
        f"the install script differs from released {version}: bump the version in Cargo.toml and add "
        f"sql/sqlchat--{version}--<next>.sql"
    )


@pytest.mark.parametrize("version", [v for v in released_versions() if v != current_version()])
def test_upgrade_equals_a_fresh_install_and_keeps_the_data(version, installed_release_scripts, configured, make_role,
                                                           connect):
    target = current_version()
    for role in ROLES:
        make_role(role)
    with connect() as admin:
        for db in ("upgrade_fresh", "upgrade_old"):
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    fresh = connect("upgrade_fresh")
    fresh.execute("CREATE EXTENSION sqlchat")
    assert fresh.execute("SELECT extversion FROM pg_extension WHERE extname = 'sqlchat'").fetchone()[0] == target

    old = connect("upgrade_old")
    old.execute(sql.SQL("CREATE EXTENSION sqlchat VERSION {}").format(sql.Literal(version)))
    old.execute(FILL[version])
    old.execute("ALTER DATABASE upgrade_old SET sqlchat.max_rows = 7")
    before = table_rows(old)
    notices = []
    old.add_notice_handler(lambda d: notices.append(d.message_primary))
    old.execute("ALTER EXTENSION sqlchat UPDATE")
    assert old.execute("SELECT extversion FROM pg_extension WHERE extname = 'sqlchat'").fetchone()[0] == target

    fresh_objects, upgraded_objects = describe(fresh), describe(old)
    diff = differences(fresh_objects, upgraded_objects)
    assert not diff, f"{version} -> {target} differs from a fresh install of {target}:\n" + "\n".join(diff)

    # Every row is kept with its values, except rows of roles that no longer exist.
    after = table_rows(old)
    roles = {r[0]: r[1] for r in old.execute("SELECT rolname::text, oid::bigint FROM pg_roles").fetchall()}
    kept = removed = 0
    for table, rows in before.items():
        assert table in after, f"{table} is gone after the upgrade"
        expected = [r for r in rows if "role_name" not in r or r["role_name"] in roles]
        removed += len(rows) - len(expected)
        columns = set(rows[0]) if rows else set()
        assert keyed({k: v for k, v in r.items() if k in columns} for r in after[table]) == keyed(expected), table
        for r in after[table]:
            if "role_oid" in r and "role_name" in r:
                assert int(r["role_oid"]) == roles[r["role_name"]], f"{table}: role_oid of {r['role_name']}"
        kept += len(expected)
    if removed:
        assert any("removed the rows of roles dropped" in n for n in notices), notices
    setting = old.execute(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE d.datname = 'upgrade_old'"
    ).fetchone()[0]
    assert "sqlchat.max_rows=7" in setting

    # The upgraded extension works on the kept rows: the owner of the turns reads them back.
    alice = connect("upgrade_old", user="upgrade_alice")
    history = alice.execute("SELECT question FROM sqlchat.history('s1') ORDER BY turn").fetchall()
    assert [h[0] for h in history] == ["how many orders?", "and customers?"]
    assert alice.execute("SELECT sqlchat.forget('s1')").fetchone()[0] == 2

    harness.write_results(f"upgrade-{version}", {
        "from": version,
        "to": target,
        "server": old.execute("SHOW server_version").fetchone()[0],
        "objects_compared": {k: len(v) for k, v in fresh_objects.items()},
        "object_lines_compared": sum(len(v) for v in fresh_objects.values()),
        "rows_kept": kept,
        "rows_of_dropped_roles_removed": removed,
        "notices": notices,
    })
