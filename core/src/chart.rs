//! Chart recommendation for a query result, worked out locally (no LLM): each column gets a role
//! from its values (time, measure, category, identifier), the roles pick a chart, and the chart
//! becomes a Vega-Lite v5 spec with the rows inline, ready for vega-embed. The question and SQL
//! only break ties (title, select-list order, ORDER BY, time parts computed in SQL).

mod hints;
mod instant;
mod profile;
mod vega;

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::catalog::identifier_words;
use crate::error::{Error, Result};
use hints::QuestionHints;
use profile::{ColumnProfile, Role, TimeKind};

/// Rows analysed and embedded in the spec; the rest are left out (and the spec says so).
pub const MAX_CHART_ROWS: usize = 5_000;
/// More distinct labels than this make a bar chart unreadable.
const MAX_BARS: usize = 60;
/// Parts of a whole a pie or donut may have.
const MAX_PIE_PARTS: usize = 6;
/// Lines one line chart over real time may draw; more series go to a heat map.
const MAX_LINES: usize = 10;
/// Second categories with at most this many values stack or group bars; more make a heat map.
const MAX_BAR_SERIES: usize = 5;
/// Rows a single measure needs before its distribution is worth a histogram.
const MIN_HISTOGRAM_ROWS: usize = 20;
/// Repeated values of a lone category are counted in a bar chart from this many rows on.
const MIN_COUNTED_ROWS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartType {
    Line,
    Bar,
    HorizontalBar,
    StackedBar,
    GroupedBar,
    Pie,
    Donut,
    Scatter,
    Histogram,
    Heatmap,
    Kpi,
    Table,
}

impl ChartType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChartType::Line => "line",
            ChartType::Bar => "bar",
            ChartType::HorizontalBar => "horizontal_bar",
            ChartType::StackedBar => "stacked_bar",
            ChartType::GroupedBar => "grouped_bar",
            ChartType::Pie => "pie",
            ChartType::Donut => "donut",
            ChartType::Scatter => "scatter",
            ChartType::Histogram => "histogram",
            ChartType::Heatmap => "heatmap",
            ChartType::Kpi => "kpi",
            ChartType::Table => "table",
        }
    }
}

/// How the plotted value is computed from the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    /// Each row is one mark.
    None,
    /// Rows sharing a position are added up.
    Sum,
    /// Rows are counted per label (no measure column).
    Count,
}

/// Order of bars along the label axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelOrder {
    ByValueDescending,
    Ascending,
    Descending,
}

/// The chosen chart, by column index. `x` is the dimension (or a scatter's other measure), `y` the
/// measure, `series` the second dimension (lines, stacks, groups, scatter colours, heat-map rows).
#[derive(Debug, Clone)]
struct Plan {
    chart: ChartType,
    x: Option<usize>,
    y: Option<usize>,
    series: Option<usize>,
    aggregate: Aggregate,
    label_order: LabelOrder,
    /// Bars (plain, stacked or grouped) drawn sideways for long labels.
    horizontal: bool,
    reason: String,
}

impl Plan {
    fn new(chart: ChartType, reason: String) -> Self {
        Plan {
            chart,
            x: None,
            y: None,
            series: None,
            aggregate: Aggregate::None,
            label_order: LabelOrder::ByValueDescending,
            horizontal: false,
            reason,
        }
    }
    fn table(reason: impl Into<String>) -> Self {
        Plan::new(ChartType::Table, reason.into())
    }
}

/// Suggests a chart for `results` (an array of row objects, as `ask_full` returns in `rows`).
/// Errors only when `results` is not such an array; every array gets a chart, a table at worst.
pub fn suggest_chart(question: &str, sql: &str, results: &Value) -> Result<Value> {
    let all_rows = row_objects(results)?;
    let total_rows = all_rows.len();
    let rows = &all_rows[..total_rows.min(MAX_CHART_ROWS)];
    let columns = profile_columns(sql, rows);
    let plan = choose(question, sql, &columns, rows);
    let name = |i: Option<usize>| i.and_then(|i| columns.get(i)).map(|c| c.name.clone());
    let title = hints::clean_title(question).unwrap_or_else(|| fallback_title(&plan, &columns));
    let spec = vega::spec(&plan, &columns, rows, total_rows, &title);
    Ok(json!({
        "chart_type": plan.chart.as_str(),
        "x": name(plan.x),
        "y": name(plan.y),
        "series": name(plan.series),
        "title": title,
        "reason": plan.reason,
        "vega_lite": spec,
    }))
}

