//! Rows returned by a generated query, as plain JSON values.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultColumn {
    pub name: String,
    /// format_type() of the column's type.
    pub type_name: String,
    /// pg_type.typcategory (N numeric, D date/time, S string, B boolean...).
    pub category: char,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultSet {
    pub columns: Vec<ResultColumn>,
    /// One Vec per row, in column order. Numbers and booleans are JSON numbers and booleans,
    /// json/jsonb values are embedded, arrays and composite values are JSON arrays and objects (as
    /// PostgreSQL's array_to_json and row_to_json make them), everything else is its PostgreSQL text
    /// form; NULL is null.
    pub rows: Vec<Vec<Value>>,
    /// More rows existed than the row cap allowed.
    pub truncated: bool,
    /// Columns whose values may derive from a private column: they never leave the database (the
    /// answer is worded without them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private: Vec<usize>,
}

/// What stands for a private column's value wherever an answer is worded.
pub const PRIVATE_VALUE: &str = "(private)";

impl ResultSet {
    /// The result as it may be worded: the values of private columns replaced.
    pub fn masked(&self) -> std::borrow::Cow<'_, ResultSet> {
        if self.private.is_empty() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut masked = self.clone();
        for row in &mut masked.rows {
            for &c in &self.private {
                if let Some(v) = row.get_mut(c) {
                    *v = Value::String(PRIVATE_VALUE.into());
                }
            }
        }
        std::borrow::Cow::Owned(masked)
    }

    /// Object keys for each column: the column name, made unique (`count`, `count_2`) because SQL
    /// allows duplicate output names and JSON objects do not.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let mut key = c.name.clone();
            let mut n = 2;
            while keys.contains(&key) {
                key = format!("{}_{}", c.name, n);
                n += 1;
            }
            keys.push(key);
        }
        keys
    }

    /// The rows as an array of objects (what `ask_full` returns in `rows`).
    pub fn to_objects(&self) -> Value {
        let keys = self.keys();
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let mut m = Map::new();
                    for (k, v) in keys.iter().zip(row.iter()) {
                        m.insert(k.clone(), v.clone());
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    }

    /// The columns in the query's order, as `ask_full` returns them in `columns`: each one's key in
    /// the row objects and its PostgreSQL type name.
    pub fn columns_json(&self) -> Value {
        let keys = self.keys();
        Value::Array(
            keys.into_iter()
                .zip(&self.columns)
                .map(|(name, c)| serde_json::json!({"name": name, "type": c.type_name}))
                .collect(),
        )
    }

    /// A bounded sample of the rows as compact text for a prompt: at most `max_rows` rows and about
    /// `max_bytes` bytes, cutting at a row boundary.
    pub fn sample_for_prompt(&self, max_rows: usize, max_bytes: usize) -> (String, usize) {
        let keys = self.keys();
        let mut out = String::new();
        out.push_str(&keys.join(" | "));
        out.push('\n');
        let mut shown = 0;
        for row in self.rows.iter().take(max_rows) {
            let line: Vec<String> = row
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "NULL".to_string(),
                    other => other.to_string(),
                })
                .collect();
            let line = line.join(" | ");
            if out.len() + line.len() + 1 > max_bytes {
                break;
            }
            out.push_str(&line);
            out.push('\n');
            shown += 1;
        }
        (out, shown)
    }
}

/// Turns one PostgreSQL value in text form into JSON by its type category and name.
pub fn json_value(text: Option<&str>, type_name: &str, category: char) -> Value {
    let Some(text) = text else { return Value::Null };
    match (category, type_name) {
        (_, "json") | (_, "jsonb") => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
        ('B', _) => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            other => Value::String(other.to_string()),
        },
        ('N', _)
            if !type_name.starts_with("money") && !type_name.starts_with("oid") && !type_name.starts_with("reg") =>
        {
            if let Ok(i) = text.parse::<i64>() {
                Value::from(i)
            } else if let Ok(f) = text.parse::<f64>() {
                if f.is_finite() {
                    serde_json::Number::from_f64(f)
                        .map(Value::Number)
                        .unwrap_or_else(|| Value::String(text.to_string()))
                } else {
                    Value::String(text.to_string())
                }
            } else {
                Value::String(text.to_string())
            }
        }
        _ => Value::String(text.to_string()),
    }
}

/// PostgreSQL's condition name of a SQLSTATE of a failed generated statement (of its class when
/// sqlchat has no hint of its own for it).
pub fn condition_name(sqlstate: &str) -> &'static str {
    match crate::error::hint::query_hint(sqlstate).condition {
        "" => "error",
        name => name,
    }
}

/// What stands for the message of an ERROR raised while a statement read rows whose values must
/// stay in the database: its SQLSTATE and condition name only. PostgreSQL prints the values it
/// could not convert or compare in many ways (quoted, bare, inside names), and the model writes
/// the statement, so no part of the rendered text can be vouched for.
pub fn withheld_message(sqlstate: &str) -> String {
    format!(
        "{} (SQLSTATE {sqlstate}) while reading rows; the message is withheld because it may quote values of private columns or rows",
        condition_name(sqlstate)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(name: &str) -> ResultColumn {
        ResultColumn { name: name.into(), type_name: "bigint".into(), category: 'N' }
    }

    #[test]
    fn duplicate_names_get_suffixes() {
        let rs = ResultSet {
            columns: vec![col("count"), col("count"), col("x")],
            rows: vec![vec![json!(1), json!(2), json!(3)]],
            truncated: false,
            private: vec![],
        };
        assert_eq!(rs.to_objects(), json!([{"count": 1, "count_2": 2, "x": 3}]));
    }

    #[test]
    fn values_by_type() {
        assert_eq!(json_value(Some("42"), "bigint", 'N'), json!(42));
        assert_eq!(json_value(Some("4.50"), "numeric", 'N'), json!(4.5));
        assert_eq!(json_value(Some("NaN"), "numeric", 'N'), json!("NaN"));
        assert_eq!(json_value(Some("t"), "boolean", 'B'), json!(true));
        assert_eq!(json_value(Some("{\"a\":1}"), "jsonb", 'U'), json!({"a": 1}));
        assert_eq!(json_value(Some("2024-01-01"), "date", 'D'), json!("2024-01-01"));
        assert_eq!(json_value(None, "date", 'D'), Value::Null);
        assert_eq!(json_value(Some("$1.00"), "money", 'N'), json!("$1.00"));
    }

    #[test]
    fn sample_is_bounded() {
        let rs = ResultSet {
            columns: vec![col("n")],
            rows: (0..100).map(|i| vec![json!(i)]).collect(),
            ..Default::default()
        };
        let (text, shown) = rs.sample_for_prompt(20, 4096);
        assert_eq!(shown, 20);
        assert!(text.lines().count() == 21);
        let (_, shown) = rs.sample_for_prompt(20, 10);
        assert!(shown < 20);
    }

    #[test]
    fn withheld_messages_name_only_the_condition() {
        assert_eq!(condition_name("22012"), "division_by_zero");
        assert_eq!(condition_name("22P02"), "data_exception");
        assert_eq!(condition_name("P0001"), "plpgsql_error");
        assert_eq!(condition_name("HV000"), "error");
        let m = withheld_message("22P02");
        assert!(m.starts_with("data_exception (SQLSTATE 22P02) while reading rows"), "{m}");
    }
}
