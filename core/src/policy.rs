//! Which functions generated SQL may call. Volatility is only a label (a user function marked
//! STABLE may still write or call out), so the rule is: PostgreSQL's own immutable and stable
//! functions, a few harmless volatile ones, and what a superuser listed in
//! `sqlchat.allowed_functions`; never the built-ins with side effects or that read settings,
//! files, or run query strings.

/// Built-ins refused whatever their volatility label: side effects, server state, files, query strings.
const DENIED_PREFIXES: &[&str] = &[
    "pg_sleep", "dblink", "lo_", "pg_read_", "pg_ls_", "pg_stat_file", "pg_advisory", "pg_try_advisory",
    "pg_notify", "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_logical_", "pg_replication_", "pg_create_", "pg_drop_", "pg_switch_wal", "pg_backup_",
    "pg_start_backup", "pg_stop_backup", "pg_promote", "pg_log_backend", "pg_import_system_collations",
    "pg_copy_", "pg_file_", "pg_wal_replay", "pg_stat_reset", "pg_stat_statements_reset",
    "query_to_xml", "table_to_xml", "cursor_to_xml", "schema_to_xml", "database_to_xml", "query_to_xmlschema",
    "table_to_xmlschema", "cursor_to_xmlschema", "schema_to_xmlschema", "database_to_xmlschema",
    "ts_stat", "http", "net.", "txid_current", "pg_current_xact_id", "pg_snapshot", "txid_snapshot",
    "pg_export_snapshot", "pg_show_all_settings", "pg_show_all_file_settings", "pg_hba_file_rules",
    "pg_ident_file_mappings", "pg_config", "pg_current_logfile", "pg_nextoid",
];

/// Refused by exact name.
const DENIED_NAMES: &[&str] = &[
    "nextval", "setval", "currval", "lastval", "set_config", "current_setting", "pg_settings_get_flags",
    "setseed", "pg_get_wal_replay_pause_state", "inet_server_addr", "inet_server_port", "version",
    "pg_postmaster_start_time", "pg_conf_load_time",
];

/// Volatile built-ins that change nothing and reveal nothing.
const HARMLESS_VOLATILE: &[&str] = &["random", "clock_timestamp", "timeofday", "gen_random_uuid", "random_normal"];

/// Why `schema.name` may not be called, or None when it may. `volatility` is pg_proc.provolatile
/// ('i', 's' or 'v'); `allowed` is `sqlchat.allowed_functions` (names or schema.names).
pub fn function_refusal(schema: &str, name: &str, volatility: char, allowed: &[String]) -> Option<String> {
    let qualified = format!("{schema}.{name}");
    let listed = allowed.iter().any(|a| a.eq_ignore_ascii_case(name) || a.eq_ignore_ascii_case(&qualified));
    if listed {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    if schema == "pg_catalog" || schema == "information_schema" {
        if DENIED_NAMES.contains(&lower.as_str()) || DENIED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
            return Some(format!("function {qualified} is not allowed: it has side effects or reads server state"));
        }
        if volatility == 'i' || volatility == 's' || HARMLESS_VOLATILE.contains(&lower.as_str()) {
            return None;
        }
        return Some(format!("function {qualified} is not allowed: it is volatile"));
    }
    Some(format!(
        "function {qualified} is not allowed: only PostgreSQL's built-in immutable and stable functions may be called \
         (a superuser can add it to sqlchat.allowed_functions)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(schema: &str, name: &str, vol: char) -> bool {
        function_refusal(schema, name, vol, &[]).is_some()
    }

    #[test]
    fn builtins_by_volatility() {
        assert!(!refused("pg_catalog", "lower", 'i'));
        assert!(!refused("pg_catalog", "now", 's'));
        assert!(!refused("pg_catalog", "random", 'v'));
        assert!(refused("pg_catalog", "pg_stat_reset", 'v'));
        assert!(refused("pg_catalog", "some_volatile_builtin", 'v'));
    }

    #[test]
    fn side_effects_refused_whatever_the_label() {
        for f in ["pg_sleep", "pg_sleep_for", "nextval", "setval", "set_config", "current_setting", "pg_read_file",
            "pg_ls_dir", "pg_advisory_lock", "pg_try_advisory_xact_lock", "pg_notify", "pg_terminate_backend",
            "pg_cancel_backend", "query_to_xml", "lo_import", "dblink_exec", "pg_show_all_settings"] {
            assert!(refused("pg_catalog", f, 's'), "{f}");
        }
    }

    #[test]
    fn user_functions_need_the_allow_list() {
        assert!(refused("public", "my_stable_fn", 's'));
        assert!(function_refusal("public", "my_stable_fn", 's', &["public.my_stable_fn".into()]).is_none());
        assert!(function_refusal("public", "my_fn", 'v', &["my_fn".into()]).is_none());
    }
}
