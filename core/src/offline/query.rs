//! The planner's query: a base table and the tables it reaches along foreign keys, its filters,
//! groups, measures, order and limit, and how it becomes one read-only SELECT with
//! schema-qualified, quoted identifiers and a deterministic order.

use crate::catalog::{quote_ident, Catalog};

use super::joins::Hop;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ColRef {
    pub table: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Agg {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    /// The query's `ratio` (a share of two counts).
    Ratio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Measure {
    pub agg: Agg,
    /// None for `count(*)`.
    pub column: Option<ColRef>,
}

pub(crate) use crate::lang::words::TimeUnit as Unit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupKey {
    Column(ColRef),
    /// `date_trunc(unit, column)`.
    Bucket(ColRef, Unit),
    /// The rows of a joined table: shown by their label, grouped by label and key so that two
    /// rows with the same label stay apart.
    Entity {
        label: ColRef,
        key: ColRef,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl Op {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchMode {
    /// `col = 'Stored Value'` (the value as the data spells it).
    Exact,
    /// `col ILIKE '%value%'` (the question asked for case-insensitive or wildcard matching).
    Contains,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    Value {
        column: ColRef,
        value: String,
        mode: MatchMode,
    },
    Number {
        column: ColRef,
        op: Op,
        value: f64,
    },
    /// A whole calendar year, on a date column or on a numeric year column.
    Year {
        column: ColRef,
        year: i32,
        numeric: bool,
    },
    /// Compared with a date (`>=`, `<` on whole days).
    Date {
        column: ColRef,
        op: Op,
        date: String,
    },
    /// Within the last `n` units up to now.
    Recent {
        column: ColRef,
        n: u32,
        unit: Unit,
    },
    /// Several whole calendar years (compared, one group each).
    Years {
        column: ColRef,
        years: Vec<i32>,
        numeric: bool,
    },
    /// No row of `table` refers to the row: (its column, the row's column) pairs.
    NotExists {
        table: usize,
        pairs: Vec<(ColRef, ColRef)>,
    },
}

impl Filter {
    /// The column a filter reads.
    pub(crate) fn column(&self) -> ColRef {
        match self {
            Filter::Value { column, .. }
            | Filter::Number { column, .. }
            | Filter::Year { column, .. }
            | Filter::Date { column, .. }
            | Filter::Recent { column, .. }
            | Filter::Years { column, .. } => *column,
            Filter::NotExists { pairs, .. } => pairs.first().map(|p| p.1).unwrap_or(ColRef { table: 0, column: 0 }),
        }
    }

    /// A time range (a year, a date comparison, the last N units).
    pub(crate) fn is_time(&self) -> bool {
        matches!(self, Filter::Year { .. } | Filter::Date { .. } | Filter::Recent { .. } | Filter::Years { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderKey {
    Measure(usize),
    Column(ColRef),
}

/// Rows matching `numerator` per rows matching `denominator` (all rows when empty).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ratio {
    pub numerator: Vec<Filter>,
    pub denominator: Vec<Filter>,
    /// Times 100.
    pub percent: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub table: usize,
    /// Many-to-one joins from the base table, in order.
    pub joins: Vec<Hop>,
    pub filters: Vec<Filter>,
    pub groups: Vec<GroupKey>,
    pub measures: Vec<Measure>,
    /// Columns shown for each row (list queries).
    pub outputs: Vec<ColRef>,
    pub distinct: bool,
    pub order: Option<(OrderKey, bool)>,
    pub limit: Option<u64>,
    pub ratio: Option<Ratio>,
    /// Groups kept only when their row count compares so ("with at least 10 reviews").
    pub having: Option<(Op, f64)>,
    /// Sums of a price that are sums of price times this quantity (the value of order lines).
    pub line_values: Vec<(ColRef, ColRef)>,
}

/// A SQL string literal, quotes doubled (standard_conforming_strings is on since PostgreSQL 9.1).
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(crate) fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Query {
    /// An empty query over the base table.
    pub(crate) fn new(table: usize) -> Query {
        Query {
            table,
            joins: Vec::new(),
            filters: Vec::new(),
            groups: Vec::new(),
            measures: Vec::new(),
            outputs: Vec::new(),
            distinct: false,
            order: None,
            limit: None,
            ratio: None,
            having: None,
            line_values: Vec::new(),
        }
    }

    /// The quantity a summed price is multiplied by, if it is an order line's value.
    pub(crate) fn line_quantity(&self, m: &Measure) -> Option<ColRef> {
        let price = m.column?;
        (m.agg == Agg::Sum).then(|| self.line_values.iter().find(|(p, _)| *p == price).map(|(_, q)| *q)).flatten()
    }

    /// Adds a measure unless it is there already; its index.
    pub(crate) fn push_measure(&mut self, m: Measure) -> usize {
        if let Some(i) = self.measures.iter().position(|x| *x == m) {
            return i;
        }
        self.measures.push(m);
        self.measures.len() - 1
    }

    pub(crate) fn is_grouped(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Every table the query reads, base first.
    pub(crate) fn tables(&self) -> Vec<usize> {
        let mut out = vec![self.table];
        out.extend(self.joins.iter().map(|h| h.to));
        out
    }

    /// How a table is named in a query with joins: its own name, numbered when two tables of
    /// different schemas share it.
    fn alias(&self, catalog: &Catalog, table: usize) -> String {
        let name = |t: usize| catalog.tables.get(t).map(|t| t.name.as_str()).unwrap_or_default();
        let tables = self.tables();
        let earlier_same = tables.iter().take_while(|t| **t != table).filter(|t| name(**t) == name(table)).count();
        if earlier_same == 0 {
            quote_ident(name(table))
        } else {
            quote_ident(&format!("{}_{}", name(table), earlier_same + 1))
        }
    }

    fn col(&self, catalog: &Catalog, c: ColRef) -> String {
        let name = catalog
            .tables
            .get(c.table)
            .and_then(|t| t.columns.get(c.column))
            .map(|col| quote_ident(&col.name))
            .unwrap_or_default();
        if self.joins.is_empty() {
            name
        } else {
            format!("{}.{name}", self.alias(catalog, c.table))
        }
    }

    fn tables_sql(&self, catalog: &Catalog) -> String {
        let table_sql = |t: usize| {
            let Some(table) = catalog.tables.get(t) else { return String::new() };
            let alias = self.alias(catalog, t);
            if self.joins.is_empty() || alias == quote_ident(&table.name) {
                table.qualified_name()
            } else {
                format!("{} AS {alias}", table.qualified_name())
            }
        };
        let mut sql = table_sql(self.table);
        for hop in &self.joins {
            let on: Vec<String> = hop
                .pairs
                .iter()
                .map(|(a, b)| {
                    format!(
                        "{} = {}",
                        self.col(catalog, ColRef { table: hop.to, column: *b }),
                        self.col(catalog, ColRef { table: hop.from, column: *a })
                    )
                })
                .collect();
            sql.push_str(&format!(" JOIN {} ON {}", table_sql(hop.to), on.join(" AND ")));
        }
        sql
    }

    fn column_name(catalog: &Catalog, c: ColRef) -> String {
        catalog
            .tables
            .get(c.table)
            .and_then(|t| t.columns.get(c.column))
            .map(|col| col.name.to_lowercase())
            .unwrap_or_default()
    }

    /// The output name of a measure (`count`, `average_rating`).
    pub(crate) fn measure_alias(&self, catalog: &Catalog, m: &Measure) -> String {
        let col = m.column.map(|c| Self::column_name(catalog, c)).unwrap_or_default();
        if self.line_quantity(m).is_some() {
            return "total_value".into();
        }
        match m.agg {
            Agg::Count => "count".into(),
            Agg::CountDistinct => format!("distinct_{col}"),
            Agg::Sum => format!("total_{col}"),
            Agg::Avg => format!("average_{col}"),
            Agg::Min => format!("min_{col}"),
            Agg::Max => format!("max_{col}"),
            Agg::Ratio => "ratio".into(),
        }
    }

    fn measure_sql(&self, catalog: &Catalog, m: &Measure) -> String {
        let col = m.column.map(|c| self.col(catalog, c)).unwrap_or_default();
        match (m.agg, m.column) {
            (Agg::Count, None) => "count(*)".into(),
            (Agg::Count, Some(_)) => format!("count({col})"),
            (Agg::CountDistinct, _) => format!("count(DISTINCT {col})"),
            (Agg::Sum, _) => match self.line_quantity(m) {
                Some(q) => format!("sum({col} * {})", self.col(catalog, q)),
                None => format!("sum({col})"),
            },
            (Agg::Avg, _) => format!("avg({col})"),
            (Agg::Min, _) => format!("min({col})"),
            (Agg::Max, _) => format!("max({col})"),
            (Agg::Ratio, _) => self.ratio_sql(catalog),
        }
    }

    fn ratio_sql(&self, catalog: &Catalog) -> String {
        let Some(r) = &self.ratio else { return "NULL".into() };
        let count = |filters: &[Filter]| {
            if filters.is_empty() {
                "count(*)".to_string()
            } else {
                let conds: Vec<String> = filters.iter().map(|f| self.filter_sql(catalog, f)).collect();
                format!("count(*) FILTER (WHERE {})", conds.join(" AND "))
            }
        };
        let scale = if r.percent { "100.0 * " } else { "" };
        format!("{scale}{}::numeric / NULLIF({}, 0)", count(&r.numerator), count(&r.denominator))
    }

    fn group_sql(&self, catalog: &Catalog, g: &GroupKey) -> (String, String) {
        match g {
            GroupKey::Column(c) => (self.col(catalog, *c), self.col(catalog, *c)),
            GroupKey::Bucket(c, unit) => {
                let expr = format!("date_trunc('{}', {})::date", unit.name(), self.col(catalog, *c));
                (format!("{expr} AS {}", unit.name()), unit.name().to_string())
            }
            GroupKey::Entity { label, .. } => (self.col(catalog, *label), self.col(catalog, *label)),
        }
    }

    fn filter_sql(&self, catalog: &Catalog, f: &Filter) -> String {
        match f {
            Filter::Value { column, value, mode: MatchMode::Exact } => {
                format!("{} = {}", self.col(catalog, *column), literal(value))
            }
            Filter::Value { column, value, mode: MatchMode::Contains } => {
                let escaped = value.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                format!("{} ILIKE {}", self.col(catalog, *column), literal(&format!("%{escaped}%")))
            }
            Filter::Number { column, op, value } => {
                format!("{} {} {}", self.col(catalog, *column), op.sql(), number(*value))
            }
            Filter::Year { column, year, numeric: true } => format!("{} = {year}", self.col(catalog, *column)),
            Filter::Year { column, year, numeric: false } => {
                let c = self.col(catalog, *column);
                format!("{c} >= DATE '{year:04}-01-01' AND {c} < DATE '{:04}-01-01'", year + 1)
            }
            Filter::Date { column, op, date } => {
                let c = self.col(catalog, *column);
                match op {
                    Op::Eq => format!("{c} >= DATE '{date}' AND {c} < DATE '{date}' + 1"),
                    Op::Gt => format!("{c} >= DATE '{date}' + 1"),
                    Op::Le => format!("{c} < DATE '{date}' + 1"),
                    other => format!("{c} {} DATE '{date}'", other.sql()),
                }
            }
            Filter::Recent { column, n, unit } => {
                format!("{} >= CURRENT_DATE - INTERVAL '{n} {}'", self.col(catalog, *column), unit.name())
            }
            Filter::Years { column, years, numeric } => {
                let c = self.col(catalog, *column);
                let list = years.iter().map(|y| y.to_string()).collect::<Vec<_>>().join(", ");
                let (first, last) =
                    (years.iter().min().copied().unwrap_or(0), years.iter().max().copied().unwrap_or(0));
                if *numeric {
                    format!("{c} IN ({list})")
                } else if (last - first + 1) as usize == years.len() {
                    format!("{c} >= DATE '{first:04}-01-01' AND {c} < DATE '{:04}-01-01'", last + 1)
                } else {
                    format!("extract(year FROM {c}) IN ({list})")
                }
            }
            Filter::NotExists { table, pairs } => {
                let Some(t) = catalog.tables.get(*table) else { return "false".into() };
                let column = |c: ColRef| {
                    catalog
                        .tables
                        .get(c.table)
                        .and_then(|t| t.columns.get(c.column))
                        .map(|c| quote_ident(&c.name))
                        .unwrap_or_default()
                };
                let conds: Vec<String> = pairs
                    .iter()
                    .map(|(inner, outer)| {
                        let outer = if self.joins.is_empty() {
                            format!("{}.{}", self.alias(catalog, outer.table), column(*outer))
                        } else {
                            self.col(catalog, *outer)
                        };
                        format!("never_row.{} = {outer}", column(*inner))
                    })
                    .collect();
                format!("NOT EXISTS (SELECT FROM {} AS never_row WHERE {})", t.qualified_name(), conds.join(" AND "))
            }
        }
    }

    /// The SELECT statement.
    pub(crate) fn to_sql(&self, catalog: &Catalog) -> String {
        if catalog.tables.get(self.table).is_none() {
            return String::new();
        }
        let mut select: Vec<String> = Vec::new();
        let mut order_terms: Vec<String> = Vec::new();
        let mut tie_breaks: Vec<String> = Vec::new();
        let mut group_by: Vec<String> = Vec::new();
        for g in &self.groups {
            let (item, name) = self.group_sql(catalog, g);
            select.push(item);
            group_by.push(name.clone());
            tie_breaks.push(name);
            if let GroupKey::Entity { key, .. } = g {
                let key = self.col(catalog, *key);
                group_by.push(key.clone());
                tie_breaks.push(key);
            }
        }
        if !self.is_grouped() {
            for c in &self.outputs {
                let name = self.col(catalog, *c);
                if !select.contains(&name) {
                    select.push(name.clone());
                    tie_breaks.push(name);
                }
            }
        }
        let mut measure_names = Vec::new();
        for m in &self.measures {
            let alias = quote_ident(&self.measure_alias(catalog, m));
            select.push(format!("{} AS {alias}", self.measure_sql(catalog, m)));
            measure_names.push(alias);
        }
        if let Some((key, desc)) = self.order {
            let expr = match key {
                OrderKey::Measure(i) => measure_names.get(i).cloned().unwrap_or_default(),
                OrderKey::Column(c) => self.col(catalog, c),
            };
            order_terms.push(format!("{expr} {}", if desc { "DESC NULLS LAST" } else { "ASC" }));
        }
        for t in tie_breaks {
            if !order_terms.iter().any(|o| o.split(' ').next() == Some(t.as_str())) {
                order_terms.push(t);
            }
        }
        let mut sql = format!(
            "SELECT {}{} FROM {}",
            if self.distinct && !self.is_grouped() { "DISTINCT " } else { "" },
            select.join(", "),
            self.tables_sql(catalog)
        );
        if !self.filters.is_empty() {
            let conds: Vec<String> = self.filters.iter().map(|f| self.filter_sql(catalog, f)).collect();
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        if !group_by.is_empty() {
            sql.push_str(" GROUP BY ");
            sql.push_str(&group_by.join(", "));
        }
        if let Some((op, value)) = self.having {
            sql.push_str(&format!(" HAVING count(*) {} {}", op.sql(), number(value)));
        }
        // A single aggregate row needs no order.
        let single_aggregate_row = self.measures.len() == select.len() && !self.is_grouped();
        if !single_aggregate_row && !order_terms.is_empty() {
            sql.push_str(" ORDER BY ");
            sql.push_str(&order_terms.join(", "));
        }
        if let Some(n) = self.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_safe() {
        assert_eq!(literal("O'Hare"), "'O''Hare'");
        assert_eq!(number(4.0), "4");
        assert_eq!(number(4.5), "4.5");
    }
}
