//! Background asks in sqlchat.job: queued by `submit`, claimed and finished by the workers, read
//! by `result` and `job_status`, cancelled by `cancel_job`, removed after sqlchat.job_retention.
//! Every access runs as the extension's owner; rows belong to the submitting role by oid and name.
//! A job's end (done, failed, cancelled) sends `NOTIFY sqlchat_jobs, '<id>'` in the same
//! transaction.
//!
//! Locks: a user's transaction locks a row only when `cancel_job` cancels a queued job, and
//! workers skip locked rows (`SKIP LOCKED`); a running job's row is never locked by a user's
//! transaction (its cancel goes through shared memory), so no worker ever waits for one.

use super::{as_owner, Caller};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB};
use sqlchat_core::jobs::{after_interruption, may_queue, queue_round, State};

/// The channel a job's end is announced on.
pub const CHANNEL: &str = "sqlchat_jobs";

/// Who is looking: a role sees its own jobs, superusers see every job.
pub struct Viewer {
    pub role: Caller,
    pub all: bool,
}

impl Viewer {
    pub fn current() -> Viewer {
        Viewer { role: Caller::current(), all: unsafe { pg_sys::superuser() } }
    }
}

/// An ERROR as PostgreSQL raised it, kept to be raised again by `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredError {
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl StoredError {
    /// One of sqlchat's own errors, as `raise` would raise it.
    pub fn of(err: &sqlchat_core::Error) -> StoredError {
        let r = err.report(&crate::error::secrets());
        StoredError { sqlstate: r.sqlstate, message: r.message, detail: r.detail, hint: Some(r.hint) }
    }
}

pub type Answer = PgHeapTuple<'static, AllocatedByRust>;

/// How a job ended, as `result` needs it.
pub struct Outcome {
    pub state: State,
    /// The stored `sqlchat.answer`, detoasted in the caller's memory context.
    pub answer: Option<pg_sys::Datum>,
    pub error: Option<StoredError>,
}

/// A job to queue: the question, and who asks it.
pub struct NewJob<'a> {
    /// The role it runs as (current_user at submit).
    pub role: &'a Caller,
    /// The session user at submit.
    pub login: &'a Caller,
    /// `role` was chosen with SET ROLE (not by a SECURITY DEFINER function): the session user
    /// must still be allowed to SET ROLE to it when the job runs.
    pub via_set_role: bool,
    pub question: &'a str,
    pub session_id: Option<&'a str>,
    pub settings: serde_json::Value,
}

/// What a worker runs.
pub struct Claimed {
    pub id: i64,
    pub role: Caller,
    pub login: Caller,
    pub via_set_role: bool,
    pub question: String,
    pub session_id: Option<String>,
    pub settings: Option<serde_json::Value>,
}

/// One row of `sqlchat.job_status`.
pub type StatusRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    Option<TimestampWithTimeZone>,
    i32,
    Option<String>,
    Option<String>,
    Option<i32>,
);

/// What `queue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// The job's id.
    Job(i64),
    /// The role has `max_queued` jobs queued already: nothing was queued.
    Full,
}

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// It was queued: it is cancelled and will never run.
    Queued,
    /// It runs: the worker running it is to be interrupted (through shared memory, once the
    /// cancelling transaction commits).
    Running,
    /// It had already ended.
    Ended,
}

const VISIBLE: &str = "($2 OR (role_oid OPERATOR(pg_catalog.=) $3 AND role_name OPERATOR(pg_catalog.=) $4))";

fn viewer_args(job: Option<i64>, viewer: &Viewer) -> [DatumWithOid<'_>; 4] {
    [job.into(), viewer.all.into(), viewer.role.oid.into(), viewer.role.name.as_str().into()]
}

fn notify(c: &mut pgrx::spi::SpiClient<'_>, job: i64) -> Result<(), pgrx::spi::Error> {
    c.update("SELECT pg_catalog.pg_notify($1, $2::text)", None, &[CHANNEL.into(), job.into()]).map(|_| ())
}

