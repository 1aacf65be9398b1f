//! Background asks (`sqlchat.submit` / `sqlchat.result`): the decisions that need no server. The
//! extension's `src/jobs/` stores jobs, captures settings and runs the workers; this module says
//! what a job's state means, which settings travel with a job and with what rights they are set
//! again, whether a job may still run as its role, in which order roles' jobs are taken, and which
//! database gets a worker.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A job's state, as stored in `sqlchat.job.state` and shown by `sqlchat.job_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl State {
    pub const ALL: [State; 5] = [State::Queued, State::Running, State::Done, State::Failed, State::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Done, failed or cancelled: the job will not change again.
    pub fn is_final(self) -> bool {
        matches!(self, State::Done | State::Failed | State::Cancelled)
    }
}

/// Runs a job may start: a job whose worker stopped while it ran (server restart or crash,
/// `pg_terminate_backend`) is queued again once; the second time it fails.
pub const MAX_RUNS: i32 = 2;

/// What becomes of a job whose worker stopped while it ran, after `runs` started runs.
pub fn after_interruption(runs: i32, cancel_requested: bool) -> State {
    if cancel_requested {
        State::Cancelled
    } else if runs < MAX_RUNS {
        State::Queued
    } else {
        State::Failed
    }
}

// ---- settings that travel with a job ------------------------------------------------------------

/// Who may change a setting in a session (PostgreSQL's GucContext, as far as capture cares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingContext {
    /// PGC_USERSET: any role, with SET.
    User,
    /// PGC_SUSET: superusers, with SET (or a superuser's ALTER ROLE ... SET).
    Superuser,
    /// Fixed for the server or the connection (postmaster, sighup, backend, internal).
    Fixed,
}

/// Settings a session may change that still do not travel: they describe the connection, not
/// the question (the worker has no client), or the worker sets them itself.
const NOT_CAPTURED: [&str; 3] = ["application_name", "client_encoding", "session_authorization"];

/// Whether a setting's value at submit is captured and applied to the job. Every setting a
/// session can change travels (all of `sqlchat.*`, search_path, statement_timeout, DateStyle,
/// TimeZone, planner settings, custom settings that row-level security policies read...),
/// except the transaction-bound ones (`transaction_isolation`, `role`: PostgreSQL's
/// GUC_NO_RESET_ALL) and the connection's own.
pub fn travels(name: &str, context: SettingContext, transaction_bound: bool) -> bool {
    context != SettingContext::Fixed && !transaction_bound && !NOT_CAPTURED.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// One setting of the submitting session: its value in PostgreSQL's own text form (integers in
/// their base unit, so that it reads back exactly), and who set that value, as PostgreSQL records
/// it with every value (`config_generic.scontext` and `srole`). Stored as a 4-element array: a
/// session has some 350 settings, and their names and values are most of what `submit` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SettingRow", into = "SettingRow")]
pub struct Setting {
    pub name: String,
    pub value: String,
    /// The value came from a source only a superuser controls: the server configuration, a
    /// superuser's `ALTER ROLE/DATABASE ... SET` or `SET`, a superuser's function's `SET` clause.
    pub superuser_set: bool,
    /// The role that set it (its oid), whose `GRANT SET ON PARAMETER` privileges count.
    pub set_by: u32,
}

/// How a `Setting` is stored: name, value, superuser_set, set_by.
#[derive(Serialize, Deserialize)]
struct SettingRow(String, String, bool, u32);

impl From<SettingRow> for Setting {
    fn from(SettingRow(name, value, superuser_set, set_by): SettingRow) -> Setting {
        Setting { name, value, superuser_set, set_by }
    }
}

impl From<Setting> for SettingRow {
    fn from(s: Setting) -> SettingRow {
        SettingRow(s.name, s.value, s.superuser_set, s.set_by)
    }
}

impl Setting {
    /// The rights the job sets the value with: the ones it was set with in the session. A value a
    /// role set itself is set again as that role would set it (`SET`): a superuser-only setting,
    /// or a placeholder that turns out to be one, is then refused as PostgreSQL refuses it.
    pub fn context(&self) -> SettingContext {
        if self.superuser_set {
            SettingContext::Superuser
        } else {
            SettingContext::User
        }
    }
}

/// The settings of the submitting session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot(pub Vec<Setting>);

impl Snapshot {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A stored snapshot; None when it cannot be read (the job then fails rather than run with
    /// the worker's settings).
    pub fn from_json(value: &serde_json::Value) -> Option<Snapshot> {
        serde_json::from_value(value.clone()).ok()
    }
}

// ---- whether a job may still run as its role ---------------------------------------------------

/// What the worker finds, when a job is about to run, of the roles it names: the role it runs as,
/// and the session user that submitted it (the role that logged in, or the one `SET SESSION
/// AUTHORIZATION` chose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleCheck {
    /// A role with the job role's oid exists and still has its name.
    pub role_exists: bool,
    /// The same for the session user.
    pub login_exists: bool,
    /// The session user may log in (LOGIN).
    pub login_allowed: bool,
    /// The session user may connect to the job's database (CONNECT, or a superuser).
    pub connect_allowed: bool,
    /// The session user may still become the job's role: always true when the job's role is
    /// the session user or was chosen by a SECURITY DEFINER function, else whether `SET ROLE`
    /// would still be allowed.
    pub set_role_allowed: bool,
}

/// Names a refusal needs.
#[derive(Debug, Clone, Copy)]
pub struct JobRoles<'a> {
    pub job: i64,
    pub role: &'a str,
    pub login: &'a str,
    pub database: &'a str,
}

