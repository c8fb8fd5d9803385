//! Flyte's list-filter grammar (flyteadmin `util/filters.go`): expressions such as
//! `eq(name,my_wf)+gte(created_at,2024-01-01T00:00:00Z)+value_in(phase,SUCCEEDED;FAILED)`
//! joined by `+`. A field may carry an entity prefix (`workflow.name`), which is kept so the
//! API layer can check it belongs to the resource being listed.
//!
//! Upstream matches each expression with the unanchored Go regex `(.+)\((.+),\s?(.+)\)`, whose
//! greedy groups mean: the function is everything before the *last* `(` that still allows a
//! match, the field runs up to the *last* comma, one optional whitespace after that comma is
//! dropped, and the value runs up to the last `)`. So a value can contain `(`, `)` but not a
//! comma (a comma moves into the field, which then is not a column), and not `+` (it splits
//! expressions). [`parse`] mirrors that matching exactly.

/// Comparison operators of the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
    ValueIn,
    ValueNotIn,
    /// `not_like(field,value)`: SQL `NOT LIKE value` (the value is used as the pattern as given).
    NotLike,
}

impl FilterOp {
    /// The grammar's function name for this operator.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Contains => "contains",
            Self::ValueIn => "value_in",
            Self::ValueNotIn => "value_not_in",
            Self::NotLike => "not_like",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "contains" => Self::Contains,
            "value_in" => Self::ValueIn,
            "value_not_in" => Self::ValueNotIn,
            "not_like" => Self::NotLike,
            _ => return None,
        })
    }

    /// `value_in`/`value_not_in` take a `;`-separated list; the others a single value.
    pub fn is_repeated(self) -> bool {
        matches!(self, Self::ValueIn | Self::ValueNotIn)
    }
}

/// One parsed expression. `values` has exactly one element except for `value_in`/`value_not_in`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The entity prefix if one was written (`workflow` in `workflow.name`).
    pub entity: Option<String>,
    pub field: String,
    pub op: FilterOp,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDirection {
    #[default]
    Descending,
    Ascending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub direction: SortDirection,
}

/// The entity prefixes flyteadmin recognises in filter fields (`filterFieldEntityPrefix`).
pub const ENTITY_PREFIXES: &[&str] = &[
    "task",
    "workflow",
    "launch_plan",
    "execution",
    "node_execution",
    "task_execution",
    "entities",
    "named_entity_metadata",
    "project",
    "signal",
    "admin_tag",
    "execution_admin_tag",
    "execution_tag",
];

/// Why a filter string was refused; always names the offending expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "invalid filter expression '{expression}': expected the form function(field,value), \
         e.g. eq(name,my_workflow), with expressions joined by '+'"
    )]
    Malformed { expression: String },
    #[error(
        "invalid filter expression '{expression}': unknown function '{function}' \
         (expected one of eq, ne, gt, gte, lt, lte, contains, not_like, value_in, value_not_in)"
    )]
    UnknownFunction {
        expression: String,
        function: String,
    },
    #[error("invalid filter expression '{expression}': the field name is empty")]
    EmptyField { expression: String },
}

/// Parses a filter string. The empty string means "no filters".
pub fn parse(expr: &str) -> Result<Vec<Filter>, FilterError> {
    if expr.is_empty() {
        return Ok(Vec::new());
    }
    expr.split('+').map(parse_expression).collect()
}

fn parse_expression(expression: &str) -> Result<Filter, FilterError> {
    let malformed = || FilterError::Malformed {
        expression: expression.to_string(),
    };
    let (function, raw_field, raw_value) = match_filter(expression).ok_or_else(malformed)?;
    let op = FilterOp::from_name(function).ok_or_else(|| FilterError::UnknownFunction {
        expression: expression.to_string(),
        function: function.to_string(),
    })?;
    let (entity, field) = split_entity(raw_field);
    if field.is_empty() {
        return Err(FilterError::EmptyField {
            expression: expression.to_string(),
        });
    }
    let values = if op.is_repeated() {
        raw_value.split(';').map(str::to_string).collect()
    } else {
        vec![raw_value.to_string()]
    };
    Ok(Filter {
        entity: entity.map(str::to_string),
        field: field.to_string(),
        op,
        values,
    })
}

/// Splits a known entity prefix off a field (`workflow.name` → (`workflow`, `name`)).
/// Unknown prefixes stay part of the field, as upstream does.
fn split_entity(field: &str) -> (Option<&str>, &str) {
    // Longest prefix first so `execution_tag.` is not taken for `execution.`-like overlaps.
    let mut prefixes: Vec<&str> = ENTITY_PREFIXES.to_vec();
    prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for prefix in prefixes {
        if let Some(rest) = field
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
        {
            return (Some(prefix), rest);
        }
    }
    (None, field)
}

/// Mirrors `(.+)\((.+),\s?(.+)\)` with Go's leftmost-first, greedy semantics. Returns
/// (function, field, value). `.` does not match a newline in Go, so newlines never match here.
fn match_filter(s: &str) -> Option<(&str, &str, &str)> {
    if s.contains('\n') {
        return None;
    }
    // Greedy group 1: try the rightmost '(' first.
    for (open, _) in s.char_indices().rev().filter(|(_, c)| *c == '(') {
        if open == 0 {
            continue;
        }
        let rest = &s[open + 1..];
        if let Some((field, value)) = match_field_value(rest) {
            return Some((&s[..open], field, value));
        }
    }
    None
}

