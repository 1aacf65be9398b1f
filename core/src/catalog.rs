//! The catalog as sqlchat sees it: tables, views and their columns, keys and comments.
//! Filled from PostgreSQL by the extension (one introspection query), already filtered to what the
//! caller may read. Everything here is plain data so the rest of the core can be tested without a server.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Table,
    View,
    MaterializedView,
    ForeignTable,
    PartitionedTable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// pg_class oid; 0 in tests.
    #[serde(default)]
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub kind: TableKind,
    #[serde(default)]
    pub comment: Option<String>,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
    /// pg_class.reltuples (-1 when never analysed).
    #[serde(default)]
    pub row_estimate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// format_type() of the column, e.g. `numeric(10,2)`, `timestamp with time zone`.
    pub data_type: String,
    /// pg_type.typcategory of the column's type (base type for domains): N numeric, D date/time,
    /// S string, B boolean, E enum, A array, U user-defined...
    #[serde(default = "default_category")]
    pub category: char,
    #[serde(default)]
    pub not_null: bool,
    #[serde(default)]
    pub default: Option<String>,
    /// Columns of the same table the default or generation expression reads. Always serialized:
    /// catalog snapshots use bincode, which cannot tell a skipped field from the next one.
    #[serde(default)]
    pub default_refs: Vec<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub enum_labels: Vec<String>,
    /// A unique constraint or index on this column alone (the primary key included).
    #[serde(default)]
    pub unique: bool,
}

fn default_category() -> char {
    'U'
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub ref_schema: String,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

impl Table {
    /// A plain table with these columns and no keys, comment or statistics.
    pub fn new(schema: &str, name: &str, columns: Vec<Column>) -> Table {
        Table {
            oid: 0,
            schema: schema.into(),
            name: name.into(),
            kind: TableKind::Table,
            comment: None,
            columns,
            primary_key: vec![],
            foreign_keys: vec![],
            row_estimate: -1.0,
        }
    }

    /// `schema.name`, each part quoted only when PostgreSQL needs it.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// `schema.name` unquoted, as used in lists (`ask_full`'s `tables`).
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn references(&self, other: &Table) -> bool {
        self.foreign_keys.iter().any(|fk| fk.ref_schema == other.schema && fk.ref_table == other.name)
    }
}

impl Column {
    /// A nullable column without default, comment or enum labels.
    pub fn new(name: &str, data_type: &str, category: char) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            category,
            not_null: false,
            default: None,
            default_refs: Vec::new(),
            comment: None,
            enum_labels: vec![],
            unique: false,
        }
    }

    pub fn is_numeric(&self) -> bool {
        self.category == 'N'
    }
    pub fn is_temporal(&self) -> bool {
        self.category == 'D'
    }
    pub fn is_text(&self) -> bool {
        self.category == 'S' || self.category == 'E'
    }
    pub fn is_boolean(&self) -> bool {
        self.category == 'B'
    }
}

impl Catalog {
    pub fn find(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.schema == schema && t.name == name)
    }
    pub fn index_of(&self, schema: &str, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.schema == schema && t.name == name)
    }
}

pub use crate::lang::identifier_words;

/// Quotes an identifier the way PostgreSQL's quote_ident does (for names the core renders into
/// prompts and generated SQL; the extension uses PostgreSQL's own quote_ident for SQL it runs itself).
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().next().map(|c| c.is_ascii_lowercase() || c == '_').unwrap_or(false)
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !is_reserved_keyword(name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// PostgreSQL's reserved keywords (and those that cannot be column or table names).
fn is_reserved_keyword(word: &str) -> bool {
    const RESERVED: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "authorization",
        "binary",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "collation",
        "column",
        "concurrently",
        "constraint",
        "create",
        "cross",
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "freeze",
        "from",
        "full",
        "grant",
        "group",
        "having",
        "ilike",
        "in",
        "initially",
        "inner",
        "intersect",
        "into",
        "is",
        "isnull",
        "join",
        "lateral",
        "leading",
        "left",
        "like",
        "limit",
        "localtime",
        "localtimestamp",
        "natural",
        "not",
        "notnull",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "outer",
        "overlaps",
        "placing",
        "primary",
        "references",
        "returning",
        "right",
        "select",
        "session_user",
        "similar",
        "some",
        "symmetric",
        "system_user",
        "table",
        "tablesample",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "verbose",
        "when",
        "where",
        "window",
        "with",
    ];
    RESERVED.binary_search(&word).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_a_column_is_serialized_whatever_its_value() {
        // Catalog snapshots are bincode: a field left out would shift every field after it.
        let json = serde_json::to_value(Column::new("id", "integer", 'N')).unwrap();
        let fields = ["name", "data_type", "category", "not_null", "default", "default_refs", "comment"];
        for field in fields.into_iter().chain(["enum_labels", "unique"]) {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
    }

    #[test]
    fn quoting_follows_postgres() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1x"), "\"1x\"");
        assert_eq!(quote_ident(""), "\"\"");
    }

    #[test]
    fn reserved_list_is_sorted_for_binary_search() {
        assert!(is_reserved_keyword("where"));
        assert!(is_reserved_keyword("all"));
        assert!(!is_reserved_keyword("customer"));
    }
}
