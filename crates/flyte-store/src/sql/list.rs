//! Translation of a [`ListQuery`] into SQL: filters through a per-table whitelist of fields,
//! values typed per column and always bound as parameters, a whitelisted sort with a
//! deterministic tiebreak, and offset pagination with opaque tokens.
//!
//! Only identifiers from the static [`ListSpec`] tables ever reach the SQL text.

use std::fmt::Write as _;

use chrono::{DateTime, SubsecRound, Utc};

use super::backend::{Stmt, Value};
use crate::{Filter, FilterOp, ListQuery, SortDirection, StoreError};

/// How a filter value is typed before it is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    Text,
    /// INTEGER columns (i32).
    Int,
    /// RFC 3339 timestamps.
    Timestamp,
    /// An execution's tags (`expr` is the tag table): matches executions with such a tag.
    Tag,
}

/// A field that may be filtered or sorted on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// The name in Flyte's grammar (`created_at`).
    pub name: &'static str,
    /// The SQL expression it maps to (a column, or an aggregate for grouped lists).
    pub expr: &'static str,
    pub ty: FieldType,
}

pub(crate) const fn field(name: &'static str, ty: FieldType) -> Field {
    Field {
        name,
        expr: name,
        ty,
    }
}

/// `updated_at` for rows that are never updated after they are written (registered entities,
/// projects' creation): flyteadmin lets every list sort and filter by it, and flytekit sorts
/// by it (`pyflyte get launchplan`). `expr` is the creation time (or its aggregate).
pub(crate) const fn updated_at_as(expr: &'static str) -> Field {
    Field {
        name: "updated_at",
        expr,
        ty: FieldType::Timestamp,
    }
}

/// The whitelist of one list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListSpec {
    /// What is listed, for messages (`tasks`).
    pub what: &'static str,
    /// Entity prefixes a filter field may carry (`task` in `task.name`).
    pub prefixes: &'static [&'static str],
    pub filters: &'static [Field],
    pub sorts: &'static [Field],
    /// The sort applied when the query has none (always descending).
    pub default_sort: &'static str,
    /// A unique expression appended to every ORDER BY so pages never overlap.
    pub tiebreak: &'static str,
}

impl ListSpec {
    fn names(fields: &[Field]) -> String {
        fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
    }
}

/// Builds SQL text with numbered placeholders.
#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    sql: String,
    args: Vec<Value>,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends trusted SQL text (never user input).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind(&mut self, value: Value) -> &mut Self {
        self.args.push(value);
        let _ = write!(self.sql, "${}", self.args.len());
        self
    }

    pub fn build(self) -> Stmt {
        Stmt {
            sql: self.sql.into(),
            args: self.args,
        }
    }
}

/// Pagination as decoded from a query: fetch `limit + 1` rows from `offset` to learn whether
/// there is a next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paging {
    pub offset: u64,
    pub limit: u32,
}

impl Paging {
    /// Splits the fetched rows into a page and the token of the next one.
    pub fn page<T>(&self, mut rows: Vec<T>) -> (Vec<T>, String) {
        if rows.len() > self.limit as usize {
            rows.truncate(self.limit as usize);
            (rows, (self.offset + u64::from(self.limit)).to_string())
        } else {
            (rows, String::new())
        }
    }
}

pub(crate) fn parse_paging(query: &ListQuery) -> Result<Paging, StoreError> {
    if query.limit == 0 {
        return Err(StoreError::InvalidArgument(
            "limit must be at least 1".into(),
        ));
    }
    let token = query.token.trim();
    let offset = if token.is_empty() {
        0
    } else {
        token
            .parse::<u64>()
            .ok()
            .filter(|o| *o <= i64::MAX as u64)
            .ok_or_else(|| {
                StoreError::InvalidArgument(format!("invalid pagination token {:?}", query.token))
            })?
    };
    Ok(Paging {
        offset,
        limit: query.limit,
    })
}

