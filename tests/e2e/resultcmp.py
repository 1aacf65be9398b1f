"""Execution-match scoring of query results, as sql-eval does it.

A candidate result matches a gold result when, for some one-to-one choice of candidate columns for
the gold columns (names ignored, extra candidate columns allowed), the projected rows equal the gold
rows as a multiset, or as a sequence when the gold query orders its rows. Numbers compare with a
relative tolerance; dates and timestamps compare whatever their text form (`T` or space, `+00` or
`+00:00`, trailing zeros of the fraction).

Values are taken in the form sqlchat returns them in `ask_full(...).rows`: numbers and booleans as
JSON numbers and booleans, json/jsonb embedded, everything else as PostgreSQL's text form.
`fetch_result` runs a query and gives its result in that form, so gold and answer meet on equal terms.
"""

import json
import math
import re
from dataclasses import dataclass, field

from psycopg.postgres import types as pg_types
from psycopg.types.string import TextLoader

REL_TOL = 1e-5
ABS_TOL = 1e-8
MAX_ASSIGNMENTS = 10_000


@dataclass
class Result:
    columns: list
    rows: list = field(default_factory=list)


@dataclass
class Comparison:
    match: bool
    reason: str = ""

    def __bool__(self):
        return self.match


# ---- getting results ----------------------------------------------------------------------------


def fetch_result(conn, query, params=None):
    """Runs `query` and returns its Result with values in sqlchat's JSON form."""
    with conn.cursor() as cur:
        for t in pg_types:
            cur.adapters.register_loader(t.oid, TextLoader)
            if t.array_oid:
                cur.adapters.register_loader(t.array_oid, TextLoader)
        cur.execute(query, params)
        if cur.description is None:
            return Result(columns=[], rows=[])
        texts = cur.fetchall()
        columns = [d.name for d in cur.description]
        oids = [d.type_code for d in cur.description]
        cur.execute("SELECT oid::int, typcategory, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s)", (oids,))
        kinds = {int(oid): (cat, name) for oid, cat, name in cur.fetchall()}
    converters = [kinds.get(oid, ("S", "text")) for oid in oids]
    rows = [tuple(json_value(v, *converters[i]) for i, v in enumerate(row)) for row in texts]
    return Result(columns=columns, rows=rows)


def json_value(text, category, type_name):
    """PostgreSQL text output to the JSON value sqlchat puts in `rows` (mirrors core's result.rs)."""
    if text is None:
        return None
    if type_name in ("json", "jsonb"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if category == "B":
        return {"t": True, "f": False}.get(text, text)
    if category == "N" and not type_name.startswith(("money", "oid", "reg")):
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


def from_objects(rows):
    """A Result from `ask_full(...).rows`: a JSON array of row objects (None or [] for no rows).
    Column order is lost in jsonb; matching ignores it."""
    if not rows:
        return Result(columns=[], rows=[])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"rows is not an array of objects: {str(rows)[:200]}")
    columns = list(rows[0].keys())
    for r in rows[1:]:
        columns += [k for k in r if k not in columns]
    return Result(columns=columns, rows=[tuple(r.get(c) for c in columns) for r in rows])


# ---- ORDER BY ---------------------------------------------------------------------------------------

_LEXEMES = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", re.S)


def has_top_level_order_by(query):
    """True when the statement itself orders its rows (not a subquery or a window's ORDER BY)."""
    text = _LEXEMES.sub(" ", query)
    depth = 0
    outer = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif depth == 0:
            outer.append(ch)
    return re.search(r"\border\s+by\b", "".join(outer), re.I) is not None


# ---- comparing --------------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?([+-]\d{2}(?::?\d{2})?|Z)?$")


