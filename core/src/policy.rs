//! Which functions generated SQL may call. Volatility is only a label (a user function marked
//! STABLE may still write or call out), so the rule is: PostgreSQL's own immutable and stable
//! functions, a few harmless volatile ones, and what a superuser listed in
//! `sqlchat.allowed_functions`; never the built-ins with side effects or that read settings,
//! files, or run query strings. Also: which relations generated SQL may never read, the sandbox's
//! resource limits and the optional cost gate.

/// Built-ins refused whatever their volatility label: side effects, server state, files, query strings.
const DENIED_PREFIXES: &[&str] = &[
    "pg_sleep",
    "dblink",
    "lo_",
    "pg_read_",
    "pg_ls_",
    "pg_stat_file",
    "pg_advisory",
    "pg_try_advisory",
    "pg_notify",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_logical_",
    "pg_replication_",
    "pg_create_",
    "pg_drop_",
    "pg_switch_wal",
    "pg_backup_",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_promote",
    "pg_log_backend",
    "pg_import_system_collations",
    "pg_copy_",
    "pg_file_",
    "pg_wal_replay",
    "pg_stat_reset",
    "pg_stat_statements_reset",
    "query_to_xml",
    "table_to_xml",
    "cursor_to_xml",
    "schema_to_xml",
    "database_to_xml",
    "query_to_xmlschema",
    "table_to_xmlschema",
    "cursor_to_xmlschema",
    "schema_to_xmlschema",
    "database_to_xmlschema",
    "ts_stat",
    "http",
    "net.",
    "txid_current",
    "pg_current_xact_id",
    "pg_snapshot",
    "txid_snapshot",
    "pg_export_snapshot",
    "pg_show_all_settings",
    "pg_show_all_file_settings",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_config",
    "pg_current_logfile",
    "pg_nextoid",
];

/// Refused by exact name.
const DENIED_NAMES: &[&str] = &[
    "nextval",
    "setval",
    "currval",
    "lastval",
    "set_config",
    "current_setting",
    "pg_settings_get_flags",
    "setseed",
    "pg_get_wal_replay_pause_state",
    "inet_server_addr",
    "inet_server_port",
    "version",
    "pg_postmaster_start_time",
    "pg_conf_load_time",
    "loread",
    "lowrite",
    "ts_rewrite",
];

/// Volatile built-ins that change nothing and reveal nothing.
const HARMLESS_VOLATILE: &[&str] = &["random", "clock_timestamp", "timeofday", "gen_random_uuid", "random_normal"];

/// Who wrote the expression that calls a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The model's statement, or a view it reads: its values reach the caller and the model.
    Query,
    /// A row-level security policy or a domain's CHECK constraint that another role wrote: a
    /// predicate whose value only decides which rows the caller sees or whether a value is
    /// accepted. Reading server state there reveals nothing to anyone but the caller; side
    /// effects are refused all the same.
    Filter,
}

/// Built-ins that only read server state, refused in queries (their values would reach the
/// model) but allowed in filters (`current_setting('app.tenant')` is how many policies work).
const FILTER_READS: &[&str] = &[
    "current_setting",
    "version",
    "inet_server_addr",
    "inet_server_port",
    "pg_postmaster_start_time",
    "pg_conf_load_time",
];