/// Appends ` AND <condition>` for every filter.
pub(crate) fn push_filters(
    b: &mut SqlBuilder,
    spec: &ListSpec,
    filters: &[Filter],
) -> Result<(), StoreError> {
    for filter in filters {
        let field = resolve_filter_field(spec, filter)?;
        b.push(" AND ");
        push_condition(b, field, filter)?;
    }
    Ok(())
}

/// Appends ` ORDER BY … LIMIT … OFFSET …` (validating the sort key).
pub(crate) fn push_order_and_page(
    b: &mut SqlBuilder,
    spec: &ListSpec,
    query: &ListQuery,
    paging: Paging,
) -> Result<(), StoreError> {
    let (key, direction) = match &query.sort {
        Some(sort) => (sort.field.as_str(), sort.direction),
        None => (spec.default_sort, SortDirection::Descending),
    };
    let key = strip_prefix(spec, key, "sort key")?;
    let field = spec.sorts.iter().find(|f| f.name == key).ok_or_else(|| {
        StoreError::InvalidArgument(format!(
            "invalid sort key {key:?} for {}; valid keys: {}",
            spec.what,
            ListSpec::names(spec.sorts)
        ))
    })?;
    let dir = match direction {
        SortDirection::Ascending => "ASC",
        SortDirection::Descending => "DESC",
    };
    b.push(" ORDER BY ").push(field.expr).push(" ").push(dir);
    if field.expr != spec.tiebreak {
        b.push(", ").push(spec.tiebreak).push(" ").push(dir);
    }
    b.push(" LIMIT ")
        .bind(Value::BigInt(i64::from(paging.limit) + 1))
        .push(" OFFSET ")
        .bind(Value::BigInt(paging.offset as i64));
    Ok(())
}

/// Accepts `field`, or `prefix.field` when the prefix names what is listed.
fn strip_prefix<'a>(spec: &ListSpec, name: &'a str, what: &str) -> Result<&'a str, StoreError> {
    match name.split_once('.') {
        Some((prefix, rest)) if spec.prefixes.contains(&prefix) => Ok(rest),
        Some((prefix, _)) => Err(StoreError::InvalidArgument(format!(
            "{what} {name:?} refers to {prefix:?}, which does not apply to {}{}",
            spec.what,
            expected_prefixes(spec)
        ))),
        None => Ok(name),
    }
}

fn expected_prefixes(spec: &ListSpec) -> String {
    if spec.prefixes.is_empty() {
        String::new()
    } else {
        format!(
            " (use no prefix or {})",
            spec.prefixes
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn resolve_filter_field<'s>(spec: &'s ListSpec, filter: &Filter) -> Result<&'s Field, StoreError> {
    let shown = match &filter.entity {
        Some(entity) => format!("{entity}.{}", filter.field),
        None => filter.field.clone(),
    };
    if let Some(entity) = filter
        .entity
        .as_deref()
        .filter(|e| !spec.prefixes.contains(e))
    {
        return Err(StoreError::InvalidArgument(format!(
            "filter field {shown:?} refers to {entity:?}, which does not apply to {}{}",
            spec.what,
            expected_prefixes(spec)
        )));
    }
    // A parser that kept the prefix inside the field name is tolerated too.
    let name = strip_prefix(spec, &filter.field, "filter field")?;
    spec.filters.iter().find(|f| f.name == name).ok_or_else(|| {
        StoreError::InvalidArgument(format!(
            "invalid filter field {shown:?} for {}; valid fields: {}",
            spec.what,
            ListSpec::names(spec.filters)
        ))
    })
}

/// A tag filter: the execution has a tag equal to (`eq`) or among (`value_in`) the values;
/// `ne` and `value_not_in` negate it.
fn push_tag_condition(
    b: &mut SqlBuilder,
    field: &Field,
    filter: &Filter,
) -> Result<(), StoreError> {
    let negate = match filter.op {
        FilterOp::Eq | FilterOp::ValueIn => false,
        FilterOp::Ne | FilterOp::ValueNotIn => true,
        _ => {
            return Err(StoreError::InvalidArgument(format!(
                "filter on {:?} takes eq, ne, value_in or value_not_in",
                field.name
            )));
        }
    };
    if negate {
        b.push("NOT ");
    }
    b.push("EXISTS (SELECT 1 FROM ").push(field.expr).push(
        " t WHERE t.project = executions.project AND t.domain = executions.domain \
             AND t.name = executions.name AND t.tag IN (",
    );
    if filter.values.is_empty() {
        b.push("NULL");
    }
    for (i, value) in filter.values.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind(Value::Text(value.clone()));
    }
    b.push("))");
    Ok(())
}

