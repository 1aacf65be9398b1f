//! The pipeline's side effects in a backend: gateway calls and sandboxed execution.

use crate::exec::{self, Limits};
use crate::llm;
use sqlchat_core::error::Result;
use sqlchat_core::openai::{Message, Purpose};
use sqlchat_core::pipeline::{ExecFailure, Host};
use sqlchat_core::result::ResultSet;

pub struct Backend {
    pub limits: Limits,
}

impl Host for Backend {
    fn chat(&mut self, purpose: Purpose, messages: &[Message], temperature: f64) -> Result<String> {
        llm::chat(purpose, messages, temperature)
    }

    fn execute(&mut self, sql: &str) -> std::result::Result<ResultSet, ExecFailure> {
        exec::run_readonly(sql, self.limits)
    }
}
