"""Unit tests of the result comparison, plus fetch_result against a real server."""

import datetime

import pytest

from resultcmp import Result, canon, compare, compare_any, fetch_result, from_objects, has_top_level_order_by


def r(columns, *rows):
    return Result(columns=list(columns), rows=[tuple(x) for x in rows])


def test_identical_results_match():
    gold = r(["a", "b"], (1, "x"), (2, "y"))
    assert compare(gold, gold, ordered=True)


def test_row_order_ignored_unless_gold_orders():
    gold = r(["a"], (1,), (2,))
    got = r(["a"], (2,), (1,))
    assert compare(gold, got, ordered=False)
    c = compare(gold, got, ordered=True)
    assert not c and "order" in c.reason


def test_multiset_counts_duplicates():
    gold = r(["a"], (1,), (1,), (2,))
    assert not compare(gold, r(["a"], (1,), (2,), (2,)), ordered=False)
    assert compare(gold, r(["a"], (2,), (1,), (1,)), ordered=False)


def test_row_count_and_column_count_mismatches_say_why():
    gold = r(["a", "b"], (1, 2))
    assert "row" in compare(gold, r(["a", "b"], (1, 2), (1, 2)), ordered=False).reason
    assert "column" in compare(gold, r(["a"], (1,)), ordered=False).reason


def test_column_names_and_order_do_not_matter():
    gold = r(["name", "total"], ("ann", 3), ("bob", 5))
    got = r(["sum", "author"], (5, "bob"), (3, "ann"))
    assert compare(gold, got, ordered=False)


def test_extra_columns_are_allowed():
    gold = r(["name"], ("ann",), ("bob",))
    got = r(["id", "name", "n"], (1, "ann", 7), (2, "bob", 8))
    assert compare(gold, got, ordered=True)


def test_missing_gold_column_values_fail():
    gold = r(["name", "n"], ("ann", 1))
    c = compare(gold, r(["name", "n"], ("ann", 2)), ordered=False)
    assert not c and "'n'" in c.reason


def test_same_values_in_two_columns_are_paired_by_rows():
    # Both answer columns hold {1, 2}; only one pairing keeps the rows together.
    gold = r(["k", "v"], ("a", 1), ("b", 2))
    got = r(["x", "y", "k"], (2, 1, "a"), (1, 2, "b"))
    assert compare(gold, got, ordered=False)
    assert not compare(gold, r(["x", "k"], (2, "a"), (1, "b")), ordered=False)


def test_numeric_tolerance():
    gold = r(["avg"], (3.3333333333333335,))
    assert compare(gold, r(["avg"], (3.33333333,)), ordered=False)
    assert compare(gold, r(["avg"], ("3.33333333333333333333",)), ordered=False)
    assert not compare(gold, r(["avg"], (3.33,)), ordered=False)
    assert compare(r(["n"], (0,)), r(["n"], (1e-12,)), ordered=False)


def test_numbers_in_text_and_json_form_agree():
    assert compare(r(["n"], (5,)), r(["n"], (5.0,)), ordered=False)
    assert compare(r(["n"], ("12.50",)), r(["n"], (12.5,)), ordered=False)


def test_timestamps_compare_whatever_their_text_form():
    a = canon("2024-01-02 03:04:05.120+00")
    assert a == canon("2024-01-02T03:04:05.12+00:00")
    assert canon("2024-01-02 03:04:05") == canon("2024-01-02T03:04:05")
    assert canon("2024-01-02 03:04:05") != canon("2024-01-02 03:04:06")


def test_nulls_booleans_and_json():
    gold = r(["a", "b", "c"], (None, True, {"x": [1, 2]}))
    assert compare(gold, r(["a", "b", "c"], (None, True, {"x": [1, 2]})), ordered=False)
    assert not compare(gold, r(["a", "b", "c"], (0, True, {"x": [1, 2]})), ordered=False)
    assert not compare(gold, r(["a", "b", "c"], (None, False, {"x": [1, 2]})), ordered=False)


def test_empty_results():
    assert compare(r(["a"]), r([]), ordered=False)
    assert not compare(r(["a"]), r(["a"], (1,)), ordered=False)


def test_compare_any_takes_any_alternative():
    golds = [(r(["a"], (1,)), False), (r(["a"], (2,)), False)]
    assert compare_any(golds, r(["a"], (2,)))
    c = compare_any(golds, r(["a"], (3,)))
    assert not c and c.reason


def test_from_objects():
    res = from_objects([{"b": 2, "a": "x"}, {"a": "y", "b": 3}])
    assert res.columns == ["b", "a"] and res.rows == [(2, "x"), (3, "y")]
    assert from_objects(None).rows == [] and from_objects([]).rows == []
    with pytest.raises(ValueError):
        from_objects([1, 2])


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT a FROM t ORDER BY a", True),
        ("select a from t order\n  by a desc limit 3", True),
        ("SELECT a FROM (SELECT a FROM t ORDER BY a) s", False),
        ("SELECT rank() OVER (ORDER BY a) FROM t", False),
        ("SELECT 'order by' FROM t", False),
        ("SELECT a AS \"order by\" FROM t", False),
        ("SELECT a FROM t -- order by a", False),
        ("WITH x AS (SELECT a FROM t ORDER BY a) SELECT * FROM x ORDER BY 1", True),
    ],
)
def test_has_top_level_order_by(sql, expected):
    assert has_top_level_order_by(sql) is expected


def test_fetch_result_gives_sqlchat_json_form(cluster):
    with cluster.connect() as conn:
        res = fetch_result(
            conn,
            "SELECT 1::int AS i, 10000000000::bigint AS big, 1::numeric / 4 AS num, 1.5::float8 AS f, "
            "true AS b, NULL::int AS n, 'x'::text AS t, DATE '2024-01-02' AS d, "
            "TIMESTAMP '2024-01-02 03:04:05' AS ts, '{\"k\": [1]}'::jsonb AS j, '{1,2}'::int[] AS arr, "
            "'NaN'::numeric AS nan, 2::oid AS o, interval '1 day' AS iv",
        )
    assert res.columns[:3] == ["i", "big", "num"]
    assert res.rows == [(
        1, 10000000000, 0.25, 1.5, True, None, "x", "2024-01-02", "2024-01-02 03:04:05",
        {"k": [1]}, "{1,2}", "NaN", "2", "1 day",
    )]
    assert isinstance(datetime.date.fromisoformat(res.rows[0][7]), datetime.date)


def test_fetch_result_of_an_ordered_query_keeps_order(cluster):
    with cluster.connect() as conn:
        res = fetch_result(conn, "SELECT g FROM generate_series(3, 1, -1) g ORDER BY g DESC")
    assert res.rows == [(3,), (2,), (1,)]


def test_order_among_ties_is_free():
    from resultcmp import rows_equal

    def rows(*raw):
        return [tuple(canon(v) for v in r) for r in raw]

    gold = rows(("a", 3), ("b", 2), ("c", 2), ("d", 1))
    assert rows_equal(gold, rows(("a", 3), ("c", 2), ("b", 2), ("d", 1)), ordered=True)
    assert not rows_equal(gold, rows(("d", 1), ("c", 2), ("b", 2), ("a", 3)), ordered=True)
    assert not rows_equal(gold, rows(("b", 2), ("a", 3), ("c", 2), ("d", 1)), ordered=True)
