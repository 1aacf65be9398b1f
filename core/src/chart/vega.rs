//! Vega-Lite v5 specs for a chosen chart, with the rows inline, so vega-embed renders any result
//! as it is.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::instant::{is_local_midnight, normalize_instant};
use super::profile::{self, ColumnProfile, Role, TimeKind};
use super::{Aggregate, ChartType, LabelOrder, Plan, MAX_CHART_ROWS};

/// The Vega-Lite version the specs are written for and checked against (tests/browser validates
/// them with the schema of this very version, which its package-lock.json pins).
pub const SCHEMA: &str = "https://vega.github.io/schema/vega-lite/v5.23.0.json";
/// Rows and columns a text table shows; the data keeps every row up to the cap.
const TABLE_ROWS: usize = 100;
const TABLE_COLUMNS: usize = 20;
const WIDE: u32 = 480;
const TALL: u32 = 300;
const BAR_COLOUR: &str = "#4c78a8";
const NEGATIVE_COLOUR: &str = "#e45756";

/// Escapes a column name for use as a Vega-Lite field: dots and brackets would otherwise mean
/// nested access.
pub fn field_ref(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if matches!(c, '.' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

pub fn spec(
    plan: &Plan,
    columns: &[ColumnProfile],
    rows: &[&Map<String, Value>],
    total_rows: usize,
    title: &str,
) -> Value {
    let values = data_values(columns, rows);
    let mut description = format!("{} suggested for {} row(s).", plan.chart.as_str(), total_rows);
    if total_rows > rows.len() {
        description.push_str(&format!(
            " The data is capped at the first {} of {} rows.",
            thousands(MAX_CHART_ROWS),
            thousands(total_rows)
        ));
    }
    let col = |i: Option<usize>| i.and_then(|i| columns.get(i));
    let body = match (plan.chart, col(plan.x), col(plan.y)) {
        (ChartType::Line, Some(x), Some(y)) => line(plan, x, y, col(plan.series), rows),
        (ChartType::Bar | ChartType::HorizontalBar, Some(x), _) => bar(plan, x, col(plan.y)),
        (ChartType::StackedBar | ChartType::GroupedBar, Some(x), Some(y)) => {
            col(plan.series).map_or_else(|| bar(plan, x, Some(y)), |s| split_bar(plan, x, y, s))
        }
        (ChartType::Pie | ChartType::Donut, Some(x), Some(y)) => arc(plan, x, y),
        (ChartType::Scatter, Some(x), Some(y)) => scatter(x, y, col(plan.series), columns),
        (ChartType::Histogram, Some(x), _) => histogram(x),
        (ChartType::Heatmap, Some(x), Some(y)) => {
            col(plan.series).map_or_else(|| bar(plan, x, Some(y)), |s| heatmap(plan, x, y, s, rows))
        }
        (ChartType::Kpi, _, Some(y)) => kpi(y),
        _ => table(columns, rows, &mut description),
    };
    let mut spec = json!({
        "$schema": SCHEMA,
        "description": description,
        "title": title,
        "data": {"values": values},
    });
    if let (Value::Object(target), Value::Object(parts)) = (&mut spec, body) {
        target.extend(parts);
    }
    spec
}

/// The rows as the chart reads them: numeric strings of measures as numbers, dates and timestamps
/// in the form browsers parse (offsets kept), nested values as text.
fn data_values(columns: &[ColumnProfile], rows: &[&Map<String, Value>]) -> Value {
    let roles: HashMap<&str, Role> = columns.iter().map(|c| (c.name.as_str(), c.role)).collect();
    let converted = rows.iter().map(|row| {
        let object: Map<String, Value> = row
            .iter()
            .map(|(key, value)| (key.clone(), chart_value(value, roles.get(key.as_str()).copied())))
            .collect();
        Value::Object(object)
    });
    Value::Array(converted.collect())
}

fn chart_value(value: &Value, role: Option<Role>) -> Value {
    match (value, role) {
        (Value::String(s), Some(Role::Measure | Role::Temporal(TimeKind::Year | TimeKind::Bucket))) => {
            profile::parse_quantity(s).map_or_else(|| value.clone(), |x| json!(x))
        }
        (Value::String(s), Some(Role::Temporal(TimeKind::Instant))) => {
            normalize_instant(s).map_or_else(|| value.clone(), Value::String)
        }
        (Value::Array(_) | Value::Object(_), _) => Value::String(value.to_string()),
        _ => value.clone(),
    }
}

/// An encoding channel for a column, titled with its unescaped name.
fn channel(column: &ColumnProfile, kind: &str) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("field".into(), json!(field_ref(&column.name)));
    c.insert("type".into(), json!(kind));
    let title = if column.in_days { format!("{} (days)", column.name) } else { column.name.clone() };
    c.insert("title".into(), json!(title));
    c
}

/// The measure channel, aggregated as the plan says.
fn value_channel(plan: &Plan, measure: Option<&ColumnProfile>) -> Map<String, Value> {
    match (plan.aggregate, measure) {
        (Aggregate::Count, _) | (_, None) => {
            let mut c = Map::new();
            c.insert("aggregate".into(), json!("count"));
            c.insert("type".into(), json!("quantitative"));
            c.insert("title".into(), json!("Number of rows"));
            c
        }
        (Aggregate::Sum, Some(m)) => {
            let mut c = channel(m, "quantitative");
            c.insert("aggregate".into(), json!("sum"));
            c
        }
        (Aggregate::None, Some(m)) => channel(m, "quantitative"),
    }
}

/// A time column as an axis: real dates on a time scale, years and buckets in order, month names
/// in calendar order.
fn time_channel(column: &ColumnProfile, rows: &[&Map<String, Value>]) -> Map<String, Value> {
    match column.role {
        Role::Temporal(TimeKind::Instant) => channel(column, "temporal"),
        Role::Temporal(TimeKind::MonthName) => {
            let mut names: Vec<String> = distinct_texts(rows, &column.name).into_iter().collect();
            names.sort_by_key(|name| profile::month_index(name));
            let mut c = channel(column, "ordinal");
            c.insert("sort".into(), json!(names));
            c
        }
        Role::Temporal(_) => channel(column, "ordinal"),
        _ => channel(column, "nominal"),
    }
}

fn distinct_texts(rows: &[&Map<String, Value>], name: &str) -> HashSet<String> {
    rows.iter().filter_map(|row| row.get(name)).filter(|v| !v.is_null()).map(profile::display_text).collect()
}

/// Properties a tooltip field definition may have (Vega-Lite's StringFieldDef): a channel's sort,
/// scale or stack belong to its axis or legend and make the spec invalid inside a tooltip.
const TOOLTIP_PROPERTIES: [&str; 9] =
    ["field", "type", "title", "aggregate", "timeUnit", "bin", "bandPosition", "format", "formatType"];

/// A tooltip listing the fields of `channels`, as each channel reads them.
fn tooltip(channels: &[&Map<String, Value>]) -> Value {
    let entry = |c: &Map<String, Value>| -> Value {
        Value::Object(
            c.iter()
                .filter(|(k, _)| TOOLTIP_PROPERTIES.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    Value::Array(channels.iter().map(|c| entry(c)).collect())
}

fn line(
    plan: &Plan,
    x: &ColumnProfile,
    y: &ColumnProfile,
    series: Option<&ColumnProfile>,
    rows: &[&Map<String, Value>],
) -> Value {
    let xc = time_channel(x, rows);
    let yc = value_channel(plan, Some(y));
    let mut encoding = Map::new();
    let mut tips = vec![&xc, &yc];
    let sc = series.map(|s| channel(s, "nominal"));
    if let Some(sc) = &sc {
        tips.push(sc);
    }
    encoding.insert("tooltip".into(), tooltip(&tips));
    if let Some(sc) = &sc {
        encoding.insert("color".into(), Value::Object(sc.clone()));
    }
    encoding.insert("x".into(), Value::Object(xc.clone()));
    encoding.insert("y".into(), Value::Object(yc.clone()));
    json!({
        "width": WIDE,
        "height": TALL,
        "mark": {"type": "line", "point": true},
        "encoding": encoding,
    })
}

/// The label axis of a bar chart, sorted as the plan says (by value when nothing else is asked).
fn label_channel(plan: &Plan, label: &ColumnProfile, value_axis: &str) -> Map<String, Value> {
    let mut c = channel(label, "nominal");
    let sort = match plan.label_order {
        LabelOrder::ByValueDescending => json!(format!("-{value_axis}")),
        LabelOrder::Ascending => json!("ascending"),
        LabelOrder::Descending => json!("descending"),
    };
    c.insert("sort".into(), sort);
    c
}

/// (label axis, value axis) in screen terms.
fn axes(plan: &Plan) -> (&'static str, &'static str) {
    if plan.horizontal {
        ("y", "x")
    } else {
        ("x", "y")
    }
}

fn bar(plan: &Plan, label: &ColumnProfile, measure: Option<&ColumnProfile>) -> Value {
    let (label_axis, value_axis) = axes(plan);
    let lc = label_channel(plan, label, value_axis);
    let vc = value_channel(plan, measure);
    let mut encoding = Map::new();
    encoding.insert("tooltip".into(), tooltip(&[&lc, &vc]));
    match measure {
        Some(m) if m.has_negative && plan.aggregate == Aggregate::None => {
            let test = json!({"field": field_ref(&m.name), "lt": 0});
            encoding.insert(
                "color".into(),
                json!({"condition": {"test": test, "value": NEGATIVE_COLOUR}, "value": BAR_COLOUR}),
            );
        }
        _ => {}
    }
    encoding.insert(label_axis.into(), Value::Object(lc));
    encoding.insert(value_axis.into(), Value::Object(vc));
    json!({"mark": {"type": "bar"}, "encoding": encoding})
}

/// Stacked or grouped bars: a second category splits each bar.
fn split_bar(plan: &Plan, label: &ColumnProfile, measure: &ColumnProfile, series: &ColumnProfile) -> Value {
    let (label_axis, value_axis) = axes(plan);
    let lc = label_channel(plan, label, value_axis);
    let vc = value_channel(plan, Some(measure));
    let sc = channel(series, "nominal");
    let mut encoding = Map::new();
    encoding.insert("tooltip".into(), tooltip(&[&lc, &sc, &vc]));
    encoding.insert("color".into(), Value::Object(sc.clone()));
    if plan.chart == ChartType::GroupedBar {
        encoding.insert(format!("{label_axis}Offset"), Value::Object(sc));
    }
    encoding.insert(label_axis.into(), Value::Object(lc));
    encoding.insert(value_axis.into(), Value::Object(vc));
    json!({"mark": {"type": "bar"}, "encoding": encoding})
}

fn arc(plan: &Plan, label: &ColumnProfile, measure: &ColumnProfile) -> Value {
    let mut theta = value_channel(plan, Some(measure));
    theta.insert("stack".into(), json!(true));
    let mut colour = channel(label, "nominal");
    colour.insert("sort".into(), json!({"field": field_ref(&measure.name), "op": "sum", "order": "descending"}));
    let mut mark = json!({"type": "arc", "outerRadius": 120});
    if plan.chart == ChartType::Donut {
        mark["innerRadius"] = json!(60);
    }
    json!({
        "mark": mark,
        "view": {"stroke": null},
        "encoding": {
            "theta": theta,
            "color": colour,
            "order": {"field": field_ref(&measure.name), "type": "quantitative", "aggregate": "sum", "sort": "descending"},
            "tooltip": tooltip(&[&channel(label, "nominal"), &channel(measure, "quantitative")]),
        },
    })
}

fn scatter(x: &ColumnProfile, y: &ColumnProfile, colour: Option<&ColumnProfile>, columns: &[ColumnProfile]) -> Value {
    let mut xc = channel(x, "quantitative");
    xc.insert("scale".into(), json!({"zero": false}));
    let mut yc = channel(y, "quantitative");
    yc.insert("scale".into(), json!({"zero": false}));
    // Hovering a point names it: labels first, then the two measures.
    let labels: Vec<Map<String, Value>> =
        columns.iter().filter(|c| c.is_label()).take(2).map(|c| channel(c, "nominal")).collect();
    let mut tips: Vec<&Map<String, Value>> = labels.iter().collect();
    tips.extend([&xc, &yc]);
    let mut encoding = Map::new();
    encoding.insert("tooltip".into(), tooltip(&tips));
    if let Some(c) = colour {
        encoding.insert("color".into(), Value::Object(channel(c, "nominal")));
    }
    encoding.insert("x".into(), Value::Object(xc));
    encoding.insert("y".into(), Value::Object(yc));
    json!({"width": WIDE, "height": TALL, "mark": {"type": "point", "filled": true}, "encoding": encoding})
}

fn histogram(measure: &ColumnProfile) -> Value {
    let mut x = channel(measure, "quantitative");
    x.insert("bin".into(), json!({"maxbins": 30}));
    json!({
        "width": WIDE,
        "height": TALL,
        "mark": {"type": "bar", "tooltip": true},
        "encoding": {
            "x": x,
            "y": {"aggregate": "count", "type": "quantitative", "title": "Number of rows"},
        },
    })
}

fn heatmap(
    plan: &Plan,
    x: &ColumnProfile,
    measure: &ColumnProfile,
    rows_column: &ColumnProfile,
    rows: &[&Map<String, Value>],
) -> Value {
    let xc = if matches!(x.role, Role::Temporal(_)) {
        let mut c = time_channel(x, rows);
        c.insert("type".into(), json!("ordinal"));
        if x.role == Role::Temporal(TimeKind::Instant) {
            c.insert("timeUnit".into(), json!("yearmonthdate"));
        }
        c
    } else {
        let mut c = channel(x, "nominal");
        if let Some(order) = calendar_order(x, rows) {
            c.insert("sort".into(), order);
        }
        c
    };
    let mut yc = channel(rows_column, "nominal");
    if let Some(order) = calendar_order(rows_column, rows) {
        yc.insert("sort".into(), order);
    }
    let mut colour = value_channel(plan, Some(measure));
    if measure.has_negative {
        colour.insert("scale".into(), json!({"scheme": "redblue", "domainMid": 0}));
    }
    json!({
        "mark": {"type": "rect"},
        "encoding": {
            "tooltip": tooltip(&[&xc, &yc, &colour]),
            "x": xc,
            "y": yc,
            "color": colour,
        },
    })
}

/// The text channel of a table column: dates and times printed short (the data holds them in the
/// long browser-safe form), everything else as it is. Timestamps with an offset keep their time of
/// day: in the viewer's time zone a midnight elsewhere may fall on another date.
fn table_text(column: &ColumnProfile, rows: &[&Map<String, Value>]) -> Value {
    if column.role != Role::Temporal(TimeKind::Instant) {
        return json!({"field": field_ref(&column.name), "type": "nominal"});
    }
    let midnight_only = rows
        .iter()
        .filter_map(|r| r.get(&column.name).and_then(Value::as_str))
        .filter_map(normalize_instant)
        .all(|t| is_local_midnight(&t));
    let format = if midnight_only { "%Y-%m-%d" } else { "%Y-%m-%d %H:%M" };
    json!({"field": field_ref(&column.name), "type": "temporal", "format": format})
}

/// Day or month names in calendar order (Monday first) when every value of the column is one;
/// alphabetical order would put Friday first.
fn calendar_order(column: &ColumnProfile, rows: &[&Map<String, Value>]) -> Option<Value> {
    let values: Vec<String> =
        rows.iter().filter_map(|r| r.get(&column.name)).filter(|v| !v.is_null()).map(profile::display_text).collect();
    if values.is_empty() {
        return None;
    }
    let ranked_by = |index: fn(&str) -> Option<usize>| -> Option<Vec<(usize, String)>> {
        values.iter().map(|v| index(v).map(|i| (i, v.clone()))).collect()
    };
    let mut ranked = ranked_by(profile::weekday_index).or_else(|| ranked_by(profile::month_index))?;
    ranked.sort();
    ranked.dedup();
    Some(json!(ranked.into_iter().map(|(_, v)| v).collect::<Vec<_>>()))
}

fn kpi(measure: &ColumnProfile) -> Value {
    let value = measure.max;
    let format = if value.fract() == 0.0 || value.abs() >= 100.0 { ",.2~f" } else { ",.4~r" };
    let mut text = channel(measure, "quantitative");
    text.insert("format".into(), json!(format));
    json!({
        "width": 300,
        "height": 100,
        "view": {"stroke": null},
        "mark": {"type": "text", "fontSize": 48, "fontWeight": "bold"},
        "encoding": {"text": text},
    })
}

/// A text table: one text column per result column, one line per row (first 100 rows).
fn table(columns: &[ColumnProfile], data: &[&Map<String, Value>], description: &mut String) -> Value {
    let rows = data.len();
    let shown: Vec<&ColumnProfile> = columns.iter().filter(|c| !c.name.is_empty()).take(TABLE_COLUMNS).collect();
    if shown.is_empty() {
        let text = json!({"mark": {"type": "text"}, "encoding": {"text": {"value": if rows == 0 { "No rows" } else { "No columns" }}}});
        if rows > 0 {
            return text;
        }
        // With no rows at all, one empty datum so that the text mark is drawn.
        return json!({"data": {"values": [{}]}, "mark": text["mark"], "encoding": text["encoding"]});
    }
    if rows > TABLE_ROWS {
        description.push_str(&format!(" The table shows the first {TABLE_ROWS} rows."));
    }
    if columns.len() > shown.len() {
        description.push_str(&format!(" The table shows the first {} of {} columns.", shown.len(), columns.len()));
    }
    let taken: HashSet<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut row_field = "row_number".to_string();
    while taken.contains(row_field.as_str()) {
        row_field.insert(0, '_');
    }
    let views: Vec<Value> = shown
        .iter()
        .map(|c| {
            let width = (c.max_len.max(c.name.chars().count()) * 8 + 16).clamp(40, 360);
            json!({
                "width": width,
                "title": {"text": c.name, "anchor": "start", "fontSize": 12},
                "mark": {"type": "text", "align": "left", "limit": width},
                "encoding": {
                    "x": {"value": 0},
                    "y": {"field": row_field, "type": "ordinal", "axis": null},
                    "text": table_text(c, data),
                },
            })
        })
        .collect();
    json!({
        "transform": [
            {"window": [{"op": "row_number", "as": row_field}]},
            {"filter": {"field": row_field, "lte": TABLE_ROWS}},
        ],
        "hconcat": views,
        "spacing": 8,
        "config": {"view": {"stroke": null}},
    })
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod calendar_tests {
    use super::*;

    #[test]
    fn weekdays_sort_in_calendar_order() {
        let rows: Vec<Map<String, Value>> = ["Fri", "Mon", "Wed", "Mon"]
            .iter()
            .map(|d| json!({"day": d}).as_object().cloned().unwrap_or_default())
            .collect();
        let refs: Vec<&Map<String, Value>> = rows.iter().collect();
        let column = profile::profile("day", &refs, false);
        assert_eq!(calendar_order(&column, &refs), Some(json!(["Mon", "Wed", "Fri"])));
        let other: Vec<Map<String, Value>> = vec![
            json!({"day": "Mon"}).as_object().cloned().unwrap_or_default(),
            json!({"day": "x"}).as_object().cloned().unwrap_or_default(),
        ];
        let refs: Vec<&Map<String, Value>> = other.iter().collect();
        assert_eq!(calendar_order(&profile::profile("day", &refs, false), &refs), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_fields_and_formats_counts() {
        assert_eq!(field_ref("a.b[0]"), "a\\.b\\[0\\]");
        assert_eq!(field_ref("plain name"), "plain name");
        assert_eq!(thousands(5000), "5,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
