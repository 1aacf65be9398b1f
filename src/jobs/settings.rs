//! The settings a job runs with: every setting the submitting session could change, captured at
//! submit with its value there (what `ask_full` would have seen: `ALTER ROLE/DATABASE ... SET`
//! values from login, `SET`s, custom settings that policies read), applied in the worker for the
//! job's duration only.

use pgrx::pg_sys;
use sqlchat_core::jobs::{travels, SettingContext, Snapshot};
use std::collections::HashSet;
use std::ffi::{CStr, CString};

/// The session's settings that travel with a job.
pub fn capture() -> Snapshot {
    let mut values = Vec::new();
    unsafe {
        let vars = pg_sys::get_guc_variables();
        let count = pg_sys::GetNumConfigOptions().max(0) as usize;
        for i in 0..count {
            let var = *vars.add(i);
            if var.is_null() {
                continue;
            }
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
    let mut names = Vec::new();
    unsafe {
        let vars = pg_sys::get_guc_variables();
        for i in 0..pg_sys::GetNumConfigOptions().max(0) as usize {
            let var = *vars.add(i);
            if !var.is_null() && (*var).flags as u32 & pg_sys::GUC_CUSTOM_PLACEHOLDER != 0 {
                names.push(CStr::from_ptr((*var).name).to_string_lossy().into_owned());
            }
        }
    }
    names
}

/// Back to the worker's own settings.
pub fn restore(nest_level: i32) {
    unsafe { pg_sys::AtEOXact_GUC(false, nest_level) };
}