fn push_condition(b: &mut SqlBuilder, field: &Field, filter: &Filter) -> Result<(), StoreError> {
    if field.ty == FieldType::Tag {
        return push_tag_condition(b, field, filter);
    }
    let single = || -> Result<&str, StoreError> {
        match filter.values.as_slice() {
            [v] => Ok(v.as_str()),
            _ => Err(StoreError::InvalidArgument(format!(
                "filter on {:?} takes exactly one value, got {}",
                field.name,
                filter.values.len()
            ))),
        }
    };
    let cmp = |b: &mut SqlBuilder, op: &str| -> Result<(), StoreError> {
        let value = typed_value(field, single()?)?;
        b.push(field.expr).push(" ").push(op).push(" ").bind(value);
        Ok(())
    };
    match filter.op {
        FilterOp::Eq => cmp(b, "=")?,
        FilterOp::Ne => cmp(b, "<>")?,
        FilterOp::Gt => cmp(b, ">")?,
        FilterOp::Gte => cmp(b, ">=")?,
        FilterOp::Lt => cmp(b, "<")?,
        FilterOp::Lte => cmp(b, "<=")?,
        FilterOp::Contains => {
            if field.ty != FieldType::Text {
                return Err(StoreError::InvalidArgument(format!(
                    "contains applies to text fields only, not to {:?}",
                    field.name
                )));
            }
            let pattern = format!("%{}%", escape_like(single()?));
            b.push(field.expr)
                .push(" LIKE ")
                .bind(Value::Text(pattern))
                .push(" ESCAPE '\\'");
        }
        FilterOp::NotLike => {
            // Flyte's `not_like`: the value is the LIKE pattern as given (`%`, `_` are wildcards).
            if field.ty != FieldType::Text {
                return Err(StoreError::InvalidArgument(format!(
                    "not_like applies to text fields only, not to {:?}",
                    field.name
                )));
            }
            b.push(field.expr)
                .push(" NOT LIKE ")
                .bind(Value::Text(single()?.to_owned()));
        }
        FilterOp::ValueIn | FilterOp::ValueNotIn => {
            let negate = filter.op == FilterOp::ValueNotIn;
            if filter.values.is_empty() {
                // Nothing is in an empty set.
                b.push(if negate { "1 = 1" } else { "1 = 0" });
                return Ok(());
            }
            b.push(field.expr)
                .push(if negate { " NOT IN (" } else { " IN (" });
            for (i, raw) in filter.values.iter().enumerate() {
                if i > 0 {
                    b.push(", ");
                }
                b.bind(typed_value(field, raw)?);
            }
            b.push(")");
        }
    }
    Ok(())
}

