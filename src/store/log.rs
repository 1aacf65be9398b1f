//! The interaction log, `sqlchat.log`: rows inserted in batches by a background worker (from
//! the records backends handed over in shared memory, src/ops/log/), and removed after
//! sqlchat.log_retention. Readers go through the table's row-level security policy (sql/log.sql).

use super::as_owner;
use pgrx::prelude::*;
use sqlchat_core::ops::log::{batch, recordset_columns, COLUMNS};

fn insert_sql() -> String {
    let targets: Vec<&str> = COLUMNS.iter().map(|(n, _)| if *n == "asked_at_us" { "asked_at" } else { n }).collect();
    let values: Vec<String> = COLUMNS
        .iter()
        .map(|(n, _)| {
            if *n == "asked_at_us" {
                "pg_catalog.to_timestamp(r.asked_at_us::pg_catalog.float8 OPERATOR(pg_catalog./) 1000000)".to_string()
            } else {
                format!("r.{n}")
            }
        })
        .collect();
    format!(
        "INSERT INTO sqlchat.log ({}) SELECT {} FROM pg_catalog.jsonb_to_recordset($1::pg_catalog.jsonb) AS r({})",
        targets.join(", "),
        values.join(", "),
        recordset_columns()
    )
}

/// Inserts rows (JSON objects of `LogRow`) in one statement; None when it failed (a WARNING
/// says why) and nothing was inserted.
pub fn insert(rows: &[Vec<u8>]) -> Option<usize> {
    let sql = insert_sql();
    let json = batch(rows);
    as_owner("writing sqlchat.log", || {
        Spi::connect_mut(|c| c.update(&sql, None, &[json.as_str().into()]).map(|t| t.len()))
    })
}
