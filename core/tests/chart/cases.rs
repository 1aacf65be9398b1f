//! Result shapes for chart suggestions, shared by the chart tests (main.rs) and the chart_specs
//! example, which prints a spec for each so that tests/browser can check them against the official
//! Vega-Lite schema: the hand-labelled shapes (shapes.json plus a few large generated ones) and the
//! edge cases (odd values, nulls, offsets, long labels, many series, negative values...).

use serde_json::{json, Value};

pub struct Case {
    pub name: String,
    pub question: String,
    pub sql: String,
    pub rows: Value,
    /// The chart type the shape calls for; None where any chart will do (odd inputs).
    pub expect: Option<String>,
}

fn case(name: &str, question: &str, sql: &str, rows: Vec<Value>, expect: Option<&str>) -> Case {
    Case {
        name: name.into(),
        question: question.into(),
        sql: sql.into(),
        rows: Value::Array(rows),
        expect: expect.map(str::to_string),
    }
}

/// The hand-labelled shapes of shapes.json and the generated ones, each with its expected chart.
pub fn labelled_cases() -> Vec<Case> {
    let shapes: Vec<Value> = serde_json::from_str(include_str!("shapes.json")).expect("shapes.json parses");
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
    let mut cases: Vec<Case> = shapes
        .iter()
        .map(|s| Case {
            name: text(s, "name"),
            question: text(s, "question"),
            sql: text(s, "sql"),
            rows: s["rows"].clone(),
            expect: Some(text(s, "expect")),
        })
        .collect();
    cases.extend(generated_cases());
    cases
}

const STATUSES: [&str; 3] = ["open", "paid", "shipped"];
const CHANNELS: [&str; 2] = ["web", "shop"];
const SEGMENTS: [&str; 2] = ["consumer", "business"];

/// A fixed spread of values in [0, 100) for row `i`, so generated rows never change.
fn wave(i: usize) -> f64 {
    ((i * 7919) % 1000) as f64 / 10.0
}

/// Labelled shapes too long to write out: made from a fixed formula so they never change.
fn generated_cases() -> Vec<Case> {
    vec![
        case("one measure, many rows", "Order amounts", "SELECT amount FROM orders",
            (0..200).map(|i| json!({"amount": wave(i)})).collect(), Some("histogram")),
        case("identifier and measure, many rows", "Amount of each order", "SELECT order_id, amount FROM orders",
            (0..500).map(|i| json!({"order_id": i + 1, "amount": wave(i)})).collect(), Some("histogram")),
        case("repeated category only", "Status of each order", "SELECT status FROM orders",
            (0..30).map(|i| json!({"status": STATUSES[i % 3]})).collect(), Some("bar")),
        case("raw dated transactions", "Transaction amounts over time", "SELECT tx_date, amount FROM tx",
            (0..50).map(|i| json!({"tx_date": format!("2023-03-{:02}", i % 12 + 1), "amount": wave(i)})).collect(), Some("line")),
        case("daily counts for many stores", "Daily sales per store", "SELECT store, day, sales FROM s",
            (0..150).map(|i| json!({"store": format!("Store {}", i % 15), "day": format!("2023-05-{:02}", i / 15 + 1), "sales": wave(i)})).collect(), Some("heatmap")),
        case("many labelled values", "Population of each city", "SELECT city_name, population FROM city",
            (0..100).map(|i| json!({"city_name": format!("City {i}"), "population": 1000 + i * 37 % 900})).collect(), Some("histogram")),
        case("two unlabelled measures", "Price and quantity of each sale", "SELECT price, quantity FROM sales",
            (0..30).map(|i| json!({"price": wave(i), "quantity": (i * 13) % 40 + 1})).collect(), Some("scatter")),
    ]
}

