//! `sqlchat.check_setup()`: what the server's configuration says, turned into findings with a fix
//! each. The shell gathers the facts; the judgement is here.

/// Where the gateway key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    None,
    /// `sqlchat.api_key` or `sqlchat.auth_header`.
    Setting(String),
    Environment,
    File,
    /// `sqlchat.api_key_file` is set but cannot be read; the error.
    FileUnreadable(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    /// The library was loaded by shared_preload_libraries.
    pub preloaded: bool,
    pub caller_is_superuser: bool,
    pub api_base: Option<String>,
    /// Why the gateway settings cannot be used (a bad URL, plain http to another machine, an
    /// unreadable CA file), as sqlchat would report it on the first ask.
    pub gateway_settings_problem: Option<String>,
    pub key: Option<KeySource>,
    pub model: String,
    /// `sqlchat.engine` as set: default, llm, offline or auto.
    pub engine: String,
    /// (setting, ALTER target such as `ROLE x IN DATABASE d`): secrets stored in role or database
    /// settings, readable by every role.
    pub secrets_in_role_settings: Vec<(String, String)>,
    /// (setting, file:line) of secrets in the configuration files; None when the caller may not
    /// read pg_file_settings.
    pub secrets_in_files: Option<Vec<(String, String)>>,
    /// The gateway's answer to a list of models: its model names, or why it failed; None when
    /// not asked.
    pub gateway: Option<Result<Vec<String>, String>>,
    pub rls_bypass: String,
    pub send_rows_sample: bool,
    /// Entries of `sqlchat.allowed_functions` that name no function.
    pub unknown_allowed_functions: Vec<String>,
    /// Columns marked private with `sqlchat.set_private`.
    pub private_columns: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// error, warning, info or ok.
    pub severity: &'static str,
    pub problem: String,
    pub fix: String,
}

fn finding(severity: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { severity, problem: problem.into(), fix: fix.into() }
}

const PRELOAD_FIX: &str = "Add sqlchat to shared_preload_libraries in postgresql.conf and restart the server.";
const KEY_FILE_FIX: &str = "Put the key in a file only the server's user can read and set sqlchat.api_key_file to it (or SQLCHAT_API_KEY in the server's environment), reset the setting, and rotate the key.";

/// The findings, most severe first; one "ok" finding when nothing needs attention.
pub fn findings(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    secrets(f, &mut out);
    gateway(f, &mut out);
    if f.rls_bypass == "allow" {
        out.push(finding("info", "sqlchat.rls_bypass is allow: asks by roles that bypass row-level security read every row without a warning", "SET sqlchat.rls_bypass = 'warn' or 'refuse' (superuser)."));
    }
    if f.caller_is_superuser {
        out.push(finding(
            "info",
            "you are a superuser: your asks read every row, row-level security does not apply to them",
            "Ask as a role with the privileges the question needs.",
        ));
    }
    if f.send_rows_sample && f.api_base.is_some() {
        out.push(finding("info", "sqlchat.send_rows is sample: up to 20 rows (4 KB) of each result go to the gateway to word the answer", "SET sqlchat.send_rows = 'none' in postgresql.conf to keep every row in the database (answers then come from templates)."));
    }
    if f.send_rows_sample && f.private_columns > 0 {
        out.push(finding(
            "info",
            format!(
                "sqlchat.send_rows is sample and {} column(s) are private: their values are masked in the rows sent to word answers, the other columns of those rows are sent",
                f.private_columns
            ),
            "Mark more columns private with sqlchat.set_private, or SET sqlchat.send_rows = 'none' in postgresql.conf to send no row at all.",
        ));
    }
    for name in &f.unknown_allowed_functions {
        out.push(finding(
            "warning",
            format!("sqlchat.allowed_functions names {name}, which is no function"),
            "Name functions as schema.name (a bare name only for PostgreSQL's own), or remove the entry.",
        ));
    }
    let rank = |s: &str| match s {
        "error" => 0,
        "warning" => 1,
        _ => 2,
    };
    out.sort_by_key(|x| rank(x.severity));
    if !out.iter().any(|x| x.severity == "error" || x.severity == "warning") {
        out.insert(0, finding("ok", "no problem found", ""));
    }
    out
}

fn secrets(f: &Facts, out: &mut Vec<Finding>) {
    if !f.preloaded {
        let severity = if matches!(f.key, Some(KeySource::Setting(_))) { "error" } else { "warning" };
        out.push(finding(severity, "sqlchat is not in shared_preload_libraries: until a session loads it, the sqlchat.* settings are unprotected placeholders that any role can read with SHOW", PRELOAD_FIX));
    }
    if let (Some(KeySource::Setting(name)), false) = (&f.key, f.preloaded) {
        out.push(finding("error", format!("{name} holds the key, which any role could read before sqlchat was loaded in its session; sqlchat does not use it"), KEY_FILE_FIX));
    }
    for (setting, place) in &f.secrets_in_role_settings {
        out.push(finding(
            "error",
            format!("{setting} is stored in the settings of {place} (pg_db_role_setting), which every role can read"),
            format!("In a session that has not used sqlchat yet (there the setting is a placeholder that can be reset): ALTER {place} RESET {setting}; then rotate the key."),
        ));
    }
    match &f.secrets_in_files {
        Some(lines) => {
            for (setting, place) in lines {
                out.push(finding("warning", format!("{setting} is set in {place}: PostgreSQL writes its value into the server log whenever it changes on reload"), KEY_FILE_FIX));
            }
        }
        None => out.push(finding(
            "info",
            "the configuration files were not checked for keys: only superusers may read pg_file_settings",
            "Run sqlchat.check_setup() as a superuser.",
        )),
    }
    if let Some(KeySource::FileUnreadable(why)) = &f.key {
        out.push(finding(
            "error",
            format!("sqlchat.api_key_file cannot be read: {why}"),
            "Point sqlchat.api_key_file at a file the server's user can read, with the key on its first line.",
        ));
    }
}

