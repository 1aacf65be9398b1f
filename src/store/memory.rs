//! Conversation memory per role and session (sqlchat.turn, sqlchat.session_summary), with a
//! per-backend fallback where the transaction cannot write (hot standby, read-only transaction).

use super::{as_owner, writable, Caller};
use pgrx::prelude::*;
use sqlchat_core::prompt::Turn;
use std::cell::RefCell;
use std::num::NonZeroUsize;

/// Turns read at most per question; a longer session is summarised beyond these.
const MAX_TURNS_READ: i64 = 200;

/// Sessions and turns per session kept in a backend that cannot write (bounded: a long session
/// on a standby keeps its latest turns).
const LOCAL_SESSIONS: usize = 256;
const LOCAL_TURNS: usize = 50;

thread_local! {
    /// Turns remembered only in this backend because the transaction could not write them.
    static LOCAL: RefCell<lru::LruCache<(Caller, String), Vec<Turn>>> =
        RefCell::new(lru::LruCache::new(NonZeroUsize::new(LOCAL_SESSIONS).expect("non-zero")));
}

/// What a question needs from the session's past.
#[derive(Debug, Default)]
pub struct Context {
    pub recent: Vec<Turn>,
    pub summary: Option<String>,
    /// Turns older than `recent` that `summary` does not cover yet, and the id of the newest.
    pub unsummarized: Vec<Turn>,
    pub unsummarized_through: i64,
}

pub fn load(role: &Caller, session: &str, max_history: usize) -> Context {
    let stored = as_owner("reading conversation memory", || {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT summary, through_turn FROM sqlchat.session_summary \
                 WHERE role_oid = $1 AND role_name = $2 AND session_id = $3",
                None,
                &[role.oid.into(), role.name.as_str().into(), session.into()],
            )?;
            let (summary, through) = if t.is_empty() { (None, None) } else { t.first().get_two::<String, i64>()? };
            let through = through.unwrap_or(0);
            let mut turns: Vec<(i64, Turn)> = Vec::new();
            let rows = c.select(
                "SELECT id, question, sql, answer FROM sqlchat.turn \
                 WHERE role_oid = $1 AND role_name = $2 AND session_id = $3 AND id > $4 ORDER BY id DESC LIMIT $5",
                None,
                &[role.oid.into(), role.name.as_str().into(), session.into(), through.into(), MAX_TURNS_READ.into()],
            )?;
            for row in rows {
                let id: i64 = row.get(1)?.unwrap_or_default();
                turns.push((
                    id,
                    Turn { question: row.get(2)?.unwrap_or_default(), sql: row.get(3)?, answer: row.get(4)? },
                ));
            }
            turns.reverse();
            Ok((summary, turns))
        })
    });
    let (summary, mut turns) = stored.unwrap_or((None, Vec::new()));
    let key = (role.clone(), session.to_string());
    LOCAL.with(|l| {
        if let Some(local) = l.borrow_mut().get(&key) {
            turns.extend(local.iter().cloned().map(|t| (i64::MAX, t)));
        }
    });
    let split = turns.len().saturating_sub(max_history);
    if !writable() {
        // A summary could not be stored here: older turns are left out rather than summarised
        // again on every question.
        return Context {
            recent: turns[split..].iter().map(|(_, t)| t.clone()).collect(),
            summary,
            ..Context::default()
        };
    }
    let recent: Vec<Turn> = turns[split..].iter().map(|(_, t)| t.clone()).collect();
    let older = &turns[..split];
    Context {
        recent,
        summary,
        unsummarized_through: older.iter().map(|(id, _)| *id).filter(|id| *id != i64::MAX).max().unwrap_or(0),
        unsummarized: older.iter().map(|(_, t)| t.clone()).collect(),
    }
}

pub fn append(role: &Caller, session: &str, turn: &Turn) {
    if !writable() {
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            let turns = l.get_or_insert_mut((role.clone(), session.to_string()), Vec::new);
            turns.push(turn.clone());
            if turns.len() > LOCAL_TURNS {
                turns.remove(0);
            }
        });
        return;
    }
    as_owner("remembering the turn", || {
        Spi::connect_mut(|c| {
            c.update(
                "INSERT INTO sqlchat.turn (role_oid, role_name, session_id, question, sql, answer) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                None,
                &[
                    role.oid.into(),
                    role.name.as_str().into(),
                    session.into(),
                    turn.question.as_str().into(),
                    turn.sql.clone().into(),
                    turn.answer.clone().into(),
                ],
            )
            .map(|_| ())
        })
    });
}

pub fn store_summary(role: &Caller, session: &str, summary: &str, through_turn: i64) {
    if !writable() || through_turn <= 0 {
        return;
    }
    as_owner("storing the conversation summary", || {
        Spi::connect_mut(|c| {
            c.update(
                "INSERT INTO sqlchat.session_summary (role_oid, role_name, session_id, summary, through_turn) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (role_oid, role_name, session_id) DO UPDATE \
                 SET summary = excluded.summary, through_turn = excluded.through_turn, updated_at = now()",
                None,
                &[role.oid.into(), role.name.as_str().into(), session.into(), summary.into(), through_turn.into()],
            )
            .map(|_| ())
        })
    });
}

/// One row of `sqlchat.history`.
pub type HistoryRow = (i64, String, Option<String>, Option<String>, Option<pgrx::datum::TimestampWithTimeZone>);

pub fn history(role: &Caller, session: &str) -> Vec<HistoryRow> {
    let mut rows = as_owner("reading conversation memory", || {
        Spi::connect(|c| {
            let mut out = Vec::new();
            for row in c.select(
                "SELECT id, question, sql, answer, created_at FROM sqlchat.turn \
                 WHERE role_oid = $1 AND role_name = $2 AND session_id = $3 ORDER BY id",
                None,
                &[role.oid.into(), role.name.as_str().into(), session.into()],
            )? {
                let id: i64 = row.get(1)?.unwrap_or_default();
                out.push((id, row.get(2)?.unwrap_or_default(), row.get(3)?, row.get(4)?, row.get(5)?));
            }
            Ok(out)
        })
    })
    .unwrap_or_default();
    // Turns remembered only in this backend (a standby) have no id: 0.
    LOCAL.with(|l| {
        if let Some(local) = l.borrow_mut().get(&(role.clone(), session.to_string())) {
            rows.extend(local.iter().map(|t| (0, t.question.clone(), t.sql.clone(), t.answer.clone(), None)));
        }
    });
    rows
}

/// Deletes the caller's session; the number of turns forgotten.
pub fn forget(role: &Caller, session: &str) -> i64 {
    let local = LOCAL.with(|l| l.borrow_mut().pop(&(role.clone(), session.to_string())).map(|v| v.len()).unwrap_or(0));
    if !writable() {
        return local as i64;
    }
    let stored = as_owner("forgetting the session", || {
        Spi::connect_mut(|c| {
            c.update(
                "DELETE FROM sqlchat.session_summary WHERE role_oid = $1 AND role_name = $2 AND session_id = $3",
                None,
                &[role.oid.into(), role.name.as_str().into(), session.into()],
            )?;
            let t = c.update(
                "DELETE FROM sqlchat.turn WHERE role_oid = $1 AND role_name = $2 AND session_id = $3",
                None,
                &[role.oid.into(), role.name.as_str().into(), session.into()],
            )?;
            Ok(t.len() as i64)
        })
    })
    .unwrap_or(0);
    stored + local as i64
}
