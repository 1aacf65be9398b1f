//! Languages sqlchat reads: SQL (one scanner for the whole project).

pub mod sql;
