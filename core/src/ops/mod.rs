//! What operators see of sqlchat: cumulative statistics and their Prometheus form, the record of
//! one ask (slow log, interaction log), the ring that hands log rows to the background worker,
//! per-role quotas and `explain`. Plain data and decisions; the extension keeps the counters and
//! the ring in shared memory and writes the texts.

pub mod explain;
pub mod log;
pub mod metrics;
pub mod quota;
pub mod record;
pub mod ring;
pub mod stats;
