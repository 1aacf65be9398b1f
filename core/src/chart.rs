//! Chart recommendation. (stub: being written)

use serde_json::{json, Value};

pub fn suggest_chart(_question: &str, _sql: &str, _results: &Value) -> crate::Result<Value> {
    Ok(json!({"chart_type": "table"}))
}
