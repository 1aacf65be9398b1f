//! Cumulative counters of one database and role. Plain integers in a `repr(C)` struct, so the
//! extension can keep them in shared memory and save them to a file as they are; every counter
//! only grows (saturating) until a reset.

use crate::openai::Purpose;

/// Purposes of gateway requests, in the order of `Counters::llm_requests`.
pub const PURPOSES: [Purpose; 6] =
    [Purpose::GenerateSql, Purpose::Repair, Purpose::Answer, Purpose::Summarize, Purpose::Chart, Purpose::CheckSetup];

/// Who answered, in the order of `Counters::answers`: the model, the offline engine, a verified
/// query, or SQL reused from the cache.
pub const ENGINES: [&str; 4] = ["llm", "offline", "verified", "cache"];

/// SQLSTATE classes counted on their own, in the order of `Counters::errors`; any other class
/// counts in the last slot, `other`.
pub const ERROR_CLASSES: [&str; 13] = ["08", "22", "25", "28", "40", "42", "53", "54", "55", "57", "58", "XX", "other"];

/// Upper bounds (milliseconds) of the ask latency histogram's buckets; a last bucket holds the rest.
pub const LATENCY_BOUNDS_MS: [u64; 13] = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000];

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Questions asked (ask, ask_full, generate_sql), answered or not.
    pub asks: u64,
    /// Asks answered, by `ENGINES`.
    pub answers: [u64; 4],
    /// Asks ended by an ERROR, by `ERROR_CLASSES`.
    pub errors: [u64; 13],
    /// Requests sent to the gateway (retries and fallback models included), by `PURPOSES`.
    pub llm_requests: [u64; 6],
    /// Requests that got no usable reply.
    pub llm_failures: u64,
    /// Tokens as the gateway's `usage` reported them.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Tokens estimated (characters / 4) for replies without `usage`.
    pub prompt_tokens_estimated: u64,
    pub completion_tokens_estimated: u64,
    /// Microseconds waiting for the gateway, running generated SQL, and in asks overall.
    pub gateway_us: u64,
    pub sql_us: u64,
    pub ask_us: u64,
    /// Asks per latency bucket (`LATENCY_BOUNDS_MS`, then the rest); not cumulative.
    pub latency: [u64; 14],
    /// Interaction log rows lost: the ring was full, or the worker could not write them.
    pub log_dropped: u64,
}

/// Token counts of one reply, and whether they were estimated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    pub estimated: bool,
}

/// How an ask ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Answered by this engine (`ENGINES`: llm, offline, verified) and whether the SQL came from the cache.
    Answered {
        engine: String,
        from_cache: bool,
    },
    Failed {
        sqlstate: String,
    },
}

impl Counters {
    pub fn add_request(&mut self, purpose: Purpose, gateway_us: u64, reply: Option<Tokens>) {
        bump(&mut self.llm_requests[purpose_slot(purpose)], 1);
        bump(&mut self.gateway_us, gateway_us);
        match reply {
            None => bump(&mut self.llm_failures, 1),
            Some(t) if t.estimated => {
                bump(&mut self.prompt_tokens_estimated, t.prompt);
                bump(&mut self.completion_tokens_estimated, t.completion);
            }
            Some(t) => {
                bump(&mut self.prompt_tokens, t.prompt);
                bump(&mut self.completion_tokens, t.completion);
            }
        }
    }

    pub fn add_sql(&mut self, sql_us: u64) {
        bump(&mut self.sql_us, sql_us);
    }

    pub fn add_ask(&mut self, ending: &Ending, ask_us: u64) {
        bump(&mut self.asks, 1);
        bump(&mut self.ask_us, ask_us);
        bump(&mut self.latency[latency_slot(ask_us)], 1);
        match ending {
            Ending::Answered { engine, from_cache } => bump(&mut self.answers[engine_slot(engine, *from_cache)], 1),
            Ending::Failed { sqlstate } => bump(&mut self.errors[error_slot(sqlstate)], 1),
        }
    }

    /// Adds another set of counters (one ask's) to these.
    pub fn merge(&mut self, other: &Counters) {
        fn add(a: &mut [u64], b: &[u64]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x = x.saturating_add(*y);
            }
        }
        self.asks = self.asks.saturating_add(other.asks);
        self.llm_failures = self.llm_failures.saturating_add(other.llm_failures);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(other.completion_tokens);
        self.prompt_tokens_estimated = self.prompt_tokens_estimated.saturating_add(other.prompt_tokens_estimated);
        self.completion_tokens_estimated =
            self.completion_tokens_estimated.saturating_add(other.completion_tokens_estimated);
        self.gateway_us = self.gateway_us.saturating_add(other.gateway_us);
        self.sql_us = self.sql_us.saturating_add(other.sql_us);
        self.ask_us = self.ask_us.saturating_add(other.ask_us);
        self.log_dropped = self.log_dropped.saturating_add(other.log_dropped);
        add(&mut self.answers, &other.answers);
        add(&mut self.errors, &other.errors);
        add(&mut self.llm_requests, &other.llm_requests);
        add(&mut self.latency, &other.latency);
    }

    /// All tokens, reported and estimated.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens
            .saturating_add(self.completion_tokens)
            .saturating_add(self.prompt_tokens_estimated)
            .saturating_add(self.completion_tokens_estimated)
    }

    /// Interaction log rows that never reached `sqlchat.log`.
    pub fn add_log_dropped(&mut self, rows: u64) {
        bump(&mut self.log_dropped, rows);
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }
}

