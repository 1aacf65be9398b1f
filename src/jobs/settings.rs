//! The settings a job runs with: every setting the submitting session could change, captured at
//! submit with its value there (what `ask_full` would have seen: `ALTER ROLE/DATABASE ... SET`
//! values from login, `SET`s, custom settings that policies read) and with who set it, applied in
//! the worker for the job's duration only, with the rights it was set with: a value a role set
//! itself is set again as if that role ran `SET`, so that a superuser-only setting (or a
//! placeholder that becomes one when its library loads) never takes a value no superuser chose.

use crate::compat;
use pgrx::pg_sys;
use sqlchat_core::jobs::{travels, Setting, SettingContext, Snapshot};
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
                values.push(Setting {
                    name: name_text.to_string(),
                    value,
                    superuser_set: set_by_superuser((*var).scontext),
                    set_by: (*var).srole.to_u32(),
                });
            }
        }
    }
    Snapshot(values)
}

/// Whether a value set in `scontext` came from a source only a superuser controls; PostgreSQL's
/// own test (set_config_option refuses superuser-only settings in the other two contexts).
fn set_by_superuser(scontext: pg_sys::GucContext::Type) -> bool {
    !matches!(scontext, pg_sys::GucContext::PGC_USERSET | pg_sys::GucContext::PGC_BACKEND)
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
/// is no longer valid, a superuser-only setting the role set itself) is skipped, as the server log
/// says at DEBUG1. Custom settings the worker has and the session had not (from the worker's own
/// role settings, say) are empty for the job, set as `role` would set them: a policy reading one
/// must not see a value the submitting role never had.
pub fn apply(snapshot: &Snapshot, role: pg_sys::Oid) -> i32 {
    let nest_level = unsafe { pg_sys::NewGUCNestLevel() };
    for setting in &snapshot.0 {
        set(&setting.name, &setting.value, setting.context(), pg_sys::Oid::from(setting.set_by));
    }
    let captured: HashSet<String> = snapshot.0.iter().map(|s| s.name.to_ascii_lowercase()).collect();
    for name in custom_settings() {
        if !captured.contains(&name.to_ascii_lowercase()) {
            set(&name, "", SettingContext::User, role);
        }
    }
    nest_level
}

/// Sets a value as `set_by` would with `SET` (`User`), or as a superuser-set source would
/// (`Superuser`); the value stays with those rights, so that a placeholder's library loading later
/// in the job checks them again, as PostgreSQL does.
fn set(name: &str, value: &str, context: SettingContext, set_by: pg_sys::Oid) {
    let (Ok(name), Ok(value)) = (CString::new(name), CString::new(value)) else { return };
    let context = match context {
        SettingContext::Superuser => pg_sys::GucContext::PGC_SUSET,
        SettingContext::User | SettingContext::Fixed => pg_sys::GucContext::PGC_USERSET,
    };
    unsafe {
        pg_sys::set_config_option_ext(
            name.as_ptr(),
            value.as_ptr(),
            context,
            pg_sys::GucSource::PGC_S_SESSION,
            set_by,
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
        let value = |name: &str| snapshot.0.iter().find(|s| s.name == name).map(|s| s.value.clone());
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
        let nest_level = apply(&snapshot, unsafe { pg_sys::GetUserId() });
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
        let nest_level = apply(&snapshot, unsafe { pg_sys::GetUserId() });
        assert_eq!(setting("app.worker_only").as_deref(), Some(""));
        restore(nest_level);
        assert_eq!(setting("app.worker_only").as_deref(), Some("the worker role's value"));
    }

    #[pg_test]
    fn a_value_a_role_set_itself_is_set_again_with_that_roles_rights() {
        Spi::run("CREATE ROLE sqlchat_settings_plain").unwrap();
        let plain = Spi::get_one::<pg_sys::Oid>("SELECT 'sqlchat_settings_plain'::regrole::oid").unwrap().unwrap();
        Spi::run("SET ROLE sqlchat_settings_plain").unwrap();
        Spi::run("SET app.chosen_by_role = 'x'").unwrap();
        let snapshot = capture();
        Spi::run("RESET ROLE").unwrap();
        let chosen = snapshot.0.iter().find(|s| s.name == "app.chosen_by_role").unwrap();
        assert!(!chosen.superuser_set);
        assert_eq!(chosen.set_by, plain.to_u32());
        let send_rows = setting("sqlchat.send_rows");
        let rls_bypass = setting("sqlchat.rls_bypass");
        let forged = Snapshot(vec![
            // A superuser-only setting with a value the role chose (as a placeholder carries it
            // until its library loads): refused, as PostgreSQL refuses the role's own SET.
            Setting {
                name: "sqlchat.send_rows".into(),
                value: "none".into(),
                superuser_set: false,
                set_by: plain.to_u32(),
            },
            Setting {
                name: "sqlchat.rls_bypass".into(),
                value: "refuse".into(),
                superuser_set: true,
                set_by: pg_sys::BOOTSTRAP_SUPERUSERID,
            },
        ]);
        let nest_level = apply(&forged, plain);
        assert_eq!(setting("sqlchat.send_rows"), send_rows, "a role's own value of a superuser-only setting");
        assert_eq!(setting("sqlchat.rls_bypass").as_deref(), Some("refuse"), "a superuser's value");
        restore(nest_level);
        assert_eq!(setting("sqlchat.rls_bypass"), rls_bypass);
    }
}