/// Why a job may not run, as a login of its session user followed by `SET ROLE` would be refused
/// now; None when it may run. Privileges granted or revoked after submit count, as they would for
/// `ask_full` in a new session.
pub fn role_refusal(roles: JobRoles<'_>, check: RoleCheck) -> Option<Error> {
    let JobRoles { job, role, login, database } = roles;
    if !check.login_exists {
        return Some(Error::JobRoleGone { job, role: login.to_string() });
    }
    if !check.role_exists {
        return Some(Error::JobRoleGone { job, role: role.to_string() });
    }
    if !check.login_allowed {
        return Some(Error::JobLoginRefused { job, role: login.to_string() });
    }
    if !check.connect_allowed {
        return Some(Error::JobConnectRefused { job, role: login.to_string(), database: database.to_string() });
    }
    if !check.set_role_allowed {
        return Some(Error::JobSetRoleRefused { job, login: login.to_string(), role: role.to_string() });
    }
    None
}

// ---- in which order roles' jobs are taken -------------------------------------------------------

/// The round of the queue a job submitted now is taken in. Workers take queued jobs by round,
/// then by id, so that every role with jobs queued gets one job per round: a role's next job goes
/// one round after its last queued one, and a role with none queued joins the round at the head of
/// the queue. One role's thousand jobs then delay another role's job by at most one job, not by
/// a thousand. `role_last`: the highest round of the role's queued jobs; `queue_head`: the lowest
/// round of any queued job.
pub fn queue_round(role_last: Option<i64>, queue_head: Option<i64>) -> i64 {
    let head = queue_head.unwrap_or(0);
    role_last.map_or(head, |last| last.saturating_add(1).max(head))
}

/// Whether a role with `queued` jobs waiting may queue one more under the `max_queued` cap.
pub fn may_queue(queued: i64, max_queued: i64) -> bool {
    queued < max_queued
}

// ---- which database gets a worker ---------------------------------------------------------------

/// One database's share of the server's workers, as the launcher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatabaseDemand {
    /// Jobs submitted (committed) that no worker has taken yet, as far as anyone told.
    pub queued: u32,
    /// A visit is due (maintenance, recovery of jobs whose worker stopped, a sweep after start).
    pub visit_due: bool,
    /// Workers of this database, whatever they do.
    pub workers: u32,
    /// Of those, the ones starting or idle (able to take a job now).
    pub available: u32,
}