fn gateway(f: &Facts, out: &mut Vec<Finding>) {
    let Some(base) = &f.api_base else {
        if f.engine == "llm" || f.engine == "auto" {
            out.push(finding(
                "error",
                format!("sqlchat.engine is {} but no gateway is configured (sqlchat.api_base is empty)", f.engine),
                "Set sqlchat.api_base in postgresql.conf and reload, or SET sqlchat.engine = 'offline'.",
            ));
        } else {
            out.push(finding(
                "info",
                "no LLM gateway is configured: the built-in offline engine answers what it can and declines the rest",
                "Set sqlchat.api_base (and a key) in postgresql.conf and reload to answer any question.",
            ));
        }
        return;
    };
    if let Some(problem) = &f.gateway_settings_problem {
        out.push(finding(
            "error",
            problem.clone(),
            "Fix the gateway settings (sqlchat.api_base, sqlchat.ca_file) in postgresql.conf and reload.",
        ));
        return;
    }
    if matches!(f.key, None | Some(KeySource::None)) {
        out.push(finding("warning", format!("no key is configured for the gateway at {base}"), "Set sqlchat.api_key_file (or SQLCHAT_API_KEY in the server's environment) unless the gateway needs no key."));
    }
    if f.engine == "offline" {
        out.push(finding(
            "info",
            "sqlchat.engine is offline: the gateway is configured but not used",
            "SET sqlchat.engine = 'auto' or 'llm' to use it.",
        ));
    }
    match &f.gateway {
        Some(Err(why)) => out.push(finding(
            "error",
            format!("the gateway at {base} did not answer a list of models: {why}"),
            "Check that the gateway runs and is reachable from the database server, and the key.",
        )),
        Some(Ok(models)) if !models.is_empty() && !models.iter().any(|m| m == &f.model) => out.push(finding(
            "warning",
            format!("the gateway does not list the model {} (it lists {})", f.model, shown(models)),
            "SET sqlchat.model to one the gateway serves, in postgresql.conf or per session.",
        )),
        _ => {}
    }
}

fn shown(models: &[String]) -> String {
    let mut s = models.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if models.len() > 5 {
        s.push_str(&format!(" and {} more", models.len() - 5));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            preloaded: true,
            api_base: Some("https://gw.example/v1".into()),
            key: Some(KeySource::File),
            model: "m1".into(),
            engine: "default".into(),
            secrets_in_files: Some(vec![]),
            gateway: Some(Ok(vec!["m1".into()])),
            rls_bypass: "warn".into(),
            ..Facts::default()
        }
    }

    fn severities(f: &Facts) -> Vec<(&'static str, String)> {
        findings(f).into_iter().map(|x| (x.severity, x.problem)).collect()
    }

    #[test]
    fn a_healthy_setup_is_ok() {
        assert_eq!(findings(&healthy())[0].severity, "ok");
    }

    #[test]
    fn a_key_in_a_setting_without_preloading_is_an_error() {
        let f = Facts { preloaded: false, key: Some(KeySource::Setting("sqlchat.api_key".into())), ..healthy() };
        let all = severities(&f);
        assert_eq!(all[0].0, "error");
        assert!(all.iter().any(|(_, p)| p.contains("sqlchat.api_key holds the key")), "{all:?}");
    }

    #[test]
    fn not_preloaded_is_a_warning_even_with_a_key_file() {
        let f = Facts { preloaded: false, ..healthy() };
        assert_eq!(severities(&f)[0].0, "warning");
    }

    #[test]
    fn keys_in_role_settings_and_files_are_reported() {
        let f = Facts {
            secrets_in_role_settings: vec![("sqlchat.api_key".into(), "ROLE analyst".into())],
            secrets_in_files: Some(vec![("sqlchat.api_key".into(), "postgresql.auto.conf:3".into())]),
            ..healthy()
        };
        let all = severities(&f);
        assert!(all.iter().any(|(s, p)| *s == "error" && p.contains("ROLE analyst")));
        assert!(all.iter().any(|(s, p)| *s == "warning" && p.contains("server log")));
    }

    #[test]
    fn gateway_problems() {
        let down = Facts { gateway: Some(Err("connection refused".into())), ..healthy() };
        assert!(severities(&down).iter().any(|(s, p)| *s == "error" && p.contains("connection refused")));
        let wrong_model = Facts { gateway: Some(Ok(vec!["other".into()])), ..healthy() };
        assert!(severities(&wrong_model).iter().any(|(s, p)| *s == "warning" && p.contains("m1")));
        let no_key = Facts { key: Some(KeySource::None), ..healthy() };
        assert!(severities(&no_key).iter().any(|(s, _)| *s == "warning"));
        let bad = Facts { gateway_settings_problem: Some("sqlchat.api_base must use https://".into()), ..healthy() };
        assert_eq!(severities(&bad)[0].0, "error");
    }

    #[test]
    fn no_gateway_is_information_unless_the_engine_needs_one() {
        let offline = Facts { api_base: None, gateway: None, ..healthy() };
        assert_eq!(severities(&offline)[0].0, "ok");
        let llm = Facts { engine: "llm".into(), ..offline };
        assert_eq!(severities(&llm)[0].0, "error");
    }

    #[test]
    fn files_not_readable_by_the_caller_are_said_so() {
        let f = Facts { secrets_in_files: None, ..healthy() };
        assert!(severities(&f).iter().any(|(s, p)| *s == "info" && p.contains("pg_file_settings")));
    }
}
