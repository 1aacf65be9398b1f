//! What operators see of sqlchat: cumulative statistics and their Prometheus form, the record of
//! one ask (slow log, interaction log), per-role quotas and `explain`. Plain data and decisions;
//! the extension keeps the counters in shared memory and writes the texts.

pub mod explain;
pub mod metrics;
pub mod quota;
pub mod record;
pub mod stats;