const MONTHS: [&str; 12] = [
    "2025-01-01",
    "2025-02-01",
    "2025-03-01",
    "2025-04-01",
    "2025-05-01",
    "2025-06-01",
    "2025-07-01",
    "2025-08-01",
    "2025-09-01",
    "2025-10-01",
    "2025-11-01",
    "2025-12-01",
];
const REGIONS: [&str; 8] = ["North", "South", "East", "West", "Centre", "Coast", "Alps", "Islands"];

/// Shapes at the edges of what results look like, and inputs no query should give but a caller may
/// pass: every spec they produce must still be valid.
pub fn edge_cases() -> Vec<Case> {
    let mut cases = typed_edge_cases();
    cases.extend(time_edge_cases());
    cases.extend(odd_inputs());
    cases
}

/// `n` rows made by `row` from their index.
fn rows(n: usize, row: impl Fn(usize) -> Value) -> Vec<Value> {
    (0..n).map(row).collect()
}

/// A fixed spread of values in [-50, 50) for row `i`.
fn signed(i: usize) -> f64 {
    wave(i) - 50.0
}

/// `value` except every `every`th row (from the second), which is null.
fn with_nulls(i: usize, every: usize, value: Value) -> Value {
    if i % every == 1 {
        Value::Null
    } else {
        value
    }
}

fn typed_edge_cases() -> Vec<Case> {
    let long_name = |i: usize| format!("Product {i} {}", "with an extraordinarily long descriptive name ".repeat(3));
    vec![
        case(
            "one negative figure",
            "Net change in stock",
            "SELECT sum(delta) AS net_change FROM moves",
            vec![json!({"net_change": -42.5})],
            Some("kpi"),
        ),
        case(
            "one money string",
            "Revenue this year",
            "SELECT sum(total)::money AS revenue FROM o",
            vec![json!({"revenue": "$1,234,567.50"})],
            Some("kpi"),
        ),
        case(
            "huge figures",
            "Bytes stored per region",
            "SELECT region, sum(bytes) AS bytes FROM s GROUP BY 1",
            rows(4, |i| json!({"region": REGIONS[i], "bytes": 1.5e15 * (i + 1) as f64})),
            Some("bar"),
        ),
        case(
            "negative values, ascending labels",
            "Profit by region",
            "SELECT region, sum(profit) AS profit FROM s GROUP BY 1 ORDER BY region",
            rows(8, |i| json!({"region": REGIONS[i], "profit": signed(i)})),
            Some("bar"),
        ),
        case(
            "descending labels",
            "Orders by region",
            "SELECT region, count(*) AS orders FROM o GROUP BY 1 ORDER BY region DESC",
            rows(8, |i| json!({"region": REGIONS[i], "orders": 10 + i})),
            Some("bar"),
        ),
        case(
            "nulls in labels and measures",
            "Sales by region",
            "SELECT region, sum(sales) AS sales FROM s GROUP BY 1",
            vec![
                json!({"region": null, "sales": 5}),
                json!({"region": "North", "sales": null}),
                json!({"region": "South", "sales": 7}),
                json!({"region": "East", "sales": 3}),
            ],
            Some("bar"),
        ),
        case(
            "labels with quotes and markup",
            "Votes per answer",
            "",
            vec![
                json!({"answer": "<b>yes</b>", "votes": 4}),
                json!({"answer": "O'Brien \"maybe\"", "votes": 2}),
                json!({"answer": "a\\b & c", "votes": 5}),
            ],
            Some("horizontal_bar"),
        ),
        case(
            "very long labels",
            "Revenue per product",
            "SELECT product, sum(total) AS revenue FROM s GROUP BY 1",
            rows(8, |i| json!({"product": long_name(i), "revenue": 100 + i * 10})),
            Some("horizontal_bar"),
        ),
        case(
            "stacked bars with many labels",
            "Orders per city and status",
            "SELECT city, status, count(*) AS orders FROM o GROUP BY 1, 2",
            rows(75, |i| json!({"city": format!("City {:02}", i / 3), "status": STATUSES[i % 3], "orders": 1 + i % 7})),
            Some("stacked_bar"),
        ),
        case(
            "grouped bars with long labels",
            "Average rating per product and channel",
            "SELECT product, channel, avg(rating) AS avg_rating FROM r GROUP BY 1, 2",
            rows(12, |i| {
                let product = format!("Handmade ceramic item number {}", i / 2);
                json!({"product": product, "channel": CHANNELS[i % 2], "avg_rating": 3.0 + wave(i) / 50.0})
            }),
            Some("grouped_bar"),
        ),
        case(
            "negative values in groups",
            "Change in sales per region and segment",
            "SELECT region, segment, sales_change FROM c",
            rows(8, |i| json!({"region": REGIONS[i / 2], "segment": SEGMENTS[i % 2], "sales_change": signed(i)})),
            Some("grouped_bar"),
        ),
        case(
            "negative values in a heat map",
            "Profit per region and product",
            "SELECT region, product, profit FROM p",
            rows(64, |i| json!({"region": REGIONS[i / 8], "product": format!("P{}", i % 8), "profit": signed(i)})),
            Some("heatmap"),
        ),
        case(
            "nulls in a heat map",
            "Visits per region and product",
            "SELECT region, product, visits FROM v",
            rows(48, |i| {
                let visits = with_nulls(i, 5, json!(i));
                json!({"region": REGIONS[i / 6], "product": format!("P{}", i % 6), "visits": visits})
            }),
            Some("heatmap"),
        ),
        case(
            "scatter with colours, nulls and negatives",
            "Margin vs discount per product",
            "SELECT product, category, margin, discount FROM p",
            rows(30, |i| {
                let (product, category) = (format!("Product {i}"), STATUSES[i % 3]);
                let (margin, discount) = (with_nulls(i, 7, json!(signed(i))), wave(i + 3) / 4.0);
                json!({"product": product, "category": category, "margin": margin, "discount": discount})
            }),
            Some("scatter"),
        ),
        case(
            "histogram of signed values",
            "Distribution of daily changes",
            "SELECT change FROM d",
            rows(60, |i| json!({"change": signed(i)})),
            Some("histogram"),
        ),
        case(
            "wide table",
            "Every setting",
            "SELECT * FROM settings",
            rows(3, |r| {
                Value::Object((0..25).map(|c| (format!("setting_{c:02}"), json!(format!("value {r}.{c}")))).collect())
            }),
            Some("table"),
        ),
        case(
            "long table",
            "All customer emails",
            "SELECT full_name, email FROM customers",
            rows(150, |i| json!({"full_name": format!("Customer {i}"), "email": format!("c{i}@example.org")})),
            Some("table"),
        ),
    ]
}

