//! The teaching functions and the functions behind the teaching views.

use super::store::{self, DefinitionRow, ExampleRow, FeedbackRow, PrivateRow};
use crate::catalog;
use crate::error::{guarded, raise, OrRaise};
use crate::store::caller_is_admin;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::PgRelation;
use sqlchat_core::error::Error;
use sqlchat_core::lang::View;

/// Stores a question with the SQL that answers it, once the SQL ran read-only as the caller;
/// returns the example's id. Superusers, the extension's owner and members of `sqlchat.teacher_role`.
#[pg_extern]
fn teach(question: Option<&str>, sql: Option<&str>, note: default!(Option<&str>, "NULL")) -> i64 {
    guarded(|| store::teach(question, sql, note))
}

/// Removes an example.
#[pg_extern]
fn unteach(id: i64) {
    guarded(|| store::unteach(id))
}

/// Stores a definition of a term (NULL: a standing instruction sent with every question); returns its id.
#[pg_extern]
fn define(term: Option<&str>, meaning: Option<&str>) -> i64 {
    guarded(|| store::define(term, meaning))
}

/// Removes a definition.
#[pg_extern]
fn undefine(id: i64) {
    guarded(|| store::undefine(id))
}

/// Marks a column private (its values never reach the gateway), or not; superusers and the table's owner.
#[pg_extern]
fn set_private(col_table: PgRelation, col_name: &str, private: default!(bool, true)) {
    guarded(|| store::set_private(col_table.oid(), col_name, private))
}

/// Feedback on one of the caller's own turns (`sqlchat.history` shows their ids).
#[pg_extern]
fn feedback(turn: i64, helpful: Option<bool>, correction: default!(Option<&str>, "NULL")) {
    guarded(|| store::feedback(turn, helpful, correction))
}

/// Teaches a turn someone gave feedback on, with its SQL or the SQL given; returns the example's id.
#[pg_extern]
fn teach_from_turn(turn: i64, sql: default!(Option<&str>, "NULL")) -> i64 {
    guarded(|| store::teach_from_turn(turn, sql))
}

/// Questions the caller could ask: taught examples it may use, then questions about its tables.
#[pg_extern]
fn suggest_questions(n: default!(i32, 5)) -> SetOfIterator<'static, String> {
    guarded(|| {
        if n < 0 {
            raise(Error::InvalidArgument { what: format!("n is {n}"), hint: "Ask for 0 or more questions.".into() });
        }
        let visible = catalog::visible_catalog().or_raise();
        let loaded = super::load();
        let usable = loaded.teaching.usable(&visible.catalog);
        let uses: std::collections::HashMap<i64, i64> =
            store::example_rows(None).into_iter().map(|r| (r.0, r.7)).collect();
        let mut examples: Vec<&sqlchat_core::teach::Example> =
            usable.iter().map(|&i| &loaded.teaching.examples[i]).collect();
        // Most used first.
        examples.sort_by_key(|e| std::cmp::Reverse(uses.get(&e.id).copied().unwrap_or(0)));
        let questions: Vec<&str> = examples.iter().map(|e| e.question.as_str()).collect();
        let view = View::new(&visible.catalog, Some(&visible.index));
        SetOfIterator::new(sqlchat_core::teach::suggest::starter_questions(&view, &questions, n as usize))
    })
}

/// The examples behind `sqlchat.examples`.
#[allow(clippy::type_complexity)] // pgrx reads the row's columns from the type as written here
#[pg_extern]
fn taught_examples() -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(question, String),
        name!(sql, String),
        name!(tables, Vec<String>),
        name!(note, Option<String>),
        name!(taught_by, String),
        name!(taught_at, Option<TimestampWithTimeZone>),
        name!(uses, i64),
        name!(last_used_at, Option<TimestampWithTimeZone>),
    ),
> {
    guarded(|| {
        let rows: Vec<ExampleRow> = if caller_is_admin() {
            store::example_rows(None)
        } else {
            let visible = catalog::visible_catalog().or_raise();
            let loaded = super::load();
            let ids: Vec<i64> =
                loaded.teaching.usable(&visible.catalog).iter().map(|&i| loaded.teaching.examples[i].id).collect();
            store::example_rows(Some(&ids))
        };
        TableIterator::new(rows)
    })
}

/// The definitions behind `sqlchat.definitions`.
#[allow(clippy::type_complexity)]
#[pg_extern]
fn taught_definitions() -> TableIterator<
    'static,
    (
        name!(id, i64),
        name!(term, Option<String>),
        name!(meaning, String),
        name!(defined_by, String),
        name!(defined_at, Option<TimestampWithTimeZone>),
    ),
> {
    guarded(|| TableIterator::new(store::definition_rows() as Vec<DefinitionRow>))
}

/// The private columns behind `sqlchat.private_columns`.
#[allow(clippy::type_complexity)]
#[pg_extern]
fn private_column_list() -> TableIterator<
    'static,
    (
        name!(table_name, String),
        name!(column_name, String),
        name!(marked_by, String),
        name!(marked_at, Option<TimestampWithTimeZone>),
    ),
> {
    guarded(|| TableIterator::new(store::private_rows(caller_is_admin()) as Vec<PrivateRow>))
}

/// The feedback behind `sqlchat.feedback_queue`.
#[allow(clippy::type_complexity)]
#[pg_extern]
fn feedback_list() -> TableIterator<
    'static,
    (
        name!(turn, i64),
        name!(role_name, String),
        name!(session_id, String),
        name!(question, String),
        name!(sql, Option<String>),
        name!(answer, Option<String>),
        name!(helpful, bool),
        name!(correction, Option<String>),
        name!(given_at, Option<TimestampWithTimeZone>),
        name!(example_id, Option<i64>),
    ),
> {
    guarded(|| TableIterator::new(store::feedback_rows(super::caller_is_teacher()) as Vec<FeedbackRow>))
}

extension_sql_file!(
    "../../sql/teach.sql",
    name = "teach",
    requires = [taught_examples, taught_definitions, private_column_list, feedback_list]
);
