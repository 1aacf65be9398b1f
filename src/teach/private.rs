//! Private columns in an ask: their values never reach the gateway. The statement's own analysis
//! (exec::Trace) says whether it reads one; then the output columns that may carry such values
//! are marked in the result (the core words answers without them), and a failed statement's error
//! text loses what it quotes that the statement does not hold (values read from the rows).

use crate::exec::{OutputOrigin, Trace};
use pgrx::pg_sys;
use sqlchat_core::catalog::Catalog;
use sqlchat_core::pipeline::ExecFailure;
use sqlchat_core::result::{ResultSet, PRIVATE_VALUE};
use std::collections::HashSet;
use std::sync::Arc;

/// Private columns by relation oid and attribute number.
#[derive(Debug, Clone, Default)]
pub struct PrivateSet {
    columns: HashSet<(u32, i16)>,
    tables: HashSet<u32>,
}

impl PrivateSet {
    pub fn new(columns: impl IntoIterator<Item = (u32, i16)>) -> PrivateSet {
        let columns: HashSet<(u32, i16)> = columns.into_iter().collect();
        let tables = columns.iter().map(|(t, _)| *t).collect();
        PrivateSet { columns, tables }
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Whether the statement read a private column (a whole-row reference included).
    fn read_by(&self, trace: &Trace) -> bool {
        trace.reads.iter().any(|r| {
            let relid = r.relid.to_u32();
            self.tables.contains(&relid) && r.columns.iter().any(|&a| a == 0 || self.columns.contains(&(relid, a)))
        })
    }

    /// Marks what of a run must not leave the database.
    pub fn apply(&self, trace: &Trace, sql: &str, result: &mut Result<ResultSet, ExecFailure>) {
        if self.is_empty() || !self.read_by(trace) {
            return;
        }
        match result {
            Ok(rs) => {
                let known = trace.origins.len() == rs.columns.len();
                rs.private = (0..rs.columns.len()).filter(|&i| !known || self.may_carry(trace.origins[i])).collect();
            }
            Err(f) => f.message = redact(&f.message, sql),
        }
    }

    /// Whether an output column may carry a private value: a private column itself, a column of a
    /// view (its definition may read one), or any expression but a count.
    fn may_carry(&self, origin: OutputOrigin) -> bool {
        match origin {
            OutputOrigin::Count => false,
            OutputOrigin::Computed => true,
            OutputOrigin::Column(rel, att) => {
                self.columns.contains(&(rel.to_u32(), att))
                    || !matches!(unsafe { pg_sys::get_rel_relkind(rel) } as u8, b'r' | b'p' | b'm' | b'f')
            }
        }
    }
}

/// An error text with every double-quoted part that the statement does not contain replaced:
/// PostgreSQL quotes the values it could not convert or compare.
fn redact(message: &str, sql: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        let Some(len) = rest[open + 1..].find('"') else { break };
        let quoted = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..=open]);
        out.push_str(if sql.contains(quoted) { quoted } else { PRIVATE_VALUE });
        out.push('"');
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The caller's catalog with nothing of a private column's values in it: no enum labels, no
/// default. The same catalog when no visible column is private.
pub fn without_values(catalog: &Arc<Catalog>, private: &[(String, String, String)]) -> Arc<Catalog> {
    let is_private = |schema: &str, table: &str, column: &str| {
        private.iter().any(|(s, t, c)| s == schema && t == table && c == column)
    };
    let touched = catalog.tables.iter().any(|t| t.columns.iter().any(|c| is_private(&t.schema, &t.name, &c.name)));
    if !touched {
        return Arc::clone(catalog);
    }
    let mut copy = (**catalog).clone();
    for t in &mut copy.tables {
        for c in &mut t.columns {
            if is_private(&t.schema, &t.name, &c.name) {
                c.enum_labels.clear();
                c.default = None;
                c.default_refs.clear();
            }
        }
    }
    Arc::new(copy)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    #[pgrx::pg_test]
    fn quoted_values_not_in_the_statement_are_redacted() {
        assert_eq!(
            redact("invalid input syntax for type integer: \"123-45-6789\"", "SELECT ssn::int FROM people"),
            "invalid input syntax for type integer: \"(private)\""
        );
        assert_eq!(
            redact("column \"sssn\" does not exist", "SELECT sssn FROM people"),
            "column \"sssn\" does not exist"
        );
        assert_eq!(redact("unterminated \"x", "SELECT 1"), "unterminated \"x");
    }
}