/// Matches `(.+),\s?(.+)\)` at the start of `s` (the tail after it is ignored).
fn match_field_value(s: &str) -> Option<(&str, &str)> {
    for (comma, _) in s.char_indices().rev().filter(|(_, c)| *c == ',') {
        if comma == 0 {
            continue;
        }
        let after = &s[comma + 1..];
        // `\s?` is greedy: first try consuming one whitespace character.
        let mut candidates = Vec::with_capacity(2);
        if let Some(c) = after.chars().next().filter(|c| is_go_space(*c)) {
            candidates.push(&after[c.len_utf8()..]);
        }
        candidates.push(after);
        for tail in candidates {
            if let Some(value) = match_value(tail) {
                return Some((&s[..comma], value));
            }
        }
    }
    None
}

/// Matches `(.+)\)` greedily: the value runs to the last ')' and must not be empty.
fn match_value(s: &str) -> Option<&str> {
    let close = s.rfind(')')?;
    (close > 0).then(|| &s[..close])
}

/// Go's `\s`: `[\t\n\f\r ]`.
fn is_go_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(expr: &str) -> Filter {
        let mut filters = parse(expr).expect("parses");
        assert_eq!(filters.len(), 1);
        filters.remove(0)
    }

    #[test]
    fn empty_string_is_no_filters() {
        assert_eq!(parse("").unwrap(), Vec::new());
    }

    #[test]
    fn single_expression() {
        let f = one("eq(name,my_wf)");
        assert_eq!(
            f,
            Filter {
                entity: None,
                field: "name".into(),
                op: FilterOp::Eq,
                values: vec!["my_wf".into()]
            }
        );
    }

    #[test]
    fn every_operator() {
        for (name, op) in [
            ("eq", FilterOp::Eq),
            ("ne", FilterOp::Ne),
            ("gt", FilterOp::Gt),
            ("gte", FilterOp::Gte),
            ("lt", FilterOp::Lt),
            ("lte", FilterOp::Lte),
            ("contains", FilterOp::Contains),
            ("not_like", FilterOp::NotLike),
            ("value_in", FilterOp::ValueIn),
            ("value_not_in", FilterOp::ValueNotIn),
        ] {
            let f = one(&format!("{name}(field,v)"));
            assert_eq!(f.op, op);
            assert_eq!(op.name(), name);
        }
    }

    #[test]
    fn joined_expressions_and_entity_prefix() {
        let filters =
            parse("eq(workflow.name,wf)+gte(created_at,2024-01-01T00:00:00Z)+eq(state,1)").unwrap();
        assert_eq!(filters.len(), 3);
        assert_eq!(filters[0].entity.as_deref(), Some("workflow"));
        assert_eq!(filters[0].field, "name");
        assert_eq!(filters[1].entity, None);
        assert_eq!(filters[1].values, vec!["2024-01-01T00:00:00Z"]);
        assert_eq!(filters[2].field, "state");
    }

    #[test]
    fn longest_entity_prefix_wins() {
        let f = one("eq(execution_tag.key,a)");
        assert_eq!(f.entity.as_deref(), Some("execution_tag"));
        assert_eq!(f.field, "key");
        let f = one("eq(launch_plan.name,a)");
        assert_eq!(f.entity.as_deref(), Some("launch_plan"));
    }

    #[test]
    fn unknown_prefix_stays_in_field() {
        let f = one("eq(foo.bar,a)");
        assert_eq!(f.entity, None);
        assert_eq!(f.field, "foo.bar");
    }

    #[test]
    fn repeated_values_split_on_semicolon() {
        let f = one("value_in(phase,SUCCEEDED;FAILED)");
        assert_eq!(f.values, vec!["SUCCEEDED", "FAILED"]);
        let f = one("value_not_in(phase,RUNNING)");
        assert_eq!(f.values, vec!["RUNNING"]);
        // Single-value operators keep the value whole.
        let f = one("eq(name,a;b)");
        assert_eq!(f.values, vec!["a;b"]);
    }

    #[test]
    fn one_space_after_comma_is_dropped() {
        assert_eq!(one("eq(name, wf)").values, vec!["wf"]);
        // Only one: the second belongs to the value, as with upstream's `\s?`.
        assert_eq!(one("eq(name,  wf)").values, vec![" wf"]);
    }

    #[test]
    fn comma_in_value_moves_into_field_like_upstream() {
        let f = one("eq(name,a,b)");
        assert_eq!(f.field, "name,a");
        assert_eq!(f.values, vec!["b"]);
    }

    #[test]
    fn parentheses_in_value_are_kept() {
        let f = one("eq(name,f(x))");
        assert_eq!(f.field, "name");
        assert_eq!(f.values, vec!["f(x)"]);
    }

    #[test]
    fn malformed_expressions_are_refused_and_named() {
        for bad in [
            "eq",
            "eq()",
            "eq(name)",
            "eq(name,)",
            "(name,a)",
            "eq(,a)",
            "eq(name,a",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                matches!(err, FilterError::Malformed { ref expression } if expression == bad),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains(bad));
        }
    }

    #[test]
    fn empty_part_between_plus_is_malformed() {
        let err = parse("eq(name,a)+").unwrap_err();
        assert_eq!(
            err,
            FilterError::Malformed {
                expression: String::new()
            }
        );
    }

    #[test]
    fn unknown_function_is_named() {
        let err = parse("eq(name,a)+like(name,b)").unwrap_err();
        assert_eq!(
            err,
            FilterError::UnknownFunction {
                expression: "like(name,b)".into(),
                function: "like".into()
            }
        );
        assert!(err.to_string().contains("unknown function 'like'"));
    }

    #[test]
    fn prefix_without_field_is_refused() {
        let err = parse("eq(workflow.,a)").unwrap_err();
        assert!(matches!(err, FilterError::EmptyField { .. }));
    }
}