def canon(value):
    """A comparable, hashable form: (tag, value) with tags n(umber) b(ool) s(tring) j(son); None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value)) if math.isfinite(value) else ("s", str(value))
    if isinstance(value, str):
        if _NUMBER.match(value):
            return ("n", float(value))
        m = _TIMESTAMP.match(value)
        if m:
            date, time_part, fraction, zone = m.groups()
            fraction = (fraction or "").rstrip("0").rstrip(".")
            if zone in ("Z", None):
                zone = "+00:00" if zone == "Z" else ""
            elif len(zone) == 3:
                zone += ":00"
            elif ":" not in zone:
                zone = zone[:3] + ":" + zone[3:]
            return ("s", f"{date} {time_part}{fraction}{zone}")
        return ("s", value)
    return ("j", json.dumps(value, sort_keys=True))


def _close(a, b, rel_tol, abs_tol):
    if a is None or b is None:
        return a is b
    if a[0] == "n" and b[0] == "n":
        return math.isclose(a[1], b[1], rel_tol=rel_tol, abs_tol=abs_tol)
    return a == b


def _sort_key(v):
    return (0, "", 0.0) if v is None else (1, v[0], v[1] if v[0] == "n" else 0.0, "" if v[0] == "n" else str(v[1]))


def _bucket(row):
    """The exact part of a row: numbers, compared with tolerance, are left out."""
    return tuple(("n",) if v is not None and v[0] == "n" else v for v in row)


def rows_equal(gold_rows, got_rows, ordered, rel_tol=REL_TOL, abs_tol=ABS_TOL):
    """Canonical rows equal as sequences (ordered) or multisets (not), numbers within tolerance."""
    if len(gold_rows) != len(got_rows):
        return False

    def same(a, b):
        return all(_close(x, y, rel_tol, abs_tol) for x, y in zip(a, b))

    if ordered:
        if all(same(a, b) for a, b in zip(gold_rows, got_rows)):
            return True
        # Rows that tie on the gold's sort key have no defined order: accept any order among them.
        return rows_equal(gold_rows, got_rows, False, rel_tol, abs_tol) and _same_up_to_ties(
            gold_rows, got_rows, rel_tol, abs_tol
        )
    pending = {}
    for row in got_rows:
        pending.setdefault(_bucket(row), []).append(row)
    for row in gold_rows:
        candidates = pending.get(_bucket(row), [])
        for i, other in enumerate(candidates):
            if same(row, other):
                del candidates[i]
                break
        else:
            return False
    return True


def _same_up_to_ties(gold_rows, got_rows, rel_tol, abs_tol):
    """Some gold column is sorted (the sort key, as far as the rows show) and the answer has the
    same value in it at every position: the rows differ only in order among ties."""
    width = len(gold_rows[0]) if gold_rows else 0
    for c in range(width):
        keys = [_sort_key(r[c]) for r in gold_rows]
        try:
            ascending = all(a <= b for a, b in zip(keys, keys[1:]))
            descending = all(a >= b for a, b in zip(keys, keys[1:]))
        except TypeError:
            continue
        if (ascending or descending) and all(
            _close(g[c], a[c], rel_tol, abs_tol) for g, a in zip(gold_rows, got_rows)
        ):
            return True
    return False


def _column_values_match(gold_col, got_col, rel_tol, abs_tol):
    a = sorted(gold_col, key=_sort_key)
    b = sorted(got_col, key=_sort_key)
    return all(_close(x, y, rel_tol, abs_tol) for x, y in zip(a, b))


def compare(gold, got, ordered, rel_tol=REL_TOL, abs_tol=ABS_TOL):
    """Does `got` (a Result) answer like `gold`? Returns a Comparison with a reason when not."""
    if len(gold.rows) != len(got.rows):
        return Comparison(False, f"{len(got.rows)} row(s) where gold has {len(gold.rows)}")
    if not gold.rows:
        return Comparison(True)
    width = len(gold.columns)
    if len(got.columns) < width:
        return Comparison(False, f"{len(got.columns)} column(s) where gold has {width}")
    gold_rows = [tuple(canon(v) for v in r) for r in gold.rows]
    got_rows = [tuple(canon(v) for v in r) for r in got.rows]
    gold_cols = list(zip(*gold_rows))
    got_cols = list(zip(*got_rows))

    # For each gold column, the answer's columns holding the same values; a same-named one first.
    options = []
    for i, name in enumerate(gold.columns):
        fits = [j for j in range(len(got.columns)) if _column_values_match(gold_cols[i], got_cols[j], rel_tol, abs_tol)]
        if not fits:
            return Comparison(False, f"no column of the answer holds the values of gold column {name!r}")
        fits.sort(key=lambda j: (str(got.columns[j]).lower() != str(name).lower(), j != i))
        options.append(fits)

    tried = 0
    chosen = []

    def search(i):
        nonlocal tried
        if i == width:
            tried += 1
            projected = [tuple(row[j] for j in chosen) for row in got_rows]
            return rows_equal(gold_rows, projected, ordered, rel_tol, abs_tol)
        for j in options[i]:
            if j in chosen or tried >= MAX_ASSIGNMENTS:
                continue
            chosen.append(j)
            if search(i + 1):
                return True
            chosen.pop()
        return False

    if search(0):
        return Comparison(True)
    what = "the rows differ in order" if ordered and _unordered_match(gold_rows, got_rows, options) else "the rows differ"
    return Comparison(False, what)


def _unordered_match(gold_rows, got_rows, options):
    """Whether the first column choice matches when order is ignored (only to explain a mismatch)."""
    chosen = []
    for fits in options:
        free = [j for j in fits if j not in chosen]
        if not free:
            return False
        chosen.append(free[0])
    projected = [tuple(row[j] for j in chosen) for row in got_rows]
    return rows_equal(gold_rows, projected, ordered=False)


def compare_any(golds, got):
    """`golds`: (Result, ordered) pairs for the gold alternatives; matches when any one does."""
    reasons = []
    for gold, ordered in golds:
        c = compare(gold, got, ordered)
        if c:
            return c
        reasons.append(c.reason)
    return Comparison(False, "; ".join(reasons) or "no gold result")