/// `%`, `_` and the escape character itself match literally.
fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn typed_value(field: &Field, raw: &str) -> Result<Value, StoreError> {
    let bad = |expected: &str| {
        StoreError::InvalidArgument(format!(
            "invalid value {raw:?} for filter field {:?}: expected {expected}",
            field.name
        ))
    };
    Ok(match field.ty {
        FieldType::Text | FieldType::Tag => Value::Text(raw.to_owned()),
        FieldType::Int => Value::Int(raw.trim().parse::<i32>().map_err(|_| bad("an integer"))?),
        FieldType::Timestamp => Value::Timestamp(
            DateTime::parse_from_rfc3339(raw.trim())
                .map_err(|_| bad("an RFC 3339 timestamp such as 2024-01-31T12:00:00Z"))?
                .with_timezone(&Utc)
                .trunc_subsecs(6),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SortKey;

    const SPEC: ListSpec = ListSpec {
        what: "tasks",
        prefixes: &["task"],
        filters: &[
            field("name", FieldType::Text),
            field("state", FieldType::Int),
            field("created_at", FieldType::Timestamp),
        ],
        sorts: &[
            field("name", FieldType::Text),
            field("created_at", FieldType::Timestamp),
        ],
        default_sort: "created_at",
        tiebreak: "id",
    };

    fn f(entity: Option<&str>, field: &str, op: FilterOp, values: &[&str]) -> Filter {
        Filter {
            entity: entity.map(str::to_owned),
            field: field.into(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn build(filters: Vec<Filter>, sort: Option<SortKey>) -> Result<Stmt, StoreError> {
        let query = ListQuery {
            filters,
            sort,
            limit: 10,
            token: "20".into(),
        };
        let paging = parse_paging(&query)?;
        let mut b = SqlBuilder::new("SELECT x FROM t WHERE a = ");
        b.bind(Value::Int(1));
        push_filters(&mut b, &SPEC, &query.filters)?;
        push_order_and_page(&mut b, &SPEC, &query, paging)?;
        Ok(b.build())
    }

    #[test]
    fn translates_filters_with_bound_values() {
        let stmt = build(
            vec![
                f(Some("task"), "name", FilterOp::Contains, &["a%b_c\\"]),
                f(None, "state", FilterOp::ValueIn, &["1", "2"]),
                f(None, "created_at", FilterOp::Gte, &["2024-01-01T00:00:00Z"]),
            ],
            Some(SortKey {
                field: "name".into(),
                direction: SortDirection::Ascending,
            }),
        )
        .unwrap();
        assert_eq!(
            stmt.sql,
            "SELECT x FROM t WHERE a = $1 AND name LIKE $2 ESCAPE '\\' AND state IN ($3, $4) \
             AND created_at >= $5 ORDER BY name ASC, id ASC LIMIT $6 OFFSET $7"
        );
        assert_eq!(stmt.args[1], Value::Text("%a\\%b\\_c\\\\%".into()));
        assert_eq!(stmt.args[5], Value::BigInt(11));
        assert_eq!(stmt.args[6], Value::BigInt(20));
    }

    #[test]
    fn default_sort_is_created_at_desc_with_tiebreak() {
        let stmt = build(vec![], None).unwrap();
        assert!(
            stmt.sql
                .ends_with("ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"),
            "{}",
            stmt.sql
        );
    }

    #[test]
    fn rejects_what_is_not_whitelisted() {
        let err = build(vec![f(None, "nope", FilterOp::Eq, &["x"])], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("name, state, created_at"),
            "{err}"
        );
        let err = build(
            vec![f(Some("workflow"), "name", FilterOp::Eq, &["x"])],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("workflow"), "{err}");
        let err = build(vec![f(None, "state", FilterOp::Eq, &["one"])], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("integer"), "{err}");
        let err = build(
            vec![f(None, "created_at", FilterOp::Eq, &["yesterday"])],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("RFC 3339"), "{err}");
        let err = build(vec![f(None, "state", FilterOp::Contains, &["1"])], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("text fields"), "{err}");
        let err = build(
            vec![],
            Some(SortKey {
                field: "digest".into(),
                direction: SortDirection::Ascending,
            }),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("digest") && err.contains("valid keys"),
            "{err}"
        );
    }

    #[test]
    fn tokens_are_offsets() {
        let q = |token: &str| ListQuery {
            limit: 5,
            token: token.into(),
            ..Default::default()
        };
        assert_eq!(
            parse_paging(&q("")).unwrap(),
            Paging {
                offset: 0,
                limit: 5
            }
        );
        assert_eq!(parse_paging(&q("15")).unwrap().offset, 15);
        assert!(parse_paging(&q("abc")).is_err());
        assert!(parse_paging(&q("-1")).is_err());
        assert!(parse_paging(&ListQuery::default()).is_err());
        let paging = Paging {
            offset: 10,
            limit: 2,
        };
        assert_eq!(paging.page(vec![1, 2, 3]), (vec![1, 2], "12".to_string()));
        assert_eq!(paging.page(vec![1, 2]), (vec![1, 2], String::new()));
    }
}
