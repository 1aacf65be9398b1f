//! `sqlchat.progress = on`: a NOTICE per step of an ask, with the time since it began. NOTICEs
//! reach the client as they are sent, so a long wait shows what it is waiting for.

use super::meter;
use crate::gucs;
use sqlchat_core::openai::Purpose;

pub fn notice(text: &str) {
    if gucs::progress() && meter::active() {
        pgrx::notice!("sqlchat: {text} [{:.1} ms]", meter::elapsed_ms());
    }
}

pub fn tables_chosen(engine: &str, tables: &[String]) {
    if gucs::progress() {
        notice(&format!("tables chosen ({engine}): {}", tables.join(", ")));
    }
}

pub fn waiting_for_model(model: &str, purpose: Purpose) {
    if !gucs::progress() {
        return;
    }
    let doing = match purpose {
        Purpose::GenerateSql => "writing the SQL",
        Purpose::Repair => "repairing the SQL",
        Purpose::Answer => "wording the answer",
        Purpose::Summarize => "summarizing earlier turns",
        Purpose::Chart => "titling the chart",
        Purpose::CheckSetup => "listing models",
    };
    notice(&format!("{doing}: waiting for the model {model}"));
}