/// Queues a question unless its role has `max_queued` jobs queued, in the round of the fair
/// queue it comes in (`sqlchat_core::jobs::queue_round`).
pub fn queue(job: &NewJob<'_>, max_queued: i64) -> Option<Queued> {
    as_owner("queueing the job", || {
        Spi::connect_mut(|c| {
            let place = c
                .select(
                    "SELECT (SELECT pg_catalog.count(*) FROM (SELECT FROM sqlchat.job \
                              WHERE role_oid OPERATOR(pg_catalog.=) $1 AND role_name OPERATOR(pg_catalog.=) $2 \
                                AND state OPERATOR(pg_catalog.=) 'queued' LIMIT $3) q), \
                            (SELECT pg_catalog.max(queue_round) FROM sqlchat.job WHERE role_oid OPERATOR(pg_catalog.=) $1 \
                              AND role_name OPERATOR(pg_catalog.=) $2 AND state OPERATOR(pg_catalog.=) 'queued'), \
                            (SELECT pg_catalog.min(queue_round) FROM sqlchat.job WHERE state OPERATOR(pg_catalog.=) 'queued')",
                    None,
                    &[job.role.oid.into(), job.role.name.as_str().into(), max_queued.into()],
                )?
                .first();
            if !may_queue(place.get::<i64>(1)?.unwrap_or(0), max_queued) {
                return Ok(Some(Queued::Full));
            }
            let round = queue_round(place.get(2)?, place.get(3)?);
            let id = c
                .update(
                    "INSERT INTO sqlchat.job (role_oid, role_name, login_oid, login_name, via_set_role, question, \
                     session_id, settings, queue_round) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                    None,
                    &[
                        job.role.oid.into(),
                        job.role.name.as_str().into(),
                        job.login.oid.into(),
                        job.login.name.as_str().into(),
                        job.via_set_role.into(),
                        job.question.into(),
                        job.session_id.into(),
                        JsonB(job.settings.clone()).into(),
                        round.into(),
                    ],
                )?
                .first()
                .get_one::<i64>()?;
            Ok(id.map(Queued::Job))
        })
    })
    .flatten()
}

/// The job's state, and its answer or error once it ended; None when the viewer cannot see it.
/// Read with the latest snapshot, so a waiting `result` sees the end whatever its isolation level.
pub fn outcome(job: i64, viewer: &Viewer) -> Option<Outcome> {
    as_owner("reading the job", || unsafe {
        let caller_context = pg_sys::CurrentMemoryContext;
        pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot());
        let read = Spi::connect(|c| {
            let row = c
                .select(
                    &format!(
                        "SELECT state, answer, sqlstate, message, detail, hint FROM sqlchat.job \
                         WHERE id OPERATOR(pg_catalog.=) $1 AND {VISIBLE}"
                    ),
                    None,
                    &viewer_args(Some(job), viewer),
                )?
                .first();
            if row.is_empty() {
                return Ok(None);
            }
            let state = State::parse(&row.get::<String>(1)?.unwrap_or_default()).unwrap_or(State::Failed);
            let error = row.get::<String>(3)?.map(|sqlstate| StoredError {
                sqlstate,
                message: row.get(4).ok().flatten().unwrap_or_default(),
                detail: row.get(5).ok().flatten(),
                hint: row.get(6).ok().flatten(),
            });
            // A raw copy, not a PgHeapTuple: its tuple descriptor would belong to this
            // subtransaction's resource owner, gone by the time the caller returns it.
            let answer = row.get_datum_by_ordinal(2)?.map(|d| {
                let previous = pg_sys::MemoryContextSwitchTo(caller_context);
                let copy = pg_sys::pg_detoast_datum_copy(d.cast_mut_ptr());
                pg_sys::MemoryContextSwitchTo(previous);
                pg_sys::Datum::from(copy)
            });
            Ok(Some(Outcome { state, answer, error }))
        });
        pg_sys::PopActiveSnapshot();
        read
    })
    .flatten()
}

/// The viewer's jobs (one, or all when `job` is None), newest first.
pub fn status(job: Option<i64>, viewer: &Viewer) -> Vec<StatusRow> {
    as_owner("reading the jobs", || {
        Spi::connect(|c| {
            let rows = c.select(
                &format!(
                    "SELECT id, state, role_name::text, question, session_id, submitted_at, started_at, \
                     finished_at, runs, sqlstate, message, worker_pid FROM sqlchat.job \
                     WHERE ($1 IS NULL OR id OPERATOR(pg_catalog.=) $1) AND {VISIBLE} ORDER BY id DESC"
                ),
                None,
                &viewer_args(job, viewer),
            )?;
            let mut out = Vec::new();
            for row in rows {
                out.push((
                    row.get(1)?.unwrap_or_default(),
                    row.get(2)?.unwrap_or_default(),
                    row.get(3)?.unwrap_or_default(),
                    row.get(4)?.unwrap_or_default(),
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                    row.get(9)?.unwrap_or_default(),
                    row.get(10)?,
                    row.get(11)?,
                    row.get(12)?,
                ));
            }
            Ok(out)
        })
    })
    .unwrap_or_default()
}

