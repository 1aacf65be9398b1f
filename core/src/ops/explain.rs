//! `sqlchat.explain`: what an ask would do, decided by the same functions the pipeline calls
//! (ranker, schema rendering, prompt, cache key, offline engine), without calling the model or
//! running the statement. Only the offline engine's own bounded value lookups run, through the
//! probe the host supplies, because its decision depends on them.

use crate::lang::View;
use crate::offline::{self, Decision, Probe};
use crate::pipeline::{Engine, Options, Request};
use crate::result::ResultSet;
use crate::{estimate_tokens, prompt, rank};
use serde::Serialize;

/// Tables listed beyond those sent: the best of the rest, enough to see what just missed.
const MAX_UNSENT_SHOWN: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub question: String,
    pub engine: EngineChoice,
    pub offline: OfflineView,
    pub ranking: RankingView,
    /// Teaching chosen for the prompt: worked examples (`#id: question`), definitions (their
    /// terms, `(always)` for standing instructions) and the value hints' lines.
    pub examples: Vec<String>,
    pub definitions: Vec<String>,
    pub value_hints: Vec<String>,
    pub prompt: PromptSize,
    pub cache: CacheView,
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineChoice {
    /// `sqlchat.engine` as it resolves: llm, offline or auto.
    pub setting: &'static str,
    /// llm or offline.
    pub would_use: &'static str,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OfflineView {
    /// answer, decline, or not_tried.
    pub decision: &'static str,
    pub sql: Option<String>,
    pub tables: Vec<String>,
    pub reason: Option<String>,
    /// Value lookups the offline engine ran to decide (bounded read-only SELECTs as the caller).
    pub value_lookups: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RankingView {
    pub terms: Vec<String>,
    pub budget_tokens: usize,
    pub used_tokens: usize,
    pub tables: Vec<RankedTable>,
    /// Tables of the catalog not listed.
    pub not_shown: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RankedTable {
    pub table: String,
    /// sent, cut_by_budget (kept by the ranking, no room left), or below_cut (scored too low).
    pub status: &'static str,
    pub score: f64,
    pub own_score: f64,
    pub join_share: f64,
    pub tokens: usize,
    pub why: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromptSize {
    /// Tokens (characters / 4) of each part of the SQL-generation request.
    pub instructions: usize,
    pub schema: usize,
    /// Earlier turns sent in full and the words framing the parts.
    pub history_and_framing: usize,
    pub summary: usize,
    pub question: usize,
    /// Worked examples, definitions and value hints.
    pub teaching: usize,
    pub total: usize,
    /// A summary of older turns is written first (one more model call), so the prompt and its
    /// cache key are only known after it.
    pub summary_call_first: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheView {
    /// The key the generated SQL would be cached under (None when a summary call comes first).
    #[serde(skip)]
    pub key: Option<String>,
    /// hit, miss, off, or unknown; the host fills it in.
    pub lookup: &'static str,
}

/// Counts and keeps the offline engine's lookups on their way to the host's probe.
struct Recording<'p> {
    probe: &'p mut dyn Probe,
    queries: Vec<String>,
}

impl Probe for Recording<'_> {
    fn query(&mut self, sql: &str) -> Result<ResultSet, String> {
        self.queries.push(sql.to_string());
        self.probe.query(sql)
    }
}

pub fn explain(req: &Request, opts: &Options, probe: &mut dyn Probe) -> Explanation {
    let offline_first = match opts.engine {
        Engine::Offline => true,
        Engine::Auto => req.history.is_empty(),
        Engine::Llm => false,
    };
    let view = View::new(req.catalog, req.index);
    let offline = if offline_first { offline_view(req, &view, probe) } else { not_tried() };
    let mut engine = engine_choice(opts.engine, offline_first, req.history.is_empty(), &offline);
    let t = req.teaching;
    if let Some(i) = t.verified(&t.usable(req.catalog), req.question) {
        engine.would_use = "verified";
        engine.why = format!(
            "the question is taught example #{} asked again: its SQL runs as you, with no SQL-generation call",
            t.examples[i].id
        );
    }
    let ranking = rank::rank(&view, req.question, opts.schema_budget_tokens);
    let context = crate::pipeline::sql_context(&view, req, opts, probe);
    let summary_call_first = !req.unsummarized.is_empty();
    let messages =
        prompt::generate_sql_messages(req.question, &context.schema, &context.taught, req.history, req.summary);
    let mut prompt = prompt_size(req, &context.schema, &messages, summary_call_first);
    let taught = &context.taught;
    prompt.teaching = estimate_tokens(&taught.examples.join("\n\n"))
        + estimate_tokens(&taught.definitions.join("\n"))
        + estimate_tokens(&taught.value_hints);
    prompt.history_and_framing = prompt.history_and_framing.saturating_sub(prompt.teaching);
    let key = (!summary_call_first).then(|| crate::cache_key(&opts.cache_scope, &messages));
    Explanation {
        question: req.question.to_string(),
        engine,
        offline,
        ranking: ranking_view(req, &ranking),
        examples: context
            .examples
            .iter()
            .map(|&i| format!("#{}: {}", t.examples[i].id, t.examples[i].question))
            .collect(),
        definitions: context
            .definitions
            .iter()
            .map(|&i| t.definitions[i].term.clone().unwrap_or_else(|| "(always)".into()))
            .collect(),
        value_hints: taught.value_hints.lines().map(str::to_string).filter(|l| !l.is_empty()).collect(),
        prompt,
        cache: CacheView { lookup: "unknown", key },
    }
}

fn not_tried() -> OfflineView {
    OfflineView { decision: "not_tried", sql: None, tables: vec![], reason: None, value_lookups: vec![] }
}

fn offline_view(req: &Request, view: &View, probe: &mut dyn Probe) -> OfflineView {
    let mut recording = Recording { probe, queries: Vec::new() };
    let decision = offline::plan(view, req.question, &mut recording);
    let value_lookups = recording.queries;
    match decision {
        Decision::Answer(plan) => {
            OfflineView { decision: "answer", sql: Some(plan.sql), tables: plan.tables, reason: None, value_lookups }
        }
        Decision::Decline(reason) => OfflineView {
            decision: "decline",
            sql: None,
            tables: vec![],
            reason: Some(reason.to_string()),
            value_lookups,
        },
    }
}

fn engine_choice(engine: Engine, offline_first: bool, no_history: bool, offline: &OfflineView) -> EngineChoice {
    let setting = match engine {
        Engine::Llm => "llm",
        Engine::Offline => "offline",
        Engine::Auto => "auto",
    };
    let answers = offline.decision == "answer";
    let (would_use, why) = match (engine, answers) {
        (_, true) => ("offline", "the offline engine answers this question (the model is not asked)".to_string()),
        (Engine::Offline, false) => (
            "offline",
            "sqlchat.engine is offline and the offline engine declines: the ask answers that it cannot".into(),
        ),
        (Engine::Auto, false) if offline_first => ("llm", "the offline engine declines, so the model is asked".into()),
        (Engine::Auto, false) if !no_history => {
            ("llm", "a question with earlier turns may be a follow-up, which only the model resolves".into())
        }
        _ => ("llm", "sqlchat.engine is llm".into()),
    };
    EngineChoice { setting, would_use, why }
}

fn ranking_view(req: &Request, r: &rank::Ranking) -> RankingView {
    let n_terms = r.terms.len();
    let mut listed: Vec<usize> = r.candidates.clone();
    let mut rest: Vec<usize> =
        (0..r.scores.len()).filter(|i| r.scores[*i] > 0.0 && !r.candidates.contains(i)).collect();
    rest.sort_by(|&a, &b| r.scores[b].total_cmp(&r.scores[a]).then(a.cmp(&b)));
    listed.extend(rest.into_iter().take(MAX_UNSENT_SHOWN));
    let tokens = rank::rendered_tokens(req.catalog, &listed);
    let tables = listed
        .iter()
        .zip(&tokens)
        .map(|(&i, &tokens)| {
            let status = if r.selected.contains(&i) {
                "sent"
            } else if r.candidates.contains(&i) {
                "cut_by_budget"
            } else {
                "below_cut"
            };
            let mut why: Vec<String> = (0..n_terms)
                .filter_map(|t| {
                    let s = r.strengths.get(i * n_terms + t).copied().unwrap_or(0.0);
                    (s > 0.0).then(|| format!("\"{}\" in {} ({:.2})", r.terms[t], rank::match_place(s), s))
                })
                .collect();
            let join_share = r.scores[i] - r.own_scores[i];
            if join_share > 1e-9 {
                why.push(format!("joins a strongly matching table (+{join_share:.2})"));
            }
            if why.is_empty() {
                why.push("nothing in the question matched; shown in catalog order".into());
            }
            RankedTable {
                table: req.catalog.tables[i].display_name(),
                status,
                score: round2(r.scores[i]),
                own_score: round2(r.own_scores[i]),
                join_share: round2(join_share),
                tokens,
                why,
            }
        })
        .collect::<Vec<_>>();
    let used_tokens = tables.iter().filter(|t| t.status == "sent").map(|t| t.tokens).sum();
    RankingView {
        terms: r.terms.clone(),
        budget_tokens: r.budget_tokens,
        used_tokens,
        not_shown: req.catalog.tables.len().saturating_sub(tables.len()),
        tables,
    }
}

fn prompt_size(
    req: &Request,
    schema: &str,
    messages: &[crate::openai::Message],
    summary_call_first: bool,
) -> PromptSize {
    let instructions = messages.first().map_or(0, |m| estimate_tokens(&m.content));
    let user = messages.get(1).map_or(0, |m| estimate_tokens(&m.content));
    let schema_tokens = estimate_tokens(schema);
    let question = estimate_tokens(&format!("Question: {}", req.question.trim()));
    let summary = req.summary.map_or(0, estimate_tokens);
    let history_and_framing = user.saturating_sub(schema_tokens + question + summary);
    PromptSize {
        instructions,
        schema: schema_tokens,
        history_and_framing,
        summary,
        question,
        teaching: 0,
        total: instructions + user,
        summary_call_first,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Column, ForeignKey, Table};
    use crate::prompt::Turn;

    struct NoData;
    impl Probe for NoData {
        fn query(&mut self, _sql: &str) -> Result<ResultSet, String> {
            Ok(ResultSet::default())
        }
    }

    fn shop() -> Catalog {
        let id = || Column { not_null: true, ..Column::new("id", "integer", 'N') };
        let customers = Table {
            oid: 1,
            primary_key: vec!["id".into()],
            row_estimate: 100.0,
            ..Table::new("shop", "customers", vec![id(), Column::new("city", "text", 'S')])
        };
        let orders = Table {
            oid: 2,
            primary_key: vec!["id".into()],
            row_estimate: 1000.0,
            foreign_keys: vec![ForeignKey {
                columns: vec!["customer_id".into()],
                ref_schema: "shop".into(),
                ref_table: "customers".into(),
                ref_columns: vec!["id".into()],
            }],
            ..Table::new(
                "shop",
                "orders",
                vec![id(), Column::new("customer_id", "integer", 'N'), Column::new("total", "numeric", 'N')],
            )
        };
        let logs = Table { oid: 3, ..Table::new("ops", "audit_log", vec![Column::new("line", "text", 'S')]) };
        Catalog { tables: vec![customers, orders, logs] }
    }

    fn request<'a>(c: &'a Catalog, q: &'a str, history: &'a [Turn]) -> Request<'a> {
        Request {
            question: q,
            catalog: c,
            index: None,
            history,
            summary: None,
            unsummarized: &[],
            teaching: &crate::teach::NOTHING_TAUGHT,
        }
    }

    #[test]
    fn the_ranking_says_what_was_sent_and_why() {
        let c = shop();
        let e = explain(&request(&c, "total of orders per customer city", &[]), &Options::default(), &mut NoData);
        let sent: Vec<&str> =
            e.ranking.tables.iter().filter(|t| t.status == "sent").map(|t| t.table.as_str()).collect();
        assert_eq!(
            sent,
            rank::select_tables(&View::new(&c, None), "total of orders per customer city", 1500)
                .iter()
                .map(|&i| c.tables[i].display_name())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
        let orders = e.ranking.tables.iter().find(|t| t.table == "shop.orders").unwrap();
        assert!(orders.why.iter().any(|w| w.contains("\"order\"") && w.contains("table's name")), "{:?}", orders.why);
        assert!(e.ranking.used_tokens > 0 && e.ranking.used_tokens <= e.ranking.budget_tokens);
        assert_eq!(e.engine.would_use, "llm");
        assert_eq!(e.offline.decision, "not_tried");
        assert!(e.cache.key.is_some());
        assert!(e.prompt.schema > 0 && e.prompt.total > e.prompt.schema + e.prompt.question);
    }

    #[test]
    fn a_tight_budget_cuts_tables_and_says_so() {
        let c = shop();
        let opts = Options { schema_budget_tokens: 1, ..Options::default() };
        let e = explain(&request(&c, "orders per customer city", &[]), &opts, &mut NoData);
        assert_eq!(e.ranking.tables.iter().filter(|t| t.status == "sent").count(), 1);
        assert!(e.ranking.tables.iter().any(|t| t.status == "cut_by_budget"), "{:?}", e.ranking.tables);
    }

    #[test]
    fn the_offline_engine_decides_in_auto_mode_and_its_lookups_are_listed() {
        let c = shop();
        let opts = Options { engine: Engine::Auto, ..Options::default() };
        let e = explain(&request(&c, "how many customers are there?", &[]), &opts, &mut NoData);
        assert_eq!(e.offline.decision, "answer", "{:?}", e.offline);
        assert_eq!(e.engine.would_use, "offline");
        assert!(e.offline.sql.as_deref().unwrap_or("").contains("count"));
        let e = explain(&request(&c, "why did sales drop after the redesign?", &[]), &opts, &mut NoData);
        assert_eq!(e.offline.decision, "decline");
        assert!(e.offline.reason.is_some());
        assert_eq!(e.engine.would_use, "llm");
    }

    #[test]
    fn a_session_with_turns_to_summarize_has_no_cache_key_yet() {
        let c = shop();
        let old = [Turn { question: "earlier".into(), sql: None, answer: None }];
        let req = Request {
            question: "and per city?",
            catalog: &c,
            index: None,
            history: &old,
            summary: None,
            unsummarized: &old,
            teaching: &crate::teach::NOTHING_TAUGHT,
        };
        let e = explain(&req, &Options::default(), &mut NoData);
        assert!(e.prompt.summary_call_first);
        assert!(e.cache.key.is_none());
        assert!(e.prompt.history_and_framing > e.prompt.question);
    }
}