fn row_objects(results: &Value) -> Result<Vec<&Map<String, Value>>> {
    let hint = "Pass the rows of sqlchat.ask_full(...) (its rows field): a JSON array of objects, one per row.";
    let Value::Array(items) = results else {
        return Err(Error::InvalidArgument {
            what: format!("results must be a JSON array of row objects, not {}", json_kind(results)),
            hint: hint.to_string(),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(row) => Ok(row),
            other => Err(Error::InvalidArgument {
                what: format!("results[{i}] must be a row object, not {}", json_kind(other)),
                hint: hint.to_string(),
            }),
        })
        .collect()
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Profiles of every column, in select-list order when the SQL shows it (jsonb sorts keys, so the
/// rows alone do not keep it).
fn profile_columns(sql: &str, rows: &[&Map<String, Value>]) -> Vec<ColumnProfile> {
    let sql_lower = sql.to_lowercase();
    let collapsed = hints::collapse(sql);
    let time_parts = hints::time_part_aliases(sql);
    let ascending_key = hints::order_by_first_key(sql).filter(|(_, descending)| !descending).map(|(key, _)| key);
    let mut names = profile::column_names(rows);
    names.sort_by_key(|name| hints::word_position(&sql_lower, name).unwrap_or(usize::MAX));
    names
        .iter()
        .enumerate()
        .map(|(position, name)| {
            let mut column = profile::profile(name, rows, time_parts.contains(&name.to_lowercase()));
            // Vega-Lite cannot address a field with an empty name.
            if name.is_empty() {
                column.role = Role::Empty;
            }
            let ordered_by = ascending_key
                .as_deref()
                .is_some_and(|key| hints::key_names_column(key, &collapsed, name, Some(position + 1)));
            if column.role == Role::Measure && is_ranking(&column, rows.len(), ordered_by) {
                column.role = Role::Identifier;
            }
            column
        })
        .collect()
}

/// A column numbering the rows from 1 (a rank, ties allowed, or a row number) names rows rather
/// than measuring them.
fn is_ranking(column: &ColumnProfile, rows: usize, ordered_by: bool) -> bool {
    let numbers_rows = rows >= 3
        && column.all_integers
        && column.min == 1.0
        && column.max <= rows as f64
        && column.distinct * 2 >= rows;
    let rank_name = identifier_words(&column.name)
        .iter()
        .any(|t| ["rank", "rnk", "rn", "ranking", "position", "pos", "row", "place"].contains(&t.as_str()));
    numbers_rows && (rank_name || ordered_by)
}

fn choose(question_text: &str, sql: &str, columns: &[ColumnProfile], rows: &[&Map<String, Value>]) -> Plan {
    let question = &QuestionHints::read(question_text);
    let n = rows.len();
    if n == 0 {
        return Plan::table("The query returned no rows, so there is nothing to chart.");
    }
    let indices_with = |keep: &dyn Fn(&ColumnProfile) -> bool| -> Vec<usize> {
        columns.iter().enumerate().filter(|(_, c)| keep(c)).map(|(i, _)| i).collect()
    };
    let measures = order_measures(indices_with(&|c| c.role == Role::Measure), sql, question_text, columns);
    let times = indices_with(&|c| matches!(c.role, Role::Temporal(_)));
    // Categories that vary; a constant says nothing when there are several rows.
    let dims = indices_with(&|c| c.role == Role::Category && (n == 1 || c.distinct > 1));
    let repeated_dims: Vec<usize> = dims.iter().copied().filter(|&d| !columns[d].is_unique()).collect();
    let label = dims
        .iter()
        .copied()
        .find(|&d| columns[d].is_unique())
        .or_else(|| indices_with(&|c| c.role == Role::Identifier).first().copied());
    let col = |i: usize| &columns[i];

    if n == 1 {
        return match measures.as_slice() {
            [m] => Plan {
                y: Some(*m),
                ..Plan::new(
                    ChartType::Kpi,
                    format!("The result is a single value ({}), best shown as one big number.", col(*m).name),
                )
            },
            [] => Plan::table("The result is a single row without a numeric value, so a table shows it best."),
            _ => Plan::table(format!(
                "The result is a single row with {} numeric values, so a table shows them side by side.",
                measures.len()
            )),
        };
    }

    let Some(&measure) = measures.first() else {
        if let [d] = repeated_dims.as_slice() {
            let c = col(*d);
            if n >= MIN_COUNTED_ROWS && c.distinct <= MAX_BARS && c.distinct * 2 <= n {
                return bar(Plan {
                    x: Some(*d),
                    aggregate: Aggregate::Count,
                    ..Plan::new(ChartType::Bar, format!("There is no numeric column, but the {} values of \"{}\" repeat, so a bar chart counts the rows per value.", c.distinct, c.name))
                }, c, sql);
            }
        }
        return Plan::table("No column holds numbers to plot, so the rows are shown as a table.");
    };

    if let Some(&time) = times.first() {
        return time_chart(time, measure, &repeated_dims, columns, rows);
    }

    let too_many_labels = label.is_some_and(|l| col(l).distinct > MAX_BARS);
    if measures.len() >= 2
        && n >= 3
        && (question.relation || (label.is_none() && repeated_dims.is_empty()) || too_many_labels)
    {
        let other = measures[1];
        let colour = repeated_dims.iter().copied().find(|&d| col(d).distinct <= MAX_LINES);
        return Plan {
            x: Some(other),
            y: Some(measure),
            series: colour,
            ..Plan::new(
                ChartType::Scatter,
                format!(
                    "Two numeric columns (\"{}\" and \"{}\") over {n} rows: a scatter plot shows how they relate.",
                    col(other).name,
                    col(measure).name
                ),
            )
        };
    }

    if repeated_dims.len() >= 2 {
        if repeated_dims.len() > 2 {
            return Plan::table(format!(
                "The rows are split by {} categories at once, more than one chart can show clearly.",
                repeated_dims.len()
            ));
        }
        return two_category_chart(repeated_dims[0], repeated_dims[1], measure, columns, rows, sql);
    }

    match (label, repeated_dims.first()) {
        (Some(l), _) if col(l).distinct > MAX_BARS => Plan {
            x: Some(measure),
            ..Plan::new(ChartType::Histogram, format!("There are {} different \"{}\" values, too many for bars, so a histogram shows how \"{}\" is distributed.", col(l).distinct, col(l).name, col(measure).name))
        },
        (Some(l), _) => label_chart(l, measure, Aggregate::None, columns, sql, question, n),
        (None, Some(&d)) => label_chart(d, measure, Aggregate::Sum, columns, sql, question, n),
        (None, None) if n >= MIN_HISTOGRAM_ROWS || (question.distribution && n >= MIN_COUNTED_ROWS) => Plan {
            x: Some(measure),
            ..Plan::new(ChartType::Histogram, format!("One numeric column (\"{}\") over {n} rows: a histogram shows its distribution.", col(measure).name))
        },
        (None, None) => Plan::table(format!("Only {n} numbers without labels: too few for a distribution, so a table shows them.")),
    }
}

/// Measures with the one the result is about first: the ORDER BY key, else the one whose name the
/// question uses most, else the first in the select list.
fn order_measures(mut measures: Vec<usize>, sql: &str, question: &str, columns: &[ColumnProfile]) -> Vec<usize> {
    let sql_lower = hints::collapse(sql);
    let question = question.to_lowercase();
    let ordered_by = hints::order_by_first_key(sql).and_then(|(key, _)| {
        measures.iter().position(|&m| hints::key_names_column(&key, &sql_lower, &columns[m].name, Some(m + 1)))
    });
    let named_in_question = || {
        let score = |m: usize| {
            identifier_words(&columns[m].name).iter().filter(|t| t.len() >= 3 && question.contains(t.as_str())).count()
        };
        let best = measures.iter().map(|&m| score(m)).max().filter(|&s| s > 0)?;
        measures.iter().position(|&m| score(m) == best)
    };
    if let Some(position) = ordered_by.or_else(named_in_question) {
        let primary = measures.remove(position);
        measures.insert(0, primary);
    }
    measures
}

fn time_chart(
    time: usize,
    measure: usize,
    repeated_dims: &[usize],
    columns: &[ColumnProfile],
    rows: &[&Map<String, Value>],
) -> Plan {
    let (t, m) = (&columns[time], &columns[measure]);
    // Cyclic buckets (hour, weekday, month of year) by a many-valued category form a grid, best
    // read as a heat map; along real time, lines stay readable for longer.
    let max_lines = match t.role {
        Role::Temporal(TimeKind::Bucket | TimeKind::MonthName) => MAX_BAR_SERIES,
        _ => MAX_LINES,
    };
    if let Some(&many) = repeated_dims.iter().find(|&&d| columns[d].distinct > max_lines) {
        return Plan {
            x: Some(time),
            y: Some(measure),
            series: Some(many),
            aggregate: aggregate_if_repeated(rows, &columns[time].name, Some(&columns[many].name)),
            ..Plan::new(ChartType::Heatmap, format!("\"{}\" over \"{}\" for {} different \"{}\" values, too many lines for one chart, so a heat map shows them as coloured cells.", m.name, t.name, columns[many].distinct, columns[many].name))
        };
    }
    let series = repeated_dims.first().copied();
    let aggregate = aggregate_if_repeated(rows, &t.name, series.map(|s| columns[s].name.as_str()));
    let mut reason = format!(
        "\"{}\" is a time column and \"{}\" a measure, so a line chart shows how it changes over time",
        t.name, m.name
    );
    if let Some(s) = series {
        reason.push_str(&format!(", one line per \"{}\"", columns[s].name));
    }
    if aggregate == Aggregate::Sum {
        reason.push_str(" (rows at the same time are added up)");
    }
    reason.push('.');
    Plan { x: Some(time), y: Some(measure), series, aggregate, ..Plan::new(ChartType::Line, reason) }
}

fn two_category_chart(
    a: usize,
    b: usize,
    measure: usize,
    columns: &[ColumnProfile],
    rows: &[&Map<String, Value>],
    sql: &str,
) -> Plan {
    // The category with more values runs along the axis; the other splits it.
    let (x, series) = if columns[b].distinct > columns[a].distinct { (b, a) } else { (a, b) };
    let (xc, sc, m) = (&columns[x], &columns[series], &columns[measure]);
    let aggregate = aggregate_if_repeated(rows, &xc.name, Some(&sc.name));
    if sc.distinct > MAX_BAR_SERIES {
        return Plan {
            x: Some(x),
            y: Some(measure),
            series: Some(series),
            aggregate,
            ..Plan::new(ChartType::Heatmap, format!("\"{}\" by two categories with many values each (\"{}\" and \"{}\"): a heat map shows every combination as a coloured cell.", m.name, xc.name, sc.name))
        };
    }
    let stacked = is_additive(&m.name) && !m.has_negative;
    let (chart, why) = if stacked {
        (ChartType::StackedBar, "its parts add up, so the bars are stacked")
    } else {
        (ChartType::GroupedBar, "it does not add up across groups, so the bars stand side by side")
    };
    let reason = format!("\"{}\" by \"{}\" and by \"{}\" ({} values): {why}.", m.name, xc.name, sc.name, sc.distinct);
    let aggregate = if stacked { Aggregate::Sum } else { aggregate };
    bar(Plan { x: Some(x), y: Some(measure), series: Some(series), aggregate, ..Plan::new(chart, reason) }, xc, sql)
}

/// One label column and a measure: pie or donut for a few parts of a whole, else bars.
fn label_chart(
    label: usize,
    measure: usize,
    aggregate: Aggregate,
    columns: &[ColumnProfile],
    sql: &str,
    question: &QuestionHints,
    rows: usize,
) -> Plan {
    let (l, m) = (&columns[label], &columns[measure]);
    let parts = l.distinct;
    let all_positive = m.non_null == rows && m.min > 0.0;
    let shares = (m.sum - 100.0).abs() <= 1.0 && m.max <= 100.0 || (m.sum - 1.0).abs() <= 0.01 && m.max <= 1.0;
    let whole = shares || (question.share && is_additive(&m.name) && !hints::has_top_level_limit(sql));
    if (2..=MAX_PIE_PARTS).contains(&parts) && all_positive && whole {
        let pie = if question.pie || question.donut { question.pie && !question.donut } else { shares };
        let (chart, why) = if pie {
            (ChartType::Pie, "a pie shows each part's share")
        } else {
            (ChartType::Donut, "a donut shows each part's share of the total")
        };
        return Plan {
            x: Some(label),
            y: Some(measure),
            aggregate,
            ..Plan::new(chart, format!("{parts} positive parts of a whole (\"{}\" by \"{}\"): {why}.", m.name, l.name))
        };
    }
    let mut reason = format!("\"{}\" compared across {parts} \"{}\" values: a bar chart, sorted", m.name, l.name);
    if m.has_negative {
        reason.push_str(", negative values in another colour");
    }
    if aggregate == Aggregate::Sum {
        reason.push_str(", rows with the same label added up");
    }
    reason.push('.');
    bar(Plan { x: Some(label), y: Some(measure), aggregate, ..Plan::new(ChartType::Bar, reason) }, l, sql)
}

/// Finishes a bar plan: sideways for long or many labels, ordered as the SQL orders the labels or
/// else by value.
fn bar(mut plan: Plan, label: &ColumnProfile, sql: &str) -> Plan {
    plan.horizontal = label.max_len > 15 || label.mean_len > 10.0 || label.distinct > 20;
    if plan.horizontal && plan.chart == ChartType::Bar {
        plan.chart = ChartType::HorizontalBar;
        plan.reason = plan.reason.replacen("a bar chart", "a horizontal bar chart (the labels are long or many)", 1);
    }
    if let Some((key, descending)) = hints::order_by_first_key(sql) {
        if hints::key_names_column(&key, &hints::collapse(sql), &label.name, None) {
            plan.label_order = if descending { LabelOrder::Descending } else { LabelOrder::Ascending };
        }
    }
    plan
}

/// Sum when several rows share an x position (and series), so marks do not overlap.
fn aggregate_if_repeated(rows: &[&Map<String, Value>], x: &str, series: Option<&str>) -> Aggregate {
    let mut seen = HashSet::with_capacity(rows.len());
    let key = |row: &Map<String, Value>, name: &str| row.get(name).map(profile::display_text).unwrap_or_default();
    let repeated = rows.iter().any(|row| !seen.insert((key(row, x), series.map(|s| key(row, s)))));
    if repeated {
        Aggregate::Sum
    } else {
        Aggregate::None
    }
}

/// Measures whose values add up to something meaningful (counts, totals, amounts), as opposed to
/// averages, rates, prices and the like.
fn is_additive(name: &str) -> bool {
    const EXACT: &[&str] =
        &["min", "max", "per", "age", "std", "var", "rank", "rate", "index", "change", "diff", "growth"];
    const PREFIXES: &[&str] = &[
        "avg",
        "average",
        "mean",
        "median",
        "ratio",
        "rating",
        "price",
        "percent",
        "pct",
        "density",
        "score",
        "temperature",
        "minimum",
        "maximum",
        "stddev",
        "variance",
    ];
    !identifier_words(name).iter().any(|t| EXACT.contains(&t.as_str()) || PREFIXES.iter().any(|p| t.starts_with(p)))
}

fn fallback_title(plan: &Plan, columns: &[ColumnProfile]) -> String {
    let name = |i: Option<usize>| i.and_then(|i| columns.get(i)).map(|c| c.name.as_str());
    match (name(plan.y), name(plan.x)) {
        (Some(y), Some(x)) if plan.chart == ChartType::Scatter => format!("{y} vs {x}"),
        (Some(y), Some(x)) => format!("{y} by {x}"),
        (Some(y), None) => y.to_string(),
        (None, Some(x)) => x.to_string(),
        (None, None) => "Query result".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_an_error_only_when_not_rows() {
        for bad in [json!({"a": 1}), json!("rows"), json!(null), json!([1, 2]), json!([{"a": 1}, null])] {
            assert!(matches!(suggest_chart("q", "", &bad), Err(Error::InvalidArgument { .. })), "{bad}");
        }
        let empty = suggest_chart("q", "", &json!([])).expect("empty array is fine");
        assert_eq!(empty["chart_type"], "table");
        assert!(empty["reason"].as_str().unwrap_or("").contains("no rows"));
    }

    #[test]
    fn additive_names() {
        assert!(is_additive("total_amount") && is_additive("num_orders") && is_additive("count"));
        assert!(!is_additive("avg_price") && !is_additive("success_rate") && !is_additive("averageRating"));
    }

    #[test]
    fn huge_results_are_capped() {
        let rows: Vec<Value> = (0..20_000).map(|i| json!({"id": i, "amount": (i % 97) as f64 * 1.5})).collect();
        let out = suggest_chart("amounts", "", &Value::Array(rows)).expect("chart");
        assert_eq!(out["chart_type"], "histogram");
        let spec = &out["vega_lite"];
        assert_eq!(spec["data"]["values"].as_array().map(Vec::len), Some(MAX_CHART_ROWS));
        assert!(spec["description"].as_str().unwrap_or("").contains("5,000 of 20,000"));
    }
}

/// Messages asking the model for a better chart title (the optional refinement of a local suggestion).
pub fn title_messages(question: &str, chart: &Value) -> Vec<crate::openai::Message> {
    let field = |k: &str| chart.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    crate::prompt::chart_title_messages(question, &field("chart_type"), &field("x"), &field("y"), &field("title"))
}

/// Puts a model's title into the chart (and its Vega-Lite spec) when the reply is one short line;
/// anything else leaves the local title. True when the title changed.
pub fn apply_title(chart: &mut Value, reply: &str) -> bool {
    let title = reply.trim().trim_matches(|c| c == '"' || c == '\'' || c == '*' || c == '#').trim();
    if title.is_empty() || title.contains('\n') || title.chars().count() > 80 {
        return false;
    }
    if let Some(obj) = chart.as_object_mut() {
        obj.insert("title".into(), Value::String(title.to_string()));
        if let Some(spec) = obj.get_mut("vega_lite").and_then(Value::as_object_mut) {
            if spec.contains_key("title") {
                spec.insert("title".into(), Value::String(title.to_string()));
            }
        }
        return true;
    }
    false
}

#[cfg(test)]
mod refinement_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_short_reply_becomes_the_title() {
        let mut chart = suggest_chart(
            "revenue by month",
            "",
            &json!([{"month": "2024-01-01", "revenue": 1}, {"month": "2024-02-01", "revenue": 2}]),
        )
        .unwrap();
        assert!(apply_title(&mut chart, "\"Monthly revenue, 2024\"\n"));
        assert_eq!(chart["title"], "Monthly revenue, 2024");
        assert!(!apply_title(&mut chart, "Sure! Here is a title:\nMonthly revenue"));
        assert!(!apply_title(&mut chart, ""));
        assert_eq!(chart["title"], "Monthly revenue, 2024");
        assert_eq!(title_messages("q", &chart).len(), 2);
    }
}
