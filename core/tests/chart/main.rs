//! Chart suggestions against hand-labelled result shapes and edge cases (cases.rs), and structural
//! checks that every Vega-Lite spec can be embedded as it is. tests/browser checks the same specs
//! against the official Vega-Lite schema.

mod cases;

use std::collections::HashSet;

use cases::{edge_cases, labelled_cases};
use serde_json::{json, Value};
use sqlchat_core::chart::suggest_chart;

#[test]
fn hand_labelled_shapes_agree() {
    let cases = labelled_cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut seen_types = HashSet::new();
    let mut misses = Vec::new();
    for case in &cases {
        let out = suggest_chart(&case.question, &case.sql, &case.rows).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let got = out["chart_type"].as_str().unwrap_or_default().to_string();
        check_output(&case.name, &case.rows, &out);
        let expect = case.expect.clone().unwrap_or_default();
        if got != expect {
            misses.push(format!("{}: expected {expect}, got {got} ({})", case.name, out["reason"]));
        }
        seen_types.insert(expect);
    }
    let agreed = cases.len() - misses.len();
    println!(
        "chart agreement with hand labels: {agreed}/{} ({:.1}%)",
        cases.len(),
        100.0 * agreed as f64 / cases.len() as f64
    );
    for miss in &misses {
        println!("  disagreement: {miss}");
    }
    let all_types = [
        "line",
        "bar",
        "horizontal_bar",
        "stacked_bar",
        "grouped_bar",
        "pie",
        "donut",
        "scatter",
        "histogram",
        "heatmap",
        "kpi",
        "table",
    ];
    for t in all_types {
        assert!(seen_types.contains(t), "no labelled case for {t}");
    }
    assert!(agreed * 100 >= cases.len() * 95, "agreement below 95%: {misses:#?}");
}

/// Edge cases and odd inputs never fail, give complete specs, and those written for a chart type
/// get it (so that each variant of each chart stays covered by the schema check of tests/browser).
#[test]
fn edge_cases_get_their_charts() {
    let mut misses = Vec::new();
    for case in edge_cases() {
        let out = suggest_chart(&case.question, &case.sql, &case.rows).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        check_output(&case.name, &case.rows, &out);
        match &case.expect {
            Some(expect) if out["chart_type"] != json!(expect) => {
                misses.push(format!("{}: expected {expect}, got {} ({})", case.name, out["chart_type"], out["reason"]))
            }
            _ => {}
        }
    }
    assert!(misses.is_empty(), "{misses:#?}");
}

#[test]
fn cells_are_converted_for_the_chart() {
    let rows = json!([{"category": "A", "revenue": "12.50"}, {"category": "B", "revenue": "7.25"}, {"category": "C", "revenue": "3"}]);
    let out = suggest_chart("Revenue by category", "", &rows).expect("chart");
    assert_eq!(out["vega_lite"]["data"]["values"][0]["revenue"], json!(12.5));
    let rows = json!([{"d": "2023-01-05 10:00:00+02", "n": 1}, {"d": "2023-01-06", "n": 2}]);
    let out = suggest_chart("", "", &rows).expect("chart");
    assert_eq!(out["chart_type"], "line");
    // A timestamptz keeps its offset; a date stays a wall-clock reading.
    assert_eq!(out["vega_lite"]["data"]["values"][0]["d"], json!("2023-01-05T10:00:00+02:00"));
    assert_eq!(out["vega_lite"]["data"]["values"][1]["d"], json!("2023-01-06T00:00:00"));
    assert_eq!(out["vega_lite"]["encoding"]["x"]["type"], "temporal");
    let rows = json!([{"t.name": "a", "v": 1}, {"t.name": "b", "v": 2}]);
    let out = suggest_chart("", "", &rows).expect("chart");
    assert_eq!(out["vega_lite"]["encoding"]["x"]["field"], "t\\.name");
    assert_eq!(out["x"], "t.name");
}

