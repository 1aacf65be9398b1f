//! The settings a job runs with: every setting the submitting session could change, captured at
//! submit with its value there (what `ask_full` would have seen: `ALTER ROLE/DATABASE ... SET`
//! values from login, `SET`s, custom settings that policies read), applied in the worker for the
//! job's duration only.

use crate::compat;
use pgrx::pg_sys;
use sqlchat_core::jobs::{travels, SettingContext, Snapshot};
use std::collections::HashSet;
use std::ffi::{CStr, CString};

/// The session's settings that travel with a job.
pub fn capture() -> Snapshot {
    let mut values = Vec::new();
    unsafe {
        for var in compat::guc_variables() {
            let context = match (*var).context {
                pg_sys::GucContext::PGC_USERSET => SettingContext::User,
                pg_sys::GucContext::PGC_SUSET => SettingContext::Superuser,
                _ => SettingContext::Fixed,
            };
            let transaction_bound = (*var).flags as u32 & pg_sys::GUC_NO_RESET_ALL != 0;
            let name = CStr::from_ptr((*var).name);
            let Ok(name_text) = name.to_str() else { continue };
            if !travels(name_text, context, transaction_bound) {
                continue;
            }
            if let Some(value) = value_of(var, name) {
                values.push((name_text.to_string(), value));
            }
        }
    }
    Snapshot(values)
}

/// A setting's value as text that reads back exactly: integers in their base unit, reals in full
/// precision (PostgreSQL's own display rounds them to six digits).
unsafe fn value_of(var: *mut pg_sys::config_generic, name: &CStr) -> Option<String> {
    if (*var).vartype == pg_sys::config_type::PGC_REAL {
        let real = var.cast::<pg_sys::config_real>();
        return (*real).variable.as_ref().map(|v| v.to_string());
    }
    let value = pg_sys::GetConfigOption(name.as_ptr(), true, false);
    (!value.is_null()).then(|| CStr::from_ptr(value).to_string_lossy().into_owned())
}

/// Applies a job's settings at a new GUC nest level and returns it; `restore` undoes them all. A
/// setting the worker cannot take (a library's setting that is no longer defined, a value that
/// is no longer valid) is skipped, as the server log says at DEBUG1. Custom settings the worker
/// has and the session had not (from the worker's own role settings, say) are empty for the job:
/// a policy reading one must not see a value the submitting role never had.
pub fn apply(snapshot: &Snapshot) -> i32 {
    let nest_level = unsafe { pg_sys::NewGUCNestLevel() };
    for (name, value) in &snapshot.0 {
        set(name, value);
    }
    let captured: HashSet<String> = snapshot.0.iter().map(|(name, _)| name.to_ascii_lowercase()).collect();
    for name in custom_settings() {
        if !captured.contains(&name.to_ascii_lowercase()) {
            set(&name, "");
        }
    }
    nest_level
}

fn set(name: &str, value: &str) {
    let (Ok(name), Ok(value)) = (CString::new(name), CString::new(value)) else { return };
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            pg_sys::DEBUG1 as i32,
            false,
        );
    }
}

/// Names of the custom (placeholder) settings this process has.
fn custom_settings() -> Vec<String> {
    compat::guc_variables()
        .into_iter()
        .filter(|&var| unsafe { (*var).flags as u32 & pg_sys::GUC_CUSTOM_PLACEHOLDER != 0 })
        .map(|var| unsafe { CStr::from_ptr((*var).name).to_string_lossy().into_owned() })
        .collect()
}

/// Back to the worker's own settings.
pub fn restore(nest_level: i32) {
    unsafe { pg_sys::AtEOXact_GUC(false, nest_level) };
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    fn setting(name: &str) -> Option<String> {
        Spi::get_one_with_args::<String>("SELECT pg_catalog.current_setting($1, true)", &[name.into()]).ok().flatten()
    }

    #[pg_test]
    fn captured_settings_come_back_exactly() {
        Spi::run("SET TimeZone = 'Asia/Tokyo'").unwrap();
        Spi::run("SET statement_timeout = '1500ms'").unwrap();
        Spi::run("SET sqlchat.summary_temperature = 0.123456789").unwrap();
        Spi::run("SET app.tenant = 'captured'").unwrap();
        let snapshot = capture();
        let value = |name: &str| snapshot.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(value("statement_timeout").as_deref(), Some("1500"), "base unit, reads back exactly");
        assert_eq!(value("sqlchat.summary_temperature").as_deref(), Some("0.123456789"), "full precision");
        for connection_or_transaction in ["application_name", "client_encoding", "transaction_isolation", "role"] {
            assert_eq!(value(connection_or_transaction), None, "{connection_or_transaction}");
        }
        assert_eq!(value("sqlchat.api_key"), None, "server configuration only");
        Spi::run("RESET TimeZone").unwrap();
        Spi::run("RESET statement_timeout").unwrap();
        Spi::run("RESET sqlchat.summary_temperature").unwrap();
        Spi::run("SET app.tenant = 'later'").unwrap();
        let nest_level = apply(&snapshot);
        assert_eq!(setting("TimeZone").as_deref(), Some("Asia/Tokyo"));
        assert_eq!(setting("statement_timeout").as_deref(), Some("1500ms"));
        assert_eq!(crate::gucs::summary_temperature(), 0.123456789, "SHOW would round it to six digits");
        assert_eq!(setting("app.tenant").as_deref(), Some("captured"));
        restore(nest_level);
        assert_eq!(setting("app.tenant").as_deref(), Some("later"));
        assert_eq!(setting("statement_timeout").as_deref(), Some("0"));
    }

    #[pg_test]
    fn custom_settings_the_session_had_not_are_empty_for_the_job() {
        let snapshot = capture();
        Spi::run("SET app.worker_only = 'the worker role''s value'").unwrap();
        let nest_level = apply(&snapshot);
        assert_eq!(setting("app.worker_only").as_deref(), Some(""));
        restore(nest_level);
        assert_eq!(setting("app.worker_only").as_deref(), Some("the worker role's value"));
    }
}