/// Cancels a queued job (it ends at once, with its NOTIFY; the row stays locked until the caller's
/// transaction ends, and workers skip it meanwhile) or says that it runs, leaving its row alone;
/// None when the viewer cannot see it.
pub fn cancel(job: i64, viewer: &Viewer) -> Option<Cancel> {
    let cancelled = StoredError::of(&sqlchat_core::Error::JobCancelled { job });
    as_owner("cancelling the job", || {
        Spi::connect_mut(|c| {
            let queued = c.update(
                &format!(
                    "UPDATE sqlchat.job SET state = 'cancelled', finished_at = pg_catalog.clock_timestamp(), \
                     settings = NULL, sqlstate = $5, message = $6, hint = $7 \
                     WHERE id OPERATOR(pg_catalog.=) $1 AND {VISIBLE} AND state OPERATOR(pg_catalog.=) 'queued' \
                     RETURNING id"
                ),
                None,
                &[
                    job.into(),
                    viewer.all.into(),
                    viewer.role.oid.into(),
                    viewer.role.name.as_str().into(),
                    cancelled.sqlstate.as_str().into(),
                    cancelled.message.as_str().into(),
                    cancelled.hint.clone().into(),
                ],
            )?;
            if !queued.is_empty() {
                notify(c, job)?;
                return Ok(Some(Cancel::Queued));
            }
            let state = c
                .select(
                    &format!("SELECT state FROM sqlchat.job WHERE id OPERATOR(pg_catalog.=) $1 AND {VISIBLE}"),
                    None,
                    &viewer_args(Some(job), viewer),
                )?
                .first();
            if state.is_empty() {
                return Ok(None);
            }
            Ok(Some(match state.get_one::<String>()?.as_deref().and_then(State::parse) {
                Some(State::Running) => Cancel::Running,
                _ => Cancel::Ended,
            }))
        })
    })
    .flatten()
}

/// Takes the next queued job (lowest round, then oldest) for the worker with `token`; None when
/// none can be taken. Also how many are still queued, counted up to `count_up_to`.
pub fn claim(token: i64, count_up_to: i64) -> Option<(Option<Claimed>, u32)> {
    as_owner("claiming a job", || {
        Spi::connect_mut(|c| {
            let rows = c.update(
                "UPDATE sqlchat.job SET state = 'running', started_at = pg_catalog.clock_timestamp(), \
                 runs = runs OPERATOR(pg_catalog.+) 1, worker = $1, worker_pid = pg_catalog.pg_backend_pid() \
                 WHERE id OPERATOR(pg_catalog.=) (SELECT id FROM sqlchat.job WHERE state OPERATOR(pg_catalog.=) 'queued' \
                   ORDER BY queue_round, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, role_oid, role_name::text, login_oid, login_name::text, via_set_role, question, \
                   session_id, settings",
                None,
                &[token.into()],
            )?;
            let claimed = match rows.into_iter().next() {
                None => None,
                Some(row) => Some(Claimed {
                    id: row.get(1)?.unwrap_or_default(),
                    role: Caller {
                        oid: row.get(2)?.unwrap_or(pg_sys::InvalidOid),
                        name: row.get(3)?.unwrap_or_default(),
                    },
                    login: Caller {
                        oid: row.get(4)?.unwrap_or(pg_sys::InvalidOid),
                        name: row.get(5)?.unwrap_or_default(),
                    },
                    via_set_role: row.get(6)?.unwrap_or(true),
                    question: row.get(7)?.unwrap_or_default(),
                    session_id: row.get(8)?,
                    settings: row.get::<JsonB>(9)?.map(|j| j.0),
                }),
            };
            let remaining = c
                .select(
                    "SELECT pg_catalog.count(*)::int4 FROM (SELECT FROM sqlchat.job \
                     WHERE state OPERATOR(pg_catalog.=) 'queued' LIMIT $1) q",
                    None,
                    &[count_up_to.into()],
                )?
                .first()
                .get_one::<i32>()?
                .unwrap_or(0);
            Ok((claimed, remaining.max(0) as u32))
        })
    })
}

