//! The facts `sqlchat.check_setup()` judges (sqlchat_core::setup): settings, where secrets are
//! stored, and whether the gateway answers.

use crate::gucs;
use crate::llm;
use pgrx::prelude::*;
use sqlchat_core::setup::{self, Facts, Finding};

const SECRETS: [&str; 2] = ["sqlchat.api_key", "sqlchat.auth_header"];

/// Role and database settings holding a secret: (setting, the ALTER target that stores it, such as
/// `ROLE x IN DATABASE d`). pg_db_role_setting is readable by every role.
const ROLE_SETTINGS_SQL: &str = "SELECT split_part(opt, '=', 1), \
       concat_ws(' ', 'ROLE ' || quote_ident(r.rolname), \
                      CASE WHEN r.rolname IS NOT NULL AND d.datname IS NOT NULL THEN 'IN' END, \
                      'DATABASE ' || quote_ident(d.datname)) \
     FROM pg_db_role_setting s \
     LEFT JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase, \
     unnest(s.setconfig) AS opt \
     WHERE split_part(opt, '=', 1) = ANY ($1)";

const FILE_SETTINGS_SQL: &str =
    "SELECT name, sourcefile || ':' || sourceline FROM pg_file_settings WHERE name = ANY ($1)";

/// Entries of sqlchat.allowed_functions that name no function (case as the policy compares).
const UNKNOWN_FUNCTIONS_SQL: &str = "SELECT a FROM unnest($1::text[]) AS a WHERE NOT EXISTS ( \
       SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
       WHERE lower(p.proname) = lower(CASE WHEN a LIKE '%.%' THEN split_part(a, '.', 2) ELSE a END) \
         AND lower(n.nspname) = lower(CASE WHEN a LIKE '%.%' THEN split_part(a, '.', 1) ELSE 'pg_catalog' END))";

pub fn check() -> Vec<Finding> {
    let mut facts = Facts {
        preloaded: gucs::preloaded(),
        caller_is_superuser: unsafe { pgrx::pg_sys::superuser() },
        api_base: gucs::api_base(),
        key: Some(gucs::key_source()),
        model: gucs::model(),
        engine: gucs::engine_setting().to_string(),
        rls_bypass: gucs::rls_bypass_setting().to_string(),
        send_rows_sample: gucs::send_rows(),
        private_columns: crate::teach::private_count(),
        ..Facts::default()
    };
    let names: Vec<String> = SECRETS.iter().map(|s| s.to_string()).collect();
    let allowed = gucs::allowed_functions();
    let stored = gucs::with_search_path(gucs::SYSTEM_SEARCH_PATH, || {
        Spi::connect(|c| {
            let pairs = |sql: &str,
                         args: &[pgrx::datum::DatumWithOid]|
             -> Result<Vec<(String, String)>, pgrx::spi::Error> {
                let mut out = Vec::new();
                for row in c.select(sql, None, args)? {
                    out.push((row.get::<String>(1)?.unwrap_or_default(), row.get::<String>(2)?.unwrap_or_default()));
                }
                Ok(out)
            };
            let in_roles = pairs(ROLE_SETTINGS_SQL, &[names.clone().into()])?;
            let readable = c
                .select("SELECT has_table_privilege('pg_catalog.pg_file_settings', 'SELECT')", None, &[])?
                .first()
                .get_one::<bool>()?
                .unwrap_or(false);
            let in_files = if readable { Some(pairs(FILE_SETTINGS_SQL, &[names.clone().into()])?) } else { None };
            let mut unknown = Vec::new();
            if !allowed.is_empty() {
                for row in c.select(UNKNOWN_FUNCTIONS_SQL, None, &[allowed.clone().into()])? {
                    unknown.push(row.get::<String>(1)?.unwrap_or_default());
                }
            }
            Ok::<_, pgrx::spi::Error>((in_roles, in_files, unknown))
        })
    });
    match stored {
        Ok((in_roles, in_files, unknown)) => {
            facts.secrets_in_role_settings = in_roles;
            facts.secrets_in_files = in_files;
            facts.unknown_allowed_functions = unknown;
        }
        Err(e) => pgrx::warning!("sqlchat: check_setup could not read the catalog: {e}"),
    }
    if facts.api_base.is_some() {
        // Texts from the gateway reach the result: scrubbed like any error.
        let secrets = crate::error::secrets();
        match llm::check_settings() {
            Err(e) if e.is_cancel() => crate::error::raise(e),
            Err(e) => facts.gateway_settings_problem = Some(secrets.scrub(&e.to_string())),
            Ok(()) => {
                facts.gateway = Some(match llm::list_models() {
                    Err(e) if e.is_cancel() => crate::error::raise(e),
                    r => r.map_err(|e| secrets.scrub(&e.to_string())),
                })
            }
        }
    }
    setup::findings(&facts)
}