/// Dates and times as PostgreSQL prints them: offsets of whole hours, half hours and local mean
/// time (seconds), daylight saving changes, fractions of a second, nulls.
fn time_edge_cases() -> Vec<Case> {
    const BERLIN_SPRING: [&str; 5] = [
        "2025-03-30 00:00:00+01",
        "2025-03-30 01:00:00+01",
        "2025-03-30 03:00:00+02",
        "2025-03-30 04:00:00+02",
        "2025-03-30 05:00:00+02",
    ];
    const EVERY_OFFSET: [&str; 6] = [
        "1890-01-01 12:00:00+00:53:28",
        "1990-06-01 12:00:00-03:30",
        "2000-01-01 00:00:00.123456+05:30",
        "2020-02-29 23:59:59.5-08",
        "2024-12-31 23:30:00Z",
        "2025-01-01 00:00:00-00:00:30",
    ];
    vec![
        case(
            "hourly across a daylight saving change",
            "Orders per hour on 30 March",
            "SELECT date_trunc('hour', ordered_at) AS hour_start, count(*) AS orders FROM o GROUP BY 1 ORDER BY 1",
            rows(5, |i| json!({"hour_start": BERLIN_SPRING[i], "orders": 3 + i})),
            Some("line"),
        ),
        case(
            "offsets of every kind",
            "Readings over time",
            "SELECT taken_at, reading FROM r ORDER BY taken_at",
            rows(6, |i| json!({"taken_at": EVERY_OFFSET[i], "reading": signed(i)})),
            Some("line"),
        ),
        case(
            "monthly lines for ten series",
            "Revenue per month and store",
            "SELECT month, store, revenue FROM m",
            rows(120, |i| {
                let month = format!("{} 00:00:00+01", MONTHS[i / 10]);
                json!({"month": month, "store": format!("Store {}", i % 10), "revenue": wave(i)})
            }),
            Some("line"),
        ),
        case(
            "nulls along a line",
            "Revenue per month",
            "SELECT month, revenue FROM m",
            rows(12, |i| json!({"month": MONTHS[i], "revenue": with_nulls(i, 4, json!(wave(i)))})),
            Some("line"),
        ),
        case(
            "daily heat map for many stores with offsets",
            "Daily sales per store",
            "SELECT day, store, sales FROM s",
            rows(120, |i| {
                let day = format!("2025-10-{:02} 00:00:00+0{}", 24 + i % 8, if i % 8 < 2 { 2 } else { 1 });
                json!({"day": day, "store": format!("Store {}", i / 8), "sales": wave(i)})
            }),
            Some("heatmap"),
        ),
        case(
            "one row with a timestamp",
            "Details of the last order",
            "SELECT order_id, placed_at, total, units FROM o ORDER BY placed_at DESC LIMIT 1",
            vec![json!({"order_id": 7, "placed_at": "2025-03-30 01:59:59.999+01", "total": 12.5, "units": 3})],
            Some("table"),
        ),
        case(
            "table of timestamps",
            "Logins of the admin",
            "SELECT user_name, logged_in_at FROM logins",
            rows(5, |i| {
                let at = format!("2025-0{}-1{i} 0{i}:15:00+0{}", i + 1, i % 3);
                json!({"user_name": "admin", "logged_in_at": at})
            }),
            Some("table"),
        ),
    ]
}