/// Records how a job ended: its answer, or the ERROR it raised, or cancelled when a cancel was
/// asked for it while it ran. The final state, or None when the job is no longer this worker's.
pub fn finish(job: i64, token: i64, result: Result<Answer, StoredError>, cancel_asked: bool) -> Option<State> {
    let (state, answer, error) = match (cancel_asked, result) {
        (true, _) => (State::Cancelled, None, Some(StoredError::of(&sqlchat_core::Error::JobCancelled { job }))),
        (false, Ok(answer)) => (State::Done, Some(answer), None),
        (false, Err(e)) => (State::Failed, None, Some(e)),
    };
    as_owner("recording the job's end", || {
        Spi::connect_mut(|c| {
            let answer = match answer {
                Some(tuple) => {
                    let oid = tuple.composite_type_oid().unwrap_or(pg_sys::RECORDOID);
                    unsafe { DatumWithOid::new(tuple, oid) }
                }
                None => {
                    let oid = c
                        .select("SELECT 'sqlchat.answer'::pg_catalog.regtype::pg_catalog.oid", None, &[])?
                        .first()
                        .get_one::<pg_sys::Oid>()?;
                    DatumWithOid::null_oid(oid.unwrap_or(pg_sys::RECORDOID))
                }
            };
            let e = error.unwrap_or(StoredError {
                sqlstate: String::new(),
                message: String::new(),
                detail: None,
                hint: None,
            });
            let some = |s: String| Some(s).filter(|s| !s.is_empty());
            let recorded = c.update(
                "UPDATE sqlchat.job SET state = $3, answer = $4, sqlstate = $5, message = $6, detail = $7, hint = $8, \
                 finished_at = pg_catalog.clock_timestamp(), settings = NULL, worker = NULL \
                 WHERE id OPERATOR(pg_catalog.=) $1 AND worker OPERATOR(pg_catalog.=) $2 \
                   AND state OPERATOR(pg_catalog.=) 'running' RETURNING id",
                None,
                &[
                    job.into(),
                    token.into(),
                    state.as_str().into(),
                    answer,
                    some(e.sqlstate).into(),
                    some(e.message).into(),
                    e.detail.into(),
                    e.hint.into(),
                ],
            )?;
            if recorded.is_empty() {
                return Ok(None);
            }
            notify(c, job)?;
            Ok(Some(state))
        })
    })
    .flatten()
}

/// Jobs left `running` by workers that are gone (not among `live` tokens): queued again after
/// their first run (in the round at the head of the queue), else failed; cancelled when a cancel
/// was asked while they ran (`cancel_asked`). The ids of those that ended.
pub fn recover(live: &[i64], cancel_asked: &[i64]) -> Vec<i64> {
    as_owner("recovering jobs whose worker stopped", || {
        Spi::connect_mut(|c| {
            let rows = c.update(
                "SELECT id, runs FROM sqlchat.job WHERE state OPERATOR(pg_catalog.=) 'running' \
                 AND NOT (worker OPERATOR(pg_catalog.=) ANY ($1)) FOR UPDATE SKIP LOCKED",
                None,
                &[live.to_vec().into()],
            )?;
            let mut orphans = Vec::new();
            for row in rows {
                let job = row.get::<i64>(1)?.unwrap_or_default();
                orphans.push((job, row.get::<i32>(2)?.unwrap_or_default(), cancel_asked.contains(&job)));
            }
            let mut ended = Vec::new();
            for (job, runs, cancelled) in orphans {
                let state = after_interruption(runs, cancelled);
                let error = match state {
                    State::Cancelled => Some(sqlchat_core::Error::JobCancelled { job }),
                    State::Failed => Some(sqlchat_core::Error::JobInterrupted { job }),
                    _ => None,
                }
                .map(|e| StoredError::of(&e));
                c.update(
                    "UPDATE sqlchat.job SET state = $2, worker = NULL, worker_pid = NULL, \
                     started_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'queued' THEN NULL ELSE started_at END, \
                     queue_round = CASE WHEN $2 OPERATOR(pg_catalog.=) 'queued' THEN (SELECT COALESCE( \
                       pg_catalog.min(q.queue_round), 0) FROM sqlchat.job q WHERE q.state OPERATOR(pg_catalog.=) 'queued') \
                       ELSE queue_round END, \
                     finished_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'queued' THEN NULL ELSE pg_catalog.clock_timestamp() END, \
                     settings = CASE WHEN $2 OPERATOR(pg_catalog.=) 'queued' THEN settings END, \
                     sqlstate = $3, message = $4, hint = $5 WHERE id OPERATOR(pg_catalog.=) $1",
                    None,
                    &[
                        job.into(),
                        state.as_str().into(),
                        error.as_ref().map(|e| e.sqlstate.clone()).into(),
                        error.as_ref().map(|e| e.message.clone()).into(),
                        error.as_ref().and_then(|e| e.hint.clone()).into(),
                    ],
                )?;
                if state.is_final() {
                    notify(c, job)?;
                    ended.push(job);
                }
            }
            Ok(ended)
        })
    })
    .unwrap_or_default()
}
