//! Property tests of the list-filter grammar (`flyte_core::filters`), see docs/fuzzing.md.
//!
//! - any string: `parse` returns a value or an error naming one of the input's expressions,
//!   never panics;
//! - differential: for a single expression, `parse` agrees with upstream's own matcher, the Go
//!   regex `(.+)\((.+),\s?(.+)\)` (Rust's `regex` has the same leftmost-first semantics;
//!   Go's `\s` is spelled out because it is ASCII-only there), newlines aside;
//! - round trip: filters rendered as `op(entity.field,value)` joined by `+` parse back to
//!   themselves, and re-rendering a parse result parses to the same result.

use std::sync::LazyLock;

use flyte_core::filters::{ENTITY_PREFIXES, Filter, FilterError, FilterOp, parse};
use proptest::prelude::*;

const OPS: &[FilterOp] = &[
    FilterOp::Eq,
    FilterOp::Ne,
    FilterOp::Gt,
    FilterOp::Gte,
    FilterOp::Lt,
    FilterOp::Lte,
    FilterOp::Contains,
    FilterOp::ValueIn,
    FilterOp::ValueNotIn,
    FilterOp::NotLike,
];

/// Upstream's `filterRegex` (flyteadmin `util/filters.go`).
static UPSTREAM_REGEX: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"(.+)\((.+),[\t\n\x0C\r ]?(.+)\)").expect("valid regex"));

/// Renders a filter the way a client writes it.
fn render(f: &Filter) -> String {
    let field = match &f.entity {
        Some(e) => format!("{e}.{}", f.field),
        None => f.field.clone(),
    };
    format!("{}({field},{})", f.op.name(), f.values.join(";"))
}

/// Text made mostly of the grammar's own punctuation, so the matcher's corner cases are hit
/// far more often than with uniformly random strings.
fn grammar_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just(", ".to_string()),
        Just("+".to_string()),
        Just(";".to_string()),
        Just(".".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("\n".to_string()),
        Just("é".to_string()),
        Just("😀".to_string()),
        Just("\u{a0}".to_string()),
        prop::sample::select(OPS).prop_map(|op| op.name().to_string()),
        prop::sample::select(ENTITY_PREFIXES).prop_map(str::to_string),
        "[a-z_0-9]{1,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn field() -> impl Strategy<Value = String> {
    // No dot: a dotted field could start with an entity prefix and be split differently.
    "[a-z][a-z0-9_]{0,12}"
}

/// A value as the grammar can carry it: no `,` (it moves into the field), no `+` (it splits
/// expressions), no newline, not starting with the one whitespace the grammar drops, and
/// (for the list operators) no `;`.
fn value(repeated: bool) -> impl Strategy<Value = String> {
    let excluded: &'static [char] = if repeated {
        &[',', '+', '\n', ';']
    } else {
        &[',', '+', '\n']
    };
    prop::collection::vec(
        any::<char>().prop_filter("grammar separator", move |c| !excluded.contains(c)),
        1..12,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>())
    .prop_filter("leading whitespace is dropped", |s| {
        !s.starts_with(['\t', '\x0c', '\r', ' '])
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    (
        prop::sample::select(OPS),
        prop::option::of(prop::sample::select(ENTITY_PREFIXES)),
        field(),
    )
        .prop_flat_map(|(op, entity, field)| {
            let values = if op.is_repeated() {
                prop::collection::vec(value(true), 1..4).boxed()
            } else {
                value(false).prop_map(|v| vec![v]).boxed()
            };
            values.prop_map(move |values| Filter {
                entity: entity.map(str::to_string),
                field: field.clone(),
                op,
                values,
            })
        })
}

fn expression_of(err: &FilterError) -> &str {
    match err {
        FilterError::Malformed { expression }
        | FilterError::UnknownFunction { expression, .. }
        | FilterError::EmptyField { expression } => expression,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_string_parses_or_names_the_bad_expression(s in prop_oneof![any::<String>(), grammar_soup()]) {
        match parse(&s) {
            Ok(filters) => {
                let parts = if s.is_empty() { 0 } else { s.split('+').count() };
                prop_assert_eq!(filters.len(), parts);
            }
            Err(err) => {
                let expr = expression_of(&err);
                prop_assert!(s.split('+').any(|part| part == expr), "{err} not from {s:?}");
                prop_assert!(err.to_string().contains(expr));
            }
        }
    }

    /// Newlines are left out: upstream's unanchored `FindStringSubmatch` finds a match on any
    /// one line of a multi-line expression, where `parse` refuses the expression outright (a
    /// deliberate difference; a filter with a newline is never one a client meant).
    #[test]
    fn single_expression_matches_upstream_regex(
        s in grammar_soup().prop_map(|s| s.replace(['+', '\n'], ""))
    ) {
        let parsed = parse(&s);
        if s.is_empty() {
            prop_assert_eq!(parsed, Ok(Vec::new()));
            return Ok(());
        }
        match UPSTREAM_REGEX.captures(&s) {
            None => {
                let malformed = matches!(parsed, Err(FilterError::Malformed { .. }));
                prop_assert!(malformed, "{s:?}: regex does not match, parse gave {parsed:?}");
            }
            Some(caps) => {
                let (function, raw_field, raw_value) = (&caps[1], &caps[2], &caps[3]);
                match FilterOp::from_name(function) {
                    None => prop_assert_eq!(
                        parsed,
                        Err(FilterError::UnknownFunction {
                            expression: s.clone(),
                            function: function.to_string(),
                        })
                    ),
                    Some(op) => {
                        let entity = ENTITY_PREFIXES
                            .iter()
                            .filter(|p| raw_field.starts_with(&format!("{p}.")))
                            .max_by_key(|p| p.len());
                        let field = entity.map_or(raw_field, |p| &raw_field[p.len() + 1..]);
                        if field.is_empty() {
                            let empty_field = matches!(parsed, Err(FilterError::EmptyField { .. }));
                            prop_assert!(empty_field, "{s:?}: {parsed:?}");
                        } else {
                            let values = if op.is_repeated() {
                                raw_value.split(';').map(str::to_string).collect()
                            } else {
                                vec![raw_value.to_string()]
                            };
                            prop_assert_eq!(parsed, Ok(vec![Filter {
                                entity: entity.map(|e| e.to_string()),
                                field: field.to_string(),
                                op,
                                values,
                            }]));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rendered_filters_parse_back(filters in prop::collection::vec(filter(), 1..5)) {
        let text = filters.iter().map(render).collect::<Vec<_>>().join("+");
        prop_assert_eq!(parse(&text), Ok(filters), "{}", text);
    }

    #[test]
    fn reparsing_a_rendered_parse_is_stable(s in grammar_soup()) {
        if let Ok(filters) = parse(&s) {
            let text = filters.iter().map(render).collect::<Vec<_>>().join("+");
            prop_assert_eq!(parse(&text), Ok(filters), "{:?} rendered as {:?}", s, text);
        }
    }
}
