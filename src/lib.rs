//! sqlchat: ask your PostgreSQL database questions in plain language.

use pgrx::prelude::*;

mod api;
mod catalog;
mod compat;
mod error;
mod exec;
mod gucs;
mod host;
mod jobs;
mod llm;
mod ops;
mod setup;
mod store;
mod subxact;
mod teach;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
// Operations: the quota table and the views over the statistics functions.
extension_sql_file!("../sql/ops.sql", name = "ops", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    catalog::register_invalidation();
    exec::trust::install_hooks();
    ops::init();
    // ---- background asks: shared memory, launcher, DROP DATABASE hook (when preloaded) ----
    jobs::init();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
