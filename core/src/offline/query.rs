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
    /// The distinct rows of a joined table, by its key (the column).
    CountRelated,
    Sum,
    Avg,
    Min,
    Max,
    /// The query's `ratio` (a share of two counts).
    Ratio,
    /// The average over rows of the query's `per_row` table of the sum of the column over the
    /// rows that refer to each ("average order value": of order lines' values per order).
    PerRow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Measure {
    pub agg: Agg,
    /// None for `count(*)`.
    pub column: Option<ColRef>,
    /// The time from this date column to `column`, in this unit, is what is measured.
    pub since: Option<(ColRef, Elapsed)>,
}

impl Measure {
    pub(crate) fn of(agg: Agg, column: Option<ColRef>) -> Measure {
        Measure { agg, column, since: None }
    }

    /// `count(*)`.
    pub(crate) fn rows() -> Measure {
        Measure::of(Agg::Count, None)
    }
}

/// A unit of time elapsed between two dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elapsed {
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl Elapsed {
    pub(crate) fn from_word(word: &str) -> Option<Elapsed> {
        Some(match word {
            "minute" | "minutes" => Elapsed::Minutes,
            "hour" | "hours" => Elapsed::Hours,
            "day" | "days" | "time" => Elapsed::Days,
            "week" | "weeks" => Elapsed::Weeks,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Elapsed::Minutes => "minutes",
            Elapsed::Hours => "hours",
            Elapsed::Days => "days",
            Elapsed::Weeks => "weeks",
        }
    }

    fn seconds(self) -> u32 {
        match self {
            Elapsed::Minutes => 60,
            Elapsed::Hours => 3_600,
            Elapsed::Days => 86_400,
            Elapsed::Weeks => 604_800,
        }
    }
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
    /// One of several values ("in Paris or London").
    AnyOf {
        column: ColRef,
        values: Vec<String>,
    },
    /// Anything but a value ("not cancelled"); rows where the column is empty included.
    Not {
        column: ColRef,
        value: String,
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
            | Filter::AnyOf { column, .. }
            | Filter::Not { column, .. }
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
    /// The column identifying the base table's rows, if it has one: listed rows that tie in the
    /// order asked for are kept in its order.
    pub key: Option<ColRef>,
    /// For `Agg::PerRow`: the table whose rows the sums are averaged over, and the base table's
    /// columns referring to it.
    pub per_row: Option<(usize, Vec<ColRef>)>,
    /// The joined table whose rows are listed (each once), when they are not the base table's.
    pub rows_of: Option<usize>,
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
            key: None,
            per_row: None,
            rows_of: None,
        }
    }

    /// The quantity a summed price is multiplied by, if it is an order line's value.
    pub(crate) fn line_quantity(&self, m: &Measure) -> Option<ColRef> {
        let price = m.column?;
        matches!(m.agg, Agg::Sum | Agg::PerRow)
            .then(|| self.line_values.iter().find(|(p, _)| *p == price).map(|(_, q)| *q))
            .flatten()
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
        if let Some((_, unit)) = m.since {
            let agg = match m.agg {
                Agg::Min => "min",
                Agg::Max => "max",
                _ => "average",
            };
            return format!("{agg}_{}", unit.name());
        }
        if let (Agg::PerRow, Some((parent, _))) = (m.agg, &self.per_row) {
            let parent = catalog.tables.get(*parent).map(|t| t.name.to_lowercase()).unwrap_or_default();
            let what = if self.line_quantity(m).is_some() { "value" } else { col.as_str() };
            return format!("average_{}_{what}", super::render::singular(&parent));
        }
        if self.line_quantity(m).is_some() {
            return "total_value".into();
        }
        match m.agg {
            Agg::PerRow => format!("average_{col}"),
            Agg::Count => "count".into(),
            Agg::CountDistinct => format!("distinct_{col}"),
            Agg::CountRelated => {
                let table = m.column.and_then(|c| catalog.tables.get(c.table)).map(|t| t.name.to_lowercase());
                format!("{}_count", super::render::singular(&table.unwrap_or_default()))
            }
            Agg::Sum => format!("total_{col}"),
            Agg::Avg => format!("average_{col}"),
            Agg::Min => format!("min_{col}"),
            Agg::Max => format!("max_{col}"),
            Agg::Ratio => "ratio".into(),
        }
    }

    fn measure_sql(&self, catalog: &Catalog, m: &Measure) -> String {
        let col = match (m.column, m.since) {
            (Some(to), Some((from, unit))) => self.elapsed_sql(catalog, from, to, unit),
            (column, _) => column.map(|c| self.col(catalog, c)).unwrap_or_default(),
        };
        match (m.agg, m.column) {
            (Agg::Count, None) => "count(*)".into(),
            (Agg::Count, Some(_)) => format!("count({col})"),
            (Agg::CountDistinct | Agg::CountRelated, _) => format!("count(DISTINCT {col})"),
            (Agg::Sum, _) => format!("sum({})", self.summed_sql(catalog, m)),
            (Agg::PerRow, _) => {
                let parents: Vec<String> =
                    self.per_row.iter().flat_map(|(_, cols)| cols).map(|c| self.col(catalog, *c)).collect();
                let parents = if parents.len() == 1 { parents.concat() } else { format!("({})", parents.join(", ")) };
                format!("sum({})::numeric / NULLIF(count(DISTINCT {parents}), 0)", self.summed_sql(catalog, m))
            }
            (Agg::Avg, _) => format!("avg({col})"),
            (Agg::Min, _) => format!("min({col})"),
            (Agg::Max, _) => format!("max({col})"),
            (Agg::Ratio, _) => self.ratio_sql(catalog),
        }
    }

    /// The time from one date column to another: whole days between dates, else from the seconds
    /// between them.
    fn elapsed_sql(&self, catalog: &Catalog, from: ColRef, to: ColRef, unit: Elapsed) -> String {
        let is_date = |c: ColRef| {
            catalog.tables.get(c.table).and_then(|t| t.columns.get(c.column)).is_some_and(|c| c.data_type == "date")
        };
        let (from_sql, to_sql) = (self.col(catalog, from), self.col(catalog, to));
        match (is_date(from) && is_date(to), unit) {
            (true, Elapsed::Days) => format!("({to_sql} - {from_sql})"),
            (true, unit) => format!("({to_sql} - {from_sql}) * 86400.0 / {}", unit.seconds()),
            (false, unit) => format!("extract(epoch FROM {to_sql} - {from_sql}) / {}", unit.seconds()),
        }
    }

    /// What a sum adds up: the column, or price times quantity for order lines.
    fn summed_sql(&self, catalog: &Catalog, m: &Measure) -> String {
        let col = m.column.map(|c| self.col(catalog, c)).unwrap_or_default();
        match self.line_quantity(m) {
            Some(q) => format!("{col} * {}", self.col(catalog, q)),
            None => col,
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

    /// A group's GROUP BY term (an entity's key is added by the caller).
    fn group_term(&self, catalog: &Catalog, g: &GroupKey) -> String {
        match g {
            GroupKey::Column(c) | GroupKey::Entity { label: c, .. } => self.col(catalog, *c),
            GroupKey::Bucket(_, unit) => unit.name().to_string(),
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
            Filter::AnyOf { column, values } => {
                let list: Vec<String> = values.iter().map(|v| literal(v)).collect();
                format!("{} IN ({})", self.col(catalog, *column), list.join(", "))
            }
            Filter::Not { column, value } => {
                format!("{} IS DISTINCT FROM {}", self.col(catalog, *column), literal(value))
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
        let items = self.select_items(catalog);
        let body = self.body_sql(catalog);
        let distinct = if self.distinct && !self.is_grouped() { "DISTINCT " } else { "" };
        let order = self.order.map(|(key, desc)| {
            let term = match key {
                OrderKey::Measure(i) => items.iter().filter(|x| x.measure).nth(i).map(|x| x.name.clone()),
                OrderKey::Column(c) => items.iter().find(|x| x.column == Some(c)).map(|x| x.name.clone()),
            };
            let expr = match key {
                OrderKey::Measure(_) => term.clone().unwrap_or_default(),
                OrderKey::Column(c) => self.col(catalog, c),
            };
            (expr, term, if desc { "DESC NULLS LAST" } else { "ASC" })
        });
        match (self.limit, &order) {
            // Top N: every row tied with the last one is kept, then the rows are put in a fixed order.
            (Some(n), Some((_, Some(name), dir))) => {
                let shown: Vec<&str> = items.iter().filter(|x| x.shown).map(|x| x.name.as_str()).collect();
                let inner: Vec<String> = items.iter().map(SelectItem::sql).collect();
                let ties = self.tie_breaks(&items, true, |x| x.name.clone());
                let outer_order: Vec<String> =
                    std::iter::once(format!("{name} {dir}")).chain(ties.into_iter().filter(|t| t != name)).collect();
                format!(
                    "SELECT {} FROM (SELECT {distinct}{}{body} ORDER BY {name} {dir} FETCH FIRST {n} ROWS WITH TIES) AS ranked ORDER BY {}",
                    shown.join(", "),
                    inner.join(", "),
                    outer_order.join(", ")
                )
            }
            _ => {
                let select: Vec<String> = items.iter().filter(|x| x.shown).map(SelectItem::sql).collect();
                let mut sql = format!("SELECT {distinct}{}{body}", select.join(", "));
                // A single aggregate row needs no order.
                let single_aggregate_row = !self.is_grouped() && items.iter().all(|x| x.measure || !x.shown);
                if !single_aggregate_row {
                    let ordered = order.is_some();
                    let mut terms: Vec<String> = order.iter().map(|(expr, _, dir)| format!("{expr} {dir}")).collect();
                    let head = order.as_ref().map(|(expr, _, _)| expr.clone());
                    let ties = self.tie_breaks(&items, ordered, SelectItem::order_term);
                    terms.extend(ties.into_iter().filter(|t| Some(t) != head.as_ref()));
                    if !terms.is_empty() {
                        sql.push_str(" ORDER BY ");
                        sql.push_str(&terms.join(", "));
                    }
                }
                if let Some(n) = self.limit {
                    sql.push_str(&format!(" LIMIT {n}"));
                }
                sql
            }
        }
    }

    /// What the rows are kept apart by after the order asked for: for a ranked answer the rows'
    /// key first (the order among ties is then the order rows were entered in), then what is shown.
    fn tie_breaks(&self, items: &[SelectItem], ranked: bool, term: impl Fn(&SelectItem) -> String) -> Vec<String> {
        let mut ties: Vec<String> = Vec::new();
        let keys = items.iter().filter(|x| x.key);
        let rest = items.iter().filter(|x| !x.measure && !x.key && x.shown);
        let ordered: Vec<&SelectItem> = if ranked { keys.chain(rest).collect() } else { rest.chain(keys).collect() };
        for x in ordered {
            let t = term(x);
            if !ties.contains(&t) {
                ties.push(t);
            }
        }
        ties
    }

    /// The select list: groups, listed columns and measures, each with the name it goes by, and
    /// the rows' key where it can keep a ranked answer's ties in a fixed order without being shown.
    fn select_items(&self, catalog: &Catalog) -> Vec<SelectItem> {
        let mut items: Vec<SelectItem> = Vec::new();
        let column = |c: ColRef, shown: bool, key: bool| SelectItem {
            expr: self.col(catalog, c),
            name: quote_ident(&Self::column_name_as_written(catalog, c)),
            natural: true,
            column: Some(c),
            shown,
            key,
            measure: false,
        };
        for g in &self.groups {
            match g {
                // An entity's key asked for: shown where it was only keeping rows apart.
                GroupKey::Column(c) if items.iter().any(|x| x.column == Some(*c)) => {
                    items.iter_mut().filter(|x| x.column == Some(*c)).for_each(|x| x.shown = true);
                }
                GroupKey::Column(c) => items.push(column(*c, true, false)),
                GroupKey::Bucket(c, unit) => items.push(SelectItem {
                    expr: format!("date_trunc('{}', {})::date", unit.name(), self.col(catalog, *c)),
                    name: unit.name().to_string(),
                    natural: false,
                    column: None,
                    shown: true,
                    key: false,
                    measure: false,
                }),
                GroupKey::Entity { label, key } => {
                    items.push(column(*label, true, false));
                    items.push(column(*key, false, true));
                }
            }
        }
        if !self.is_grouped() {
            for c in &self.outputs {
                if !items.iter().any(|x| x.column == Some(*c)) {
                    items.push(column(*c, true, Some(*c) == self.key));
                }
            }
            // Only rows listed are kept apart (not DISTINCT values, not one row of aggregates).
            if let (Some(k), false, true) = (self.key, self.distinct, self.measures.is_empty()) {
                if !items.iter().any(|x| x.column == Some(k)) {
                    items.push(column(k, false, true));
                }
            }
        }
        for m in &self.measures {
            items.push(SelectItem {
                expr: self.measure_sql(catalog, m),
                name: quote_ident(&self.measure_alias(catalog, m)),
                natural: false,
                column: None,
                shown: true,
                key: false,
                measure: true,
            });
        }
        // Names are unique, so that a ranked answer's outer query can name each.
        for i in 1..items.len() {
            if items[..i].iter().any(|x| x.name == items[i].name) {
                items[i].name = quote_ident(&format!("{}_{}", items[i].name.trim_matches('"'), i + 1));
                items[i].natural = false;
            }
        }
        items
    }

    fn column_name_as_written(catalog: &Catalog, c: ColRef) -> String {
        catalog
            .tables
            .get(c.table)
            .and_then(|t| t.columns.get(c.column))
            .map(|col| col.name.clone())
            .unwrap_or_default()
    }

    /// FROM, WHERE, GROUP BY and HAVING.
    fn body_sql(&self, catalog: &Catalog) -> String {
        let mut sql = format!(" FROM {}", self.tables_sql(catalog));
        if !self.filters.is_empty() {
            let conds: Vec<String> = self.filters.iter().map(|f| self.filter_sql(catalog, f)).collect();
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        let mut group_by: Vec<String> = Vec::new();
        for g in &self.groups {
            let mut terms = vec![self.group_term(catalog, g)];
            if let GroupKey::Entity { key, .. } = g {
                terms.push(self.col(catalog, *key));
            }
            for t in terms {
                if !group_by.contains(&t) {
                    group_by.push(t);
                }
            }
        }
        if !group_by.is_empty() {
            sql.push_str(" GROUP BY ");
            sql.push_str(&group_by.join(", "));
        }
        if let Some((op, value)) = self.having {
            sql.push_str(&format!(" HAVING count(*) {} {}", op.sql(), number(value)));
        }
        sql
    }
}

/// One entry of a select list.
struct SelectItem {
    expr: String,
    /// The output name, quoted as needed.
    name: String,
    /// The expression's own output name is `name` (a column under its own name).
    natural: bool,
    column: Option<ColRef>,
    /// Shown in the answer (hidden items only order a ranked answer's ties).
    shown: bool,
    /// Identifies the rows (a key).
    key: bool,
    measure: bool,
}

impl SelectItem {
    /// As written in a select list: under its own name, or with an alias.
    fn sql(&self) -> String {
        if self.natural {
            self.expr.clone()
        } else {
            format!("{} AS {}", self.expr, self.name)
        }
    }

    /// As an ORDER BY term of the query that selects it.
    fn order_term(&self) -> String {
        if self.natural {
            self.expr.clone()
        } else {
            self.name.clone()
        }
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
