//! Private columns in an ask: their values never reach the gateway. The statement's own analysis
//! (exec::Trace) says whether it reads one; then every output column is marked private in the
//! result (the core words the answer without any value: a count, a filter or a join over a
//! private column can spell its values as well as the column itself), and a failed statement is
//! marked so that the core withholds the message of an error raised while it ran
//! (`result::withheld_message`).

use crate::exec::Trace;
use sqlchat_core::catalog::Catalog;
use sqlchat_core::pipeline::ExecFailure;
use sqlchat_core::result::ResultSet;
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
    pub fn apply(&self, trace: &Trace, result: &mut Result<ResultSet, ExecFailure>) {
        if self.is_empty() || !self.read_by(trace) {
            return;
        }
        match result {
            Ok(rs) => rs.private = (0..rs.columns.len()).collect(),
            Err(f) => f.read_private = true,
        }
    }
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