impl DatabaseDemand {
    /// Workers this database could use beyond the ones it has.
    fn wants(&self) -> u32 {
        let for_jobs = self.queued.saturating_sub(self.available);
        // A worker busy with a job does no maintenance until the job ends, however long it runs.
        let for_visit = u32::from(self.visit_due && self.available == 0);
        for_jobs.max(for_visit)
    }
}

/// Which databases get a new worker now (indexes into `demand`, one entry per worker to start):
/// one at a time to each database that wants one, round-robin from `first`, until the server has
/// `max_workers` workers in all.
pub fn plan_starts(demand: &[DatabaseDemand], workers: usize, max_workers: usize, first: usize) -> Vec<usize> {
    let mut wants: Vec<u32> = demand.iter().map(DatabaseDemand::wants).collect();
    let mut free = max_workers.saturating_sub(workers);
    let mut starts = Vec::new();
    let n = demand.len();
    while free > 0 && wants.iter().any(|w| *w > 0) {
        for k in 0..n {
            let i = (first + k) % n;
            if free > 0 && wants[i] > 0 {
                wants[i] -= 1;
                free -= 1;
                starts.push(i);
            }
        }
    }
    starts
}

/// Whether a worker that just finished a job ends to give its slot to another database: every
/// slot is taken and a database with queued jobs has no worker at all. Databases then take turns
/// job by job rather than one of them waiting for another's queue to drain. A worker with nothing
/// to do asks the same with "another database has jobs waiting" (it gives up nothing by leaving),
/// so that an idle worker never keeps a database's jobs waiting for its idle timeout.
pub fn should_yield(workers: usize, max_workers: usize, another_database_starved: bool) -> bool {
    another_database_starved && workers >= max_workers
}

/// Whether a worker with nothing to do ends: at once when it ran no job in this visit (a sweep,
/// a maintenance visit), else after `idle_timeout` without work.
/// How long a job may run: its own `statement_timeout` (0: none) within `sqlchat.job_timeout` (0:
/// none), both in ms; and whether `job_timeout` is the one that ends it.
pub fn run_limit_ms(statement_timeout_ms: i32, job_timeout_ms: i32) -> (i32, bool) {
    match (statement_timeout_ms.max(0), job_timeout_ms.max(0)) {
        (s, 0) => (s, false),
        (0, j) => (j, true),
        (s, j) if j < s => (j, true),
        (s, _) => (s, false),
    }
}

pub fn should_exit(ran_a_job: bool, idle_for: Duration, idle_timeout: Duration) -> bool {
    !ran_a_job || idle_for >= idle_timeout
}

