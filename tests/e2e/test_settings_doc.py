"""docs/settings.md matches the settings the extension defines: every `sqlchat.*` name in
src/gucs.rs has a row, and each row's default (as SHOW prints it), minimum, maximum, unit and who may
set it are what the installed library reports."""

import re

import psycopg
import pytest

import harness

DOC = harness.REPO / "docs" / "settings.md"
GUCS = harness.REPO / "src" / "gucs.rs"
WHO = {"user": "anyone", "superuser": "superuser", "sighup": "server configuration only",
       "postmaster": "server start"}


def doc_rows():
    """setting name -> its cells, from the table of docs/settings.md."""
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"\| `(sqlchat\.\w+)` \|", line)
        if m:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[m.group(1)] = dict(zip(("name", "default", "min", "max", "unit", "who", "meaning"), cells))
    return rows


def defined_names():
    return sorted(set(re.findall(r'c"(sqlchat\.\w+)"', GUCS.read_text())))


@pytest.fixture(scope="module")
def session(cluster):
    try:
        cluster.create_database("e2e_settings_doc", extension=True)
    except harness.ExtensionMissing as e:
        pytest.skip(f"the sqlchat extension is not installed: {e}")
    with cluster.connect("e2e_settings_doc") as conn:
        conn.execute("LOAD 'sqlchat'")
        yield conn


# PostgreSQL's time and memory units, largest first: SHOW prints a value in the largest that divides it.
TIME_UNITS = {"ms": [("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000), ("ms", 1)],
              "s": [("d", 86_400), ("h", 3600), ("min", 60), ("s", 1)],
              "kB": [("TB", 1024 ** 3), ("GB", 1024 ** 2), ("MB", 1024), ("kB", 1)]}


def shown_as_postgres_would(value, unit):
    """SHOW's text for `value` (a number followed by its base unit) of a setting no session can set."""
    n = int(value[: len(value) - len(unit)]) if unit else int(value)
    if n == 0 or not unit:
        return str(n)
    return next(f"{n // factor}{name}" for name, factor in TIME_UNITS[unit] if n % factor == 0)


def shown(conn, name, value=None):
    """What SHOW prints for `name`, set to `value` (in its base unit) in this session when given."""
    if value is None:
        return conn.execute(f"SHOW {name}").fetchone()[0]
    try:
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    except psycopg.errors.CantChangeRuntimeParam:
        unit = conn.execute("SELECT unit FROM pg_settings WHERE name = %s", (name,)).fetchone()[0]
        return shown_as_postgres_would(value, unit or "")
    text = conn.execute(f"SHOW {name}").fetchone()[0]
    conn.execute(f"RESET {name}")
    return text


def code(text):
    return "(empty)" if text == "" else f"`{text}`"


def test_every_setting_is_documented():
    rows = doc_rows()
    missing = [n for n in defined_names() if n not in rows]
    extra = [n for n in rows if n not in defined_names()]
    assert not missing, f"settings defined in src/gucs.rs but not in docs/settings.md: {missing}"
    assert not extra, f"settings in docs/settings.md that src/gucs.rs does not define: {extra}"


def test_documented_values_are_the_real_ones(session):
    rows = doc_rows()
    listed = {r[0]: r for r in session.execute(
        "SELECT name, context, unit, boot_val, min_val, max_val, vartype, enumvals FROM pg_settings"
        " WHERE name LIKE 'sqlchat.%'"
    ).fetchall()}
    wrong = []
    for name in defined_names():
        doc = rows[name]
        # The built-in default, whatever the cluster's configuration says now.
        expect = {"default": "(empty)"}
        if name in listed:
            _, context, unit, boot, lo, hi, vartype, enumvals = listed[name]
            if boot is not None and vartype != "string":
                expect["default"] = code(shown(session, name, boot + (unit or "")))
            elif boot:
                expect["default"] = code(boot)
            expect["who"] = WHO[context]
            expect["unit"] = unit or ""
            expect["min"] = code(shown(session, name, lo + (unit or ""))) if lo is not None else ""
            expect["max"] = code(shown(session, name, hi + (unit or ""))) if hi is not None else ""
            for value in enumvals or []:
                if f"`{value}`" not in doc["meaning"]:
                    wrong.append(f"{name}: value `{value}` not described")
        else:
            # Hidden from pg_settings (the secrets, empty by default): only the configuration sets them.
            with pytest.raises(psycopg.errors.CantChangeRuntimeParam):
                session.execute(f"SET {name} = 'x'")
            expect["who"] = "server configuration only"
        for column, value in expect.items():
            if doc[column] != value:
                wrong.append(f"{name}: {column} is {doc[column]!r} in the docs, {value!r} in the extension")
    assert not wrong, "docs/settings.md differs from the extension:\n" + "\n".join(wrong)