fn bump(counter: &mut u64, by: u64) {
    *counter = counter.saturating_add(by);
}

pub fn purpose_slot(purpose: Purpose) -> usize {
    PURPOSES.iter().position(|p| *p == purpose).unwrap_or(0)
}

/// The answers slot: a hit of the cache counts as `cache` whoever first wrote the SQL.
pub fn engine_slot(engine: &str, from_cache: bool) -> usize {
    if from_cache {
        return 3;
    }
    ENGINES.iter().position(|e| *e == engine).unwrap_or(0)
}

pub fn error_slot(sqlstate: &str) -> usize {
    let class = sqlstate.get(..2).unwrap_or("");
    ERROR_CLASSES.iter().position(|c| *c == class).unwrap_or(ERROR_CLASSES.len() - 1)
}

pub fn latency_slot(us: u64) -> usize {
    LATENCY_BOUNDS_MS.iter().position(|&ms| us <= ms * 1000).unwrap_or(LATENCY_BOUNDS_MS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_per_purpose_and_keep_reported_and_estimated_tokens_apart() {
        let mut c = Counters::default();
        c.add_request(Purpose::GenerateSql, 1500, Some(Tokens { prompt: 100, completion: 10, estimated: false }));
        c.add_request(Purpose::Answer, 500, Some(Tokens { prompt: 40, completion: 8, estimated: true }));
        c.add_request(Purpose::Repair, 700, None);
        assert_eq!(c.llm_requests, [1, 1, 1, 0, 0, 0]);
        assert_eq!((c.prompt_tokens, c.completion_tokens), (100, 10));
        assert_eq!((c.prompt_tokens_estimated, c.completion_tokens_estimated), (40, 8));
        assert_eq!(c.llm_failures, 1);
        assert_eq!(c.gateway_us, 2700);
        assert_eq!(c.total_tokens(), 158);
    }

    #[test]
    fn asks_land_in_one_engine_or_error_class_and_one_latency_bucket() {
        let mut c = Counters::default();
        c.add_ask(&Ending::Answered { engine: "llm".into(), from_cache: false }, 3_000);
        c.add_ask(&Ending::Answered { engine: "llm".into(), from_cache: true }, 5_000);
        c.add_ask(&Ending::Answered { engine: "offline".into(), from_cache: false }, 5_001);
        c.add_ask(&Ending::Failed { sqlstate: "42703".into() }, 70_000_000);
        c.add_ask(&Ending::Failed { sqlstate: "P0001".into() }, 1);
        assert_eq!(c.asks, 5);
        assert_eq!(c.answers, [1, 1, 0, 1]);
        assert_eq!(c.errors[error_slot("42501")], 1);
        assert_eq!(c.errors[ERROR_CLASSES.len() - 1], 1);
        assert_eq!(c.errors_total(), 2);
        assert_eq!(c.latency[0], 3, "5 ms is inside the first bucket");
        assert_eq!(c.latency[1], 1);
        assert_eq!(c.latency[13], 1, "past the last bound");
    }

    #[test]
    fn merging_one_ask_adds_every_counter() {
        let mut ask = Counters::default();
        ask.add_request(Purpose::Summarize, 10, Some(Tokens { prompt: 3, completion: 2, estimated: true }));
        ask.add_sql(7);
        ask.add_ask(&Ending::Failed { sqlstate: "08001".into() }, 20_000);
        ask.add_log_dropped(1);
        let mut total = Counters { asks: 4, ..Counters::default() };
        total.merge(&ask);
        total.merge(&ask);
        assert_eq!(total.asks, 6);
        assert_eq!(total.llm_requests[purpose_slot(Purpose::Summarize)], 2);
        assert_eq!((total.prompt_tokens_estimated, total.completion_tokens_estimated), (6, 4));
        assert_eq!((total.gateway_us, total.sql_us, total.ask_us), (20, 14, 40_000));
        assert_eq!(total.errors[error_slot("08001")], 2);
        assert_eq!(total.latency[latency_slot(20_000)], 2);
        assert_eq!(total.log_dropped, 2);
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let mut c = Counters { asks: u64::MAX, ..Counters::default() };
        c.add_ask(&Ending::Failed { sqlstate: "57014".into() }, 1);
        assert_eq!(c.asks, u64::MAX);
    }
}
