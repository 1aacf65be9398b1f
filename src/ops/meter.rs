//! What the current ask costs, gathered where it happens (each gateway request in llm.rs, each
//! statement in host.rs) and handed to the statistics, the quota and the slow log when the ask
//! ends. Outside an ask (suggest_chart, check_setup) a request goes to the statistics at once.

use sqlchat_core::estimate_tokens;
use sqlchat_core::openai::{Completion, Message, Purpose};
use sqlchat_core::ops::record::AskRecord;
use sqlchat_core::ops::stats::{Counters, Tokens};
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// One ask in progress.
pub struct Meter {
    pub started: Instant,
    /// The same moment as a TimestampTz, for the interaction log.
    pub started_at: i64,
    /// Counters of this ask alone (requests, tokens, times), added to the shared ones at the end.
    pub counters: Counters,
    pub record: AskRecord,
}

thread_local! {
    static CURRENT: RefCell<Option<Meter>> = const { RefCell::new(None) };
}

pub fn begin() {
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Meter {
            started: Instant::now(),
            started_at: unsafe { pgrx::pg_sys::GetCurrentTimestamp() },
            counters: Counters::default(),
            record: AskRecord::default(),
        })
    });
}

/// Ends the current ask and gives what it measured.
pub fn end() -> Option<Meter> {
    CURRENT.with(|c| c.borrow_mut().take())
}

pub fn active() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// Milliseconds since the ask began (0 outside one).
pub fn elapsed_ms() -> f64 {
    CURRENT.with(|c| c.borrow().as_ref().map_or(0.0, |m| ms(m.started.elapsed())))
}

/// One request sent to the gateway: its purpose, how long it took, and the reply if it was usable
/// (tokens from its `usage`, else estimated from the messages and the reply's text).
pub fn gateway_request(purpose: Purpose, took: Duration, messages: &[Message], reply: Option<&Completion>) {
    let tokens = reply.map(|c| match c.usage {
        Some(u) => Tokens { prompt: u.prompt_tokens, completion: u.completion_tokens, estimated: false },
        None => Tokens {
            prompt: messages.iter().map(|m| estimate_tokens(&m.content) as u64).sum(),
            completion: estimate_tokens(&c.text) as u64,
            estimated: true,
        },
    });
    let us = took.as_micros() as u64;
    let in_ask = CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let Some(m) = c.as_mut() else { return false };
        m.counters.add_request(purpose, us, tokens);
        let r = &mut m.record;
        r.llm_calls += 1;
        if let Some(t) = tokens {
            r.prompt_tokens += t.prompt;
            r.completion_tokens += t.completion;
            r.tokens_estimated |= t.estimated;
        }
        r.gateway_ms += ms(took);
        r.push_step(&format!("llm:{}", purpose.as_str()), ms(took));
        true
    });
    if !in_ask {
        super::stats::add(|c| c.add_request(purpose, us, tokens));
        if let Some(t) = tokens {
            super::quota::charge_tokens(t.prompt + t.completion);
        }
    }
}

/// One statement run in the sandbox (the generated SQL or an offline value lookup).
pub fn sql_ran(took: Duration) {
    CURRENT.with(|c| {
        if let Some(m) = c.borrow_mut().as_mut() {
            m.counters.add_sql(took.as_micros() as u64);
            m.record.sql_ms += ms(took);
            m.record.push_step("sql", ms(took));
        }
    });
}

/// A step of the ask that is neither a request nor a statement (reading the catalog...).
pub fn step(name: &str, took: Duration) {
    CURRENT.with(|c| {
        if let Some(m) = c.borrow_mut().as_mut() {
            m.record.push_step(name, ms(took));
        }
    });
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