/// Inputs no query gives but a caller may pass, and SQL text that is not SQL.
fn odd_inputs() -> Vec<Case> {
    let long_text = "x".repeat(100_000);
    let odd = |name: &str, rows: Value| Case {
        name: name.into(),
        question: String::new(),
        sql: String::new(),
        rows,
        expect: None,
    };
    let mut cases = vec![
        odd("empty column name", json!([{"": 1, "a": 2}, {"": 3, "a": 4}])),
        odd("extreme floats", json!([{"a": 1e308, "b": -1e308}, {"a": -0.0, "b": 5}])),
        odd("unicode names", json!([{"ünïcödé": "日本", "值": 3}, {"ünïcödé": "中国", "值": 4}])),
        odd("nested values", json!([{"deep": {"a": {"b": {"c": [1, [2, [3]]]}}}, "n": 1}, {"deep": null, "n": 2}])),
        odd("a very long value", json!([{"a": long_text, "n": 1}, {"a": "short", "n": 2}])),
        odd("empty rows", json!([{}, {}, {}])),
        odd("rows with different keys", json!([{"a": 1}, {"b": "x"}, {"c": true}])),
        odd(
            "impossible and extreme dates",
            json!([{"x": "2023-02-30", "y": 1}, {"x": "9999-12-31 23:59:59.999999+14:00", "y": 2}]),
        ),
        odd(
            "escaped field names",
            json!([{"a\\b": 1, "c]": 2, "[d": 3}, {"a\\b": 4, "c]": 5, "[d": 6}, {"a\\b": 7, "c]": 8, "[d": 9}]),
        ),
    ];
    for sql in ["ORDER BY", "SELECT extract(", "select \"", "ORDER BY 99 DESC", ")))((("] {
        cases.push(Case {
            name: format!("odd sql {sql}"),
            question: "?".into(),
            sql: sql.into(),
            rows: json!([{"a": "x", "n": 1}, {"a": "y", "n": 2}]),
            expect: None,
        });
    }
    cases
}
