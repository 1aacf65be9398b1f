//! The pipeline's side effects in a backend: gateway calls, sandboxed execution, the cache.

use crate::exec::{self, Limits};
use crate::llm;
use crate::store::{cache, Caller};
use sqlchat_core::error::Result;
use sqlchat_core::openai::{Message, Purpose};
use sqlchat_core::pipeline::{ExecFailure, Host};
use sqlchat_core::result::ResultSet;

pub struct Backend {
    pub limits: Limits,
    pub role: Caller,
    pub model: String,
    /// Seconds a cached statement lives; None when the cache is off.
    pub cache_ttl_s: Option<i32>,
    /// Columns whose values never reach the gateway.
    pub private: crate::teach::private::PrivateSet,
}

impl Host for Backend {
    fn chat(&mut self, purpose: Purpose, messages: &[Message], temperature: f64) -> Result<String> {
        llm::chat(purpose, messages, temperature)
    }

    fn execute(&mut self, sql: &str) -> std::result::Result<ResultSet, ExecFailure> {
        // operations: time and progress of each statement
        crate::ops::progress::notice("running the SQL");
        let started = std::time::Instant::now();
        let mut trace = exec::Trace::default();
        let mut result = exec::run_traced(sql, self.limits, &mut trace);
        self.private.apply(&trace, sql, &mut result);
        crate::ops::meter::sql_ran(started.elapsed());
        match &result {
            Ok(rs) => crate::ops::progress::notice(&format!("the SQL returned {} row(s)", rs.rows.len())),
            Err(f) => crate::ops::progress::notice(&format!("the SQL failed (SQLSTATE {})", f.sqlstate)),
        }
        result
    }

    fn tables_chosen(&mut self, engine: &'static str, tables: &[String]) {
        crate::ops::progress::tables_chosen(engine, tables);
    }

    fn cached_sql(&mut self, key: &str) -> Option<String> {
        self.cache_ttl_s?;
        cache::get(key, &self.role)
    }

    fn store_sql(&mut self, key: &str, sql: &str) {
        if let Some(ttl) = self.cache_ttl_s {
            cache::put(key, &self.role, &self.model, sql, ttl);
        }
    }

    /// A pending cancel or timeout raises its ERROR here, unwinding out of the core's passes.
    fn check_interrupts(&mut self) {
        pgrx::check_for_interrupts!();
    }
}