/// Why `schema.name` may not be called, or None when it may. `volatility` is pg_proc.provolatile
/// ('i', 's' or 'v'); `builtin` says the function came with PostgreSQL (its oid is below
/// FirstNormalObjectId); `allowed` is `sqlchat.allowed_functions`: a bare name re-allows a built-in
/// (pg_catalog) function, anything else must be listed schema-qualified, so that a function of the
/// same name in another schema is never let in by accident.
pub fn function_refusal(
    origin: Origin,
    schema: &str,
    name: &str,
    volatility: char,
    builtin: bool,
    allowed: &[String],
) -> Option<String> {
    let qualified = format!("{schema}.{name}");
    // An extension may install functions into pg_catalog: only what initdb created counts as built-in.
    let builtin_schema = builtin && (schema == "pg_catalog" || schema == "information_schema");
    if is_listed(schema, name, allowed) {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    if builtin_schema {
        if origin == Origin::Filter && FILTER_READS.contains(&lower.as_str()) {
            return None;
        }
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

/// Whether a superuser listed `schema.name` in `sqlchat.allowed_functions` (schema-qualified, or
/// bare for a pg_catalog function).
pub fn is_listed(schema: &str, name: &str, allowed: &[String]) -> bool {
    let qualified = format!("{schema}.{name}");
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&qualified) || (schema == "pg_catalog" && a.eq_ignore_ascii_case(name)))
}

/// Catalogs generated SQL may never read: password hashes, user-mapping options, per-role and
/// per-database settings (where `sqlchat.*` values may live), large-object contents.
const DENIED_CATALOGS: &[&str] =
    &["pg_authid", "pg_shadow", "pg_user_mapping", "pg_user_mappings", "pg_db_role_setting", "pg_largeobject"];

/// Why generated SQL may not read `schema.name`, or None. Views count by the tables they read too
/// (the guard sees the rewritten query), so pg_roles and pg_settings are covered.
pub fn relation_refusal(schema: &str, name: &str) -> Option<String> {
    if schema == "sqlchat" {
        return Some("sqlchat's own tables cannot be queried by generated SQL".into());
    }
    if schema == "pg_catalog" && DENIED_CATALOGS.contains(&name) {
        return Some(format!("reading {schema}.{name} is not allowed"));
    }
    None
}

/// The value a sandbox limit (work_mem, temp_file_limit; kB, -1 = unlimited for the latter) gets:
/// the caller's own when it is already tighter, else sqlchat's cap. None: leave it as it is.
pub fn tightened_limit_kb(current_kb: i64, cap_kb: i64) -> Option<i64> {
    if cap_kb <= 0 {
        return None;
    }
    if current_kb >= 0 && current_kb <= cap_kb {
        return None;
    }
    Some(cap_kb)
}

/// The optional cost gate: why a plan with this estimated cost is refused (max_cost 0 = off).
pub fn cost_refusal(estimated: f64, max_cost: f64) -> Option<String> {
    if max_cost > 0.0 && estimated > max_cost {
        Some(format!(
            "the query's estimated cost {estimated:.0} exceeds sqlchat.max_cost ({max_cost:.0}); \
             write a cheaper query (filter early, aggregate, avoid cross joins)"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(schema: &str, name: &str, vol: char) -> bool {
        function_refusal(Origin::Query, schema, name, vol, true, &[]).is_some()
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
        for f in [
            "pg_sleep",
            "pg_sleep_for",
            "nextval",
            "setval",
            "set_config",
            "current_setting",
            "pg_read_file",
            "pg_ls_dir",
            "pg_advisory_lock",
            "pg_try_advisory_xact_lock",
            "pg_notify",
            "pg_terminate_backend",
            "pg_cancel_backend",
            "query_to_xml",
            "lo_import",
            "dblink_exec",
            "pg_show_all_settings",
        ] {
            assert!(refused("pg_catalog", f, 's'), "{f}");
        }
    }

    #[test]
    fn functions_an_extension_put_in_pg_catalog_are_not_builtins() {
        assert!(function_refusal(Origin::Query, "pg_catalog", "pg_file_write_stable", 's', false, &[]).is_some());
        assert!(function_refusal(Origin::Query, "pg_catalog", "lower", 'i', true, &[]).is_none());
    }

    #[test]
    fn user_functions_need_the_allow_list() {
        assert!(refused("public", "my_stable_fn", 's'));
        assert!(function_refusal(Origin::Query, "public", "my_stable_fn", 's', true, &["public.my_stable_fn".into()])
            .is_none());
        assert!(function_refusal(Origin::Query, "pg_catalog", "pg_sleep", 'v', true, &["pg_sleep".into()]).is_none());
    }

    #[test]
    fn bare_allowed_names_only_reallow_builtins() {
        assert!(function_refusal(Origin::Query, "public", "my_fn", 'v', true, &["my_fn".into()]).is_some());
        assert!(function_refusal(Origin::Query, "evil", "my_fn", 's', true, &["public.my_fn".into()]).is_some());
        assert!(function_refusal(Origin::Query, "public", "my_fn", 'v', true, &["PUBLIC.MY_FN".into()]).is_none());
    }

    #[test]
    fn large_objects_and_query_strings_refused() {
        for f in [
            "loread",
            "lowrite",
            "lo_get",
            "lo_put",
            "lo_from_bytea",
            "ts_rewrite",
            "ts_stat",
            "table_to_xml_and_xmlschema",
            "database_to_xml",
            "pg_current_xact_id",
            "txid_current",
        ] {
            assert!(refused("pg_catalog", f, 'i'), "{f}");
        }
    }

    #[test]
    fn filters_may_read_settings_but_never_act() {
        assert!(function_refusal(Origin::Filter, "pg_catalog", "current_setting", 's', true, &[]).is_none());
        assert!(function_refusal(Origin::Query, "pg_catalog", "current_setting", 's', true, &[]).is_some());
        for f in ["pg_advisory_lock", "pg_sleep", "set_config", "lo_export", "pg_read_file", "pg_notify"] {
            assert!(function_refusal(Origin::Filter, "pg_catalog", f, 'v', true, &[]).is_some(), "{f}");
        }
        assert!(function_refusal(Origin::Filter, "public", "current_setting", 's', false, &[]).is_some());
    }

    #[test]
    fn secret_catalogs_and_own_tables() {
        assert!(relation_refusal("sqlchat", "cache").is_some());
        assert!(relation_refusal("pg_catalog", "pg_db_role_setting").is_some());
        assert!(relation_refusal("pg_catalog", "pg_authid").is_some());
        assert!(relation_refusal("pg_catalog", "pg_class").is_none());
        assert!(relation_refusal("public", "pg_authid").is_none());
    }

    #[test]
    fn limits_only_tighten() {
        assert_eq!(tightened_limit_kb(4096, 65536), None);
        assert_eq!(tightened_limit_kb(1_048_576, 65536), Some(65536));
        assert_eq!(tightened_limit_kb(-1, 1_048_576), Some(1_048_576));
        assert_eq!(tightened_limit_kb(-1, 0), None);
    }

    #[test]
    fn cost_gate() {
        assert!(cost_refusal(1e9, 0.0).is_none());
        assert!(cost_refusal(100.0, 1000.0).is_none());
        let r = cost_refusal(5e6, 1e6).unwrap();
        assert!(r.contains("sqlchat.max_cost"), "{r}");
    }
}