/// Every timestamp with an offset reaches the chart data with that offset, whatever its form.
#[test]
fn offsets_reach_the_chart_data() {
    let printed = ["2023-04-01 00:00:00+02", "2023-04-02 12:00:00-05:30", "2023-04-03 08:15:00.25Z"];
    let in_chart = ["2023-04-01T00:00:00+02:00", "2023-04-02T12:00:00-05:30", "2023-04-03T08:15:00.250Z"];
    let rows: Vec<Value> = printed.iter().enumerate().map(|(i, t)| json!({"at": t, "n": i})).collect();
    let out = suggest_chart("", "", &Value::Array(rows)).expect("chart");
    assert_eq!(out["chart_type"], "line");
    let values = out["vega_lite"]["data"]["values"].as_array().cloned().unwrap_or_default();
    let times: Vec<Value> = values.iter().map(|row| row["at"].clone()).collect();
    assert_eq!(times, in_chart.map(|t| json!(t)));
    // In a table, midnights with an offset keep their time of day; plain dates print as dates.
    let text_format = |rows: Value| {
        let out = suggest_chart("", "", &rows).expect("chart");
        assert_eq!(out["chart_type"], "table");
        let views = out["vega_lite"]["hconcat"].as_array().cloned().unwrap_or_default();
        let at = views.iter().find(|v| v["title"]["text"] == "at").expect("a column for at");
        at["encoding"]["text"]["format"].clone()
    };
    let midnights = json!([{"who": "a", "at": "2023-04-01 00:00:00+02"}, {"who": "b", "at": "2023-04-02 00:00:00+02"}]);
    assert_eq!(text_format(midnights), json!("%Y-%m-%d %H:%M"));
    let dates = json!([{"who": "a", "at": "2023-04-01"}, {"who": "b", "at": "2023-04-02"}]);
    assert_eq!(text_format(dates), json!("%Y-%m-%d"));
}

#[test]
fn titles_and_orders_follow_the_question_and_sql() {
    let rows =
        json!([{"region": "North", "total": 5}, {"region": "South", "total": 9}, {"region": "East", "total": 2}]);
    let out = suggest_chart(
        "  show me the total per region?? ",
        "SELECT region, sum(x) AS total FROM t GROUP BY 1 ORDER BY region",
        &rows,
    )
    .expect("chart");
    assert_eq!(out["title"], "Total per region");
    assert_eq!(out["vega_lite"]["encoding"]["x"]["sort"], "ascending");
    let out = suggest_chart("", "", &rows).expect("chart");
    assert_eq!(out["title"], "total by region");
    assert_eq!(out["vega_lite"]["encoding"]["x"]["sort"], "-y");
    assert!(out["reason"].as_str().is_some_and(|r| r.len() > 20));
}

/// Checks the answer's shape and that its Vega-Lite spec is complete and names only real fields.
fn check_output(name: &str, rows: &Value, out: &Value) {
    let columns: HashSet<String> =
        rows.as_array().into_iter().flatten().filter_map(Value::as_object).flat_map(|r| r.keys().cloned()).collect();
    for key in ["x", "y", "series"] {
        match &out[key] {
            Value::Null => {}
            Value::String(c) => assert!(columns.contains(c), "{name}: {key} = {c} is not a column"),
            other => panic!("{name}: {key} is {other}"),
        }
    }
    for key in ["title", "reason"] {
        assert!(out[key].as_str().is_some_and(|s| !s.trim().is_empty()), "{name}: empty {key}");
    }
    let spec = &out["vega_lite"];
    assert_eq!(spec["$schema"], "https://vega.github.io/schema/vega-lite/v5.23.0.json", "{name}");
    let values = spec["data"]["values"].as_array().unwrap_or_else(|| panic!("{name}: no data.values"));
    let row_count = rows.as_array().map_or(0, Vec::len);
    // An empty result is drawn from one placeholder datum (a text mark needs one).
    assert_eq!(values.len(), row_count.clamp(1, 5_000), "{name}: data.values length");
    let mut known: HashSet<String> = columns.clone();
    collect_derived_fields(spec, &mut known);
    let mut units = Vec::new();
    collect_units(spec, &mut units);
    assert!(!units.is_empty(), "{name}: no mark anywhere");
    for unit in units {
        let encoding = unit["encoding"].as_object().unwrap_or_else(|| panic!("{name}: a mark without encoding"));
        let mut fields = Vec::new();
        collect_field_refs(&Value::Object(encoding.clone()), &mut fields);
        for field in fields {
            assert!(known.contains(&unescape(&field)), "{name}: field {field} names no column");
        }
    }
}

/// Every view with a mark: the spec itself or its layer/concat members.
fn collect_units<'a>(spec: &'a Value, units: &mut Vec<&'a Value>) {
    if spec.get("mark").is_some() {
        units.push(spec);
    }
    for key in ["layer", "hconcat", "vconcat", "concat"] {
        for child in spec[key].as_array().into_iter().flatten() {
            collect_units(child, units);
        }
    }
}

/// Names that transforms create ("as").
fn collect_derived_fields(spec: &Value, known: &mut HashSet<String>) {
    match spec {
        Value::Object(map) => {
            if let Some(Value::String(as_name)) = map.get("as") {
                known.insert(as_name.clone());
            }
            map.values().for_each(|v| collect_derived_fields(v, known));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_derived_fields(v, known)),
        _ => {}
    }
}

/// Every "field" under an encoding (channels, tooltips, conditions, sort and order definitions).
fn collect_field_refs(value: &Value, fields: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(f)) = map.get("field") {
                fields.push(f.clone());
            }
            map.values().for_each(|v| collect_field_refs(v, fields));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_field_refs(v, fields)),
        _ => {}
    }
}

fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}
