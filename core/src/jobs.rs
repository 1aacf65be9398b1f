//! Background asks (`sqlchat.submit` / `sqlchat.result`): the decisions that need no server. The
//! extension's `src/jobs/` stores jobs, captures settings and runs the workers; this module says
//! what a job's state means, which settings travel with a job, and which database gets a worker.

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

/// The settings of the submitting session, in PostgreSQL's own text form (integers in their base
/// unit, so that they read back exactly).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot(pub Vec<(String, String)>);

impl Snapshot {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A stored snapshot; one that cannot be read gives no settings (the job then runs with the
    /// server's, which `from_json`'s callers report).
    pub fn from_json(value: &serde_json::Value) -> Option<Snapshot> {
        serde_json::from_value(value.clone()).ok()
    }
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
        let for_visit = u32::from(self.visit_due && self.workers == 0);
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
/// job by job rather than one of them waiting for another's queue to drain.
pub fn should_yield(workers: usize, max_workers: usize, another_database_starved: bool) -> bool {
    another_database_starved && workers >= max_workers
}

/// Whether a worker with nothing to do ends: at once when it ran no job in this visit (a sweep,
/// a maintenance visit), else after `idle_timeout` without work.
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

    #[test]
    fn snapshots_read_back() {
        let s = Snapshot(vec![("TimeZone".into(), "Asia/Tokyo".into()), ("statement_timeout".into(), "500".into())]);
        assert_eq!(Snapshot::from_json(&s.to_json()), Some(s));
        assert_eq!(Snapshot::from_json(&serde_json::json!({"x": 1})), None);
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
    fn a_due_visit_gets_one_worker_unless_the_database_has_one() {
        let visit = DatabaseDemand { visit_due: true, ..DatabaseDemand::default() };
        assert_eq!(plan_starts(&[visit], 0, 4, 0), vec![0]);
        let busy = DatabaseDemand { visit_due: true, workers: 1, ..DatabaseDemand::default() };
        assert!(plan_starts(&[busy], 1, 4, 0).is_empty());
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