/// How long the launcher waits before starting another worker in a database whose last worker
/// failed, after `failures` failures in a row: doubling from 1 s, at most a minute.
pub fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_within_its_own_timeout_and_the_servers() {
        assert_eq!(run_limit_ms(0, 600_000), (600_000, true), "the role turned its timeout off");
        assert_eq!(run_limit_ms(5_000, 600_000), (5_000, false));
        assert_eq!(run_limit_ms(900_000, 600_000), (600_000, true));
        assert_eq!(run_limit_ms(5_000, 0), (5_000, false));
        assert_eq!(run_limit_ms(0, 0), (0, false));
    }

    #[test]
    fn states_round_trip_and_only_the_last_three_are_final() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("finished"), None);
        let finals: Vec<_> = State::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, vec![State::Done, State::Failed, State::Cancelled]);
    }

    #[test]
    fn an_interrupted_job_runs_again_once() {
        assert_eq!(after_interruption(1, false), State::Queued);
        assert_eq!(after_interruption(2, false), State::Failed);
        assert_eq!(after_interruption(1, true), State::Cancelled);
    }

    #[test]
    fn every_changeable_setting_travels_but_the_connections_own() {
        assert!(travels("search_path", SettingContext::User, false));
        assert!(travels("sqlchat.max_rows", SettingContext::User, false));
        assert!(travels("sqlchat.send_rows", SettingContext::Superuser, false));
        assert!(travels("app.tenant", SettingContext::User, false));
        assert!(!travels("sqlchat.api_key", SettingContext::Fixed, false));
        assert!(!travels("transaction_isolation", SettingContext::User, true));
        assert!(!travels("Application_Name", SettingContext::User, false));
        assert!(!travels("client_encoding", SettingContext::User, false));
    }

    fn setting(name: &str, value: &str, superuser_set: bool) -> Setting {
        Setting { name: name.into(), value: value.into(), superuser_set, set_by: 16384 }
    }

    #[test]
    fn snapshots_read_back() {
        let s = Snapshot(vec![setting("TimeZone", "Asia/Tokyo", false), setting("statement_timeout", "500", true)]);
        assert_eq!(Snapshot::from_json(&s.to_json()), Some(s.clone()));
        assert_eq!(Snapshot::from_json(&serde_json::json!({"x": 1})), None);
        assert_eq!(s.to_json()[0], serde_json::json!(["TimeZone", "Asia/Tokyo", false, 16384]));
        // Name and value alone (who set it unknown) are not a snapshot: never applied as a superuser's.
        let bare = serde_json::json!([["sqlchat.api_base", "http://elsewhere"]]);
        assert_eq!(Snapshot::from_json(&bare), None);
    }

    #[test]
    fn a_value_is_set_again_with_the_rights_it_was_set_with() {
        assert_eq!(setting("plpgsql.variable_conflict", "use_column", false).context(), SettingContext::User);
        assert_eq!(setting("sqlchat.send_rows", "none", true).context(), SettingContext::Superuser);
    }

    fn allowed() -> RoleCheck {
        RoleCheck {
            role_exists: true,
            login_exists: true,
            login_allowed: true,
            connect_allowed: true,
            set_role_allowed: true,
        }
    }

    #[test]
    fn a_job_runs_only_while_its_session_user_could_log_in_and_become_its_role() {
        let roles = JobRoles { job: 7, role: "analysts", login: "alice", database: "shop" };
        assert_eq!(role_refusal(roles, allowed()), None);
        let refused = |check: RoleCheck| role_refusal(roles, check).map(|e| (e.sqlstate().to_string(), e.to_string()));
        let (sqlstate, message) = refused(RoleCheck { login_allowed: false, ..allowed() }).unwrap();
        assert_eq!((sqlstate.as_str(), message.contains("alice")), ("28000", true), "{message}");
        let (sqlstate, message) = refused(RoleCheck { connect_allowed: false, ..allowed() }).unwrap();
        assert_eq!((sqlstate.as_str(), message.contains("shop")), ("42501", true), "{message}");
        let (sqlstate, message) = refused(RoleCheck { set_role_allowed: false, ..allowed() }).unwrap();
        assert_eq!(sqlstate, "42501");
        assert!(message.contains("alice") && message.contains("analysts"), "{message}");
        let (sqlstate, message) = refused(RoleCheck { role_exists: false, ..allowed() }).unwrap();
        assert_eq!((sqlstate.as_str(), message.contains("analysts")), ("42704", true), "{message}");
        // A role that is gone says so before anything else is said about it.
        let gone = RoleCheck { login_exists: false, login_allowed: false, connect_allowed: false, ..allowed() };
        let (sqlstate, message) = refused(gone).unwrap();
        assert_eq!((sqlstate.as_str(), message.contains("alice")), ("42704", true), "{message}");
    }

    /// Jobs as the worker takes them: by round, then by id.
    struct Queue {
        next_id: i64,
        queued: Vec<(i64, i64, &'static str)>,
    }

    impl Queue {
        fn submit(&mut self, role: &'static str) {
            let role_last = self.queued.iter().filter(|j| j.2 == role).map(|j| j.0).max();
            let head = self.queued.iter().map(|j| j.0).min();
            self.next_id += 1;
            self.queued.push((queue_round(role_last, head), self.next_id, role));
        }

        fn take(&mut self) -> &'static str {
            let next = self.queued.iter().enumerate().min_by_key(|(_, j)| (j.0, j.1)).map(|(i, _)| i).unwrap();
            self.queued.remove(next).2
        }
    }

    #[test]
    fn one_roles_flood_delays_another_roles_job_by_at_most_one_job() {
        let mut q = Queue { next_id: 0, queued: vec![] };
        for _ in 0..100 {
            q.submit("alice");
        }
        assert_eq!(q.take(), "alice");
        q.submit("bob");
        let order: Vec<_> = (0..3).map(|_| q.take()).collect();
        assert!(order[..2].contains(&"bob"), "bob waited behind alice's flood: {order:?}");
        // Two floods take turns, whoever submitted first.
        for _ in 0..10 {
            q.submit("bob");
        }
        let order: Vec<_> = (0..10).map(|_| q.take()).collect();
        let bobs = order.iter().filter(|r| **r == "bob").count();
        assert!((4..=6).contains(&bobs), "not round-robin: {order:?}");
        // A role's own jobs keep their order.
        let mut q = Queue { next_id: 0, queued: vec![] };
        (0..5).for_each(|_| q.submit("carol"));
        let ids: Vec<i64> = {
            let mut taken = vec![];
            while !q.queued.is_empty() {
                let next = q.queued.iter().enumerate().min_by_key(|(_, j)| (j.0, j.1)).map(|(i, _)| i).unwrap();
                taken.push(q.queued.remove(next).1);
            }
            taken
        };
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_cap_counts_queued_jobs() {
        assert!(may_queue(0, 1));
        assert!(may_queue(99, 100));
        assert!(!may_queue(100, 100));
        assert!(!may_queue(250, 100));
    }

    fn demand(queued: u32, workers: u32, available: u32) -> DatabaseDemand {
        DatabaseDemand { queued, visit_due: false, workers, available }
    }

    #[test]
    fn workers_go_round_robin_up_to_the_limit() {
        let d = [demand(10, 0, 0), demand(1, 0, 0), demand(5, 0, 0)];
        assert_eq!(plan_starts(&d, 0, 4, 0), vec![0, 1, 2, 0]);
        assert_eq!(plan_starts(&d, 0, 4, 1), vec![1, 2, 0, 2]);
        assert_eq!(plan_starts(&d, 3, 4, 0), vec![0]);
        assert!(plan_starts(&d, 4, 4, 0).is_empty());
        assert!(plan_starts(&d, 9, 4, 0).is_empty(), "max_workers lowered below the workers running");
    }

    #[test]
    fn idle_workers_count_against_queued_jobs() {
        assert!(plan_starts(&[demand(2, 2, 2)], 2, 8, 0).is_empty());
        assert_eq!(plan_starts(&[demand(3, 2, 1)], 2, 8, 0), vec![0, 0]);
    }

    #[test]
    fn a_due_visit_gets_one_worker_unless_one_there_is_free() {
        let visit = DatabaseDemand { visit_due: true, ..DatabaseDemand::default() };
        assert_eq!(plan_starts(&[visit], 0, 4, 0), vec![0]);
        let idle = DatabaseDemand { visit_due: true, workers: 1, available: 1, ..DatabaseDemand::default() };
        assert!(plan_starts(&[idle], 1, 4, 0).is_empty());
        // Its only worker runs a long job: another does the maintenance meanwhile.
        let busy = DatabaseDemand { visit_due: true, workers: 1, ..DatabaseDemand::default() };
        assert_eq!(plan_starts(&[busy], 1, 4, 0), vec![0]);
        assert!(plan_starts(&[busy], 1, 1, 0).is_empty(), "within max_workers");
    }

    #[test]
    fn a_worker_yields_only_when_all_slots_are_taken_and_a_database_starves() {
        assert!(should_yield(2, 2, true));
        assert!(!should_yield(1, 2, true));
        assert!(!should_yield(2, 2, false));
    }

    #[test]
    fn idle_workers_end() {
        let t = Duration::from_secs(10);
        assert!(should_exit(false, Duration::ZERO, t));
        assert!(!should_exit(true, Duration::from_secs(9), t));
        assert!(should_exit(true, t, t));
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(7), Duration::from_secs(60));
        assert_eq!(retry_delay(100), Duration::from_secs(60));
    }
}
