//! Inputs from the command line and from files, turned into Flyte literals by the interface's
//! types; and literals rendered back as plain JSON values for display.
//!
//! Every value goes through JSON: a `--input name=text` flag is taken as it is for string-like
//! types (strings, enums, blobs, datetimes, durations) and parsed as YAML otherwise (`3`,
//! `[1, 2]`, `{a: 1}`); an inputs file (YAML or JSON) maps names to values.

use std::collections::BTreeMap;

use flyteidl::core::{
    Blob, BlobMetadata, Literal, LiteralCollection, LiteralMap, LiteralType, Primitive, Scalar,
    SimpleType, Union, Void, literal, literal_type, primitive, scalar,
};
use serde_json::{Value, json};

use crate::error::{CliError, CliResult};

/// A named, typed input: its type, and its default if it has one.
pub struct InputSpec {
    pub ty: LiteralType,
    pub default: Option<Literal>,
    pub required: bool,
}

/// Splits `name=value` (the value may contain `=`).
pub fn split_flag(flag: &str) -> CliResult<(String, String)> {
    match flag.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(CliError::Usage(format!(
            "--input {flag:?}: expected NAME=VALUE, e.g. --input a=1"
        ))),
    }
}

/// Reads an inputs file: a YAML (or JSON, which is YAML) mapping of input names to values.
pub fn read_inputs_file(path: &std::path::Path) -> CliResult<BTreeMap<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let value: Value = serde_yaml::from_str(&text).map_err(|e| {
        CliError::Usage(format!("{} is not valid YAML or JSON: {e}", path.display()))
    })?;
    match value {
        Value::Object(map) => Ok(map.into_iter().collect()),
        Value::Null => Ok(BTreeMap::new()),
        other => Err(CliError::Usage(format!(
            "{}: expected a mapping of input names to values, got {}",
            path.display(),
            kind(&other)
        ))),
    }
}

/// The text of a flag as a JSON value, given the input's type.
pub fn flag_value(text: &str, ty: &LiteralType) -> CliResult<Value> {
    if takes_text(ty) {
        return Ok(Value::String(text.to_string()));
    }
    serde_yaml::from_str(text).map_err(|e| CliError::Usage(format!("{text:?} is not a value: {e}")))
}

/// Types whose flag text is taken literally, not parsed as YAML.
fn takes_text(ty: &LiteralType) -> bool {
    match &ty.r#type {
        Some(literal_type::Type::Simple(s)) => matches!(
            SimpleType::try_from(*s),
            Ok(SimpleType::String | SimpleType::Datetime | SimpleType::Duration)
        ),
        Some(literal_type::Type::EnumType(_) | literal_type::Type::Blob(_)) => true,
        Some(literal_type::Type::StructuredDatasetType(_) | literal_type::Type::Schema(_)) => true,
        _ => false,
    }
}

/// Builds the input map of an execution: given values (flags win over the file) checked
/// against the interface; inputs not given keep their default (the server applies it) and a
/// required one missing is an error naming it.
pub fn build_inputs(
    specs: &BTreeMap<String, InputSpec>,
    from_file: BTreeMap<String, Value>,
    flags: &[(String, String)],
) -> CliResult<LiteralMap> {
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    for (name, value) in from_file {
        values.insert(name, value);
    }
    for (name, text) in flags {
        let spec = specs.get(name).ok_or_else(|| unknown_input(name, specs))?;
        values.insert(name.clone(), flag_value(text, &spec.ty)?);
    }
    let mut literals = BTreeMap::new();
    for (name, value) in values {
        let spec = specs
            .get(&name)
            .ok_or_else(|| unknown_input(&name, specs))?;
        let literal = to_literal(&value, &spec.ty)
            .map_err(|e| CliError::Usage(format!("input {name}: {e}")))?;
        literals.insert(name, literal);
    }
    // An optional input with no default (a task's `Optional[int]`) not given is None, as
    // pyflyte sends it.
    for (name, spec) in specs {
        if !literals.contains_key(name)
            && spec.default.is_none()
            && is_optional(&spec.ty)
            && let Ok(none) = to_literal(&Value::Null, &spec.ty)
        {
            literals.insert(name.clone(), none);
        }
    }
    let missing: Vec<&str> = specs
        .iter()
        .filter(|(name, spec)| {
            spec.required && spec.default.is_none() && !literals.contains_key(*name)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(CliError::Usage(format!(
            "missing required input(s): {} (give them with --input NAME=VALUE or --inputs-file)",
            missing.join(", ")
        )));
    }
    Ok(LiteralMap { literals })
}

/// A union with a None variant (`Optional[T]`).
fn is_optional(ty: &LiteralType) -> bool {
    matches!(&ty.r#type, Some(literal_type::Type::UnionType(u)) if u.variants.iter().any(|v| {
        matches!(v.r#type, Some(literal_type::Type::Simple(s)) if s == SimpleType::None as i32)
    }))
}

fn unknown_input(name: &str, specs: &BTreeMap<String, InputSpec>) -> CliError {
    let known: Vec<&str> = specs.keys().map(String::as_str).collect();
    CliError::Usage(format!(
        "no input named {name:?}; the inputs are: {}",
        if known.is_empty() {
            "(none)".to_string()
        } else {
            known.join(", ")
        }
    ))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn scalar_literal(value: scalar::Value) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(value),
        }))),
        ..Default::default()
    }
}

fn primitive_literal(value: primitive::Value) -> Literal {
    scalar_literal(scalar::Value::Primitive(Primitive { value: Some(value) }))
}

/// A JSON value as a literal of type `ty`; the error says what was expected.
pub fn to_literal(value: &Value, ty: &LiteralType) -> Result<Literal, String> {
    use literal_type::Type;
    let Some(t) = &ty.r#type else {
        return Err("the interface gives this input no type".into());
    };
    match t {
        Type::Simple(s) => {
            let simple =
                SimpleType::try_from(*s).map_err(|_| format!("unknown simple type {s}"))?;
            simple_literal(value, simple)
        }
        Type::CollectionType(inner) => match value {
            Value::Array(items) => {
                let literals = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| to_literal(v, inner).map_err(|e| format!("item {i}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Literal {
                    value: Some(literal::Value::Collection(LiteralCollection { literals })),
                    ..Default::default()
                })
            }
            other => Err(format!("expected a list, got {}", kind(other))),
        },
        Type::MapValueType(inner) => match value {
            Value::Object(map) => {
                let literals = map
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            to_literal(v, inner).map_err(|e| format!("key {k}: {e}"))?,
                        ))
                    })
                    .collect::<Result<BTreeMap<_, _>, String>>()?;
                Ok(Literal {
                    value: Some(literal::Value::Map(LiteralMap { literals })),
                    ..Default::default()
                })
            }
            other => Err(format!("expected a mapping, got {}", kind(other))),
        },
        Type::EnumType(e) => match value {
            Value::String(s) if e.values.contains(s) => {
                Ok(primitive_literal(primitive::Value::StringValue(s.clone())))
            }
            other => Err(format!(
                "expected one of {}, got {}",
                e.values.join(", "),
                display(other)
            )),
        },
        Type::UnionType(u) => {
            // The first variant that takes the value, None only for null.
            let mut errors = Vec::new();
            for variant in &u.variants {
                match to_literal(value, variant) {
                    Ok(lit) => {
                        return Ok(scalar_literal(scalar::Value::Union(Box::new(Union {
                            value: Some(Box::new(lit)),
                            r#type: Some(variant.clone()),
                        }))));
                    }
                    Err(e) => errors.push(e),
                }
            }
            Err(format!(
                "no variant of the union takes it ({})",
                errors.join("; ")
            ))
        }
        Type::Blob(blob_type) => match value {
            Value::String(uri) if !uri.is_empty() => {
                Ok(scalar_literal(scalar::Value::Blob(Blob {
                    metadata: Some(BlobMetadata {
                        r#type: Some(blob_type.clone()),
                    }),
                    uri: uri.clone(),
                })))
            }
            other => Err(format!(
                "expected the URI of a file or directory the server can read (file://, s3://, ...), got {}",
                display(other)
            )),
        },
        Type::Schema(_) | Type::StructuredDatasetType(_) => Err(
            "structured datasets cannot be given on the command line; launch with pyflyte".into(),
        ),
    }
}

fn simple_literal(value: &Value, simple: SimpleType) -> Result<Literal, String> {
    use primitive::Value as P;
    match (simple, value) {
        (SimpleType::None, Value::Null) => Ok(scalar_literal(scalar::Value::NoneType(Void {}))),
        (SimpleType::Integer, Value::Number(n)) => n
            .as_i64()
            .map(|i| primitive_literal(P::Integer(i)))
            .ok_or_else(|| format!("expected an integer, got {n}")),
        (SimpleType::Integer, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(|i| primitive_literal(P::Integer(i)))
            .map_err(|_| format!("expected an integer, got {s:?}")),
        (SimpleType::Float, Value::Number(n)) => n
            .as_f64()
            .map(|f| primitive_literal(P::FloatValue(f)))
            .ok_or_else(|| format!("expected a number, got {n}")),
        (SimpleType::Float, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(|f| primitive_literal(P::FloatValue(f)))
            .map_err(|_| format!("expected a number, got {s:?}")),
        (SimpleType::String, Value::String(s)) => Ok(primitive_literal(P::StringValue(s.clone()))),
        // A YAML file may spell a string-typed value as a number or boolean.
        (SimpleType::String, Value::Number(n)) => {
            Ok(primitive_literal(P::StringValue(n.to_string())))
        }
        (SimpleType::String, Value::Bool(b)) => {
            Ok(primitive_literal(P::StringValue(b.to_string())))
        }
        (SimpleType::Boolean, Value::Bool(b)) => Ok(primitive_literal(P::Boolean(*b))),
        (SimpleType::Datetime, Value::String(s)) => parse_datetime(s)
            .map(|ts| primitive_literal(P::Datetime(ts)))
            .ok_or_else(|| format!("expected a date-time like 2024-01-01T00:00:00Z, got {s:?}")),
        (SimpleType::Duration, Value::String(s)) => parse_duration(s)
            .map(|d| primitive_literal(P::Duration(d)))
            .ok_or_else(|| format!("expected a duration like 90s, 5m or 1h30m, got {s:?}")),
        (SimpleType::Duration, Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|secs| primitive_literal(P::Duration(duration_from_secs(secs))))
            .ok_or_else(|| format!("expected seconds, got {n}")),
        (SimpleType::Struct, Value::Object(_)) => {
            serde_json::from_value::<pbjson_types::Struct>(value.clone())
                .map(|s| scalar_literal(scalar::Value::Generic(s)))
                .map_err(|e| format!("not a JSON object: {e}"))
        }
        (SimpleType::Binary | SimpleType::Error, _) => Err(format!(
            "{} values cannot be given on the command line",
            simple.as_str_name()
        )),
        (simple, other) => Err(format!(
            "expected {}, got {}",
            match simple {
                SimpleType::None => "null",
                SimpleType::Integer => "an integer",
                SimpleType::Float => "a number",
                SimpleType::String => "a string",
                SimpleType::Boolean => "true or false",
                SimpleType::Datetime => "a date-time",
                SimpleType::Duration => "a duration",
                SimpleType::Struct => "a mapping",
                _ => "something else",
            },
            display(other)
        )),
    }
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => format!("{} ({other})", kind(other)),
    }
}

fn parse_datetime(s: &str) -> Option<pbjson_types::Timestamp> {
    let s = s.trim();
    let dt = chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
                .ok()
                .map(|n| n.and_utc())
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|n| n.and_utc())
        })?;
    Some(pbjson_types::Timestamp {
        seconds: dt.timestamp(),
        nanos: i32::try_from(dt.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

/// `90s`, `1.5s`, `5m`, `1h30m`, `2d`, `250ms`, or plain seconds.
fn parse_duration(s: &str) -> Option<pbjson_types::Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| duration_from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * factor;
    }
    Some(duration_from_secs(total))
}

fn duration_from_secs(secs: f64) -> pbjson_types::Duration {
    let whole = secs.trunc();
    pbjson_types::Duration {
        seconds: whole as i64,
        nanos: ((secs - whole) * 1e9).round() as i32,
    }
}

/// A literal as a plain JSON value, for display (`get execution` inputs and outputs).
pub fn to_json(literal: &Literal) -> Value {
    match &literal.value {
        None => Value::Null,
        Some(literal::Value::Scalar(s)) => scalar_json(s),
        Some(literal::Value::Collection(c)) => {
            Value::Array(c.literals.iter().map(to_json).collect())
        }
        Some(literal::Value::Map(m)) => map_json(m),
        Some(literal::Value::OffloadedMetadata(o)) => json!({ "offloaded": o.uri }),
    }
}

/// A literal map as a JSON object.
pub fn map_json(map: &LiteralMap) -> Value {
    Value::Object(
        map.literals
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect(),
    )
}

fn scalar_json(s: &Scalar) -> Value {
    use primitive::Value as P;
    match &s.value {
        None => Value::Null,
        Some(scalar::Value::Primitive(p)) => match &p.value {
            None => Value::Null,
            Some(P::Integer(i)) => json!(i),
            Some(P::FloatValue(f)) => json!(f),
            Some(P::StringValue(s)) => json!(s),
            Some(P::Boolean(b)) => json!(b),
            Some(P::Datetime(ts)) => json!(
                chrono::DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                    .unwrap_or_default()
            ),
            Some(P::Duration(d)) => json!(format_proto_duration(d)),
        },
        Some(scalar::Value::Blob(b)) => json!(b.uri),
        Some(scalar::Value::Binary(b)) => json!(format!("<{} bytes, {}>", b.value.len(), b.tag)),
        Some(scalar::Value::Schema(s)) => json!(s.uri),
        Some(scalar::Value::NoneType(_)) => Value::Null,
        Some(scalar::Value::Error(e)) => json!({ "error": e.message, "node": e.failed_node_id }),
        Some(scalar::Value::Generic(g)) => serde_json::to_value(g).unwrap_or(Value::Null),
        Some(scalar::Value::StructuredDataset(d)) => json!(d.uri),
        Some(scalar::Value::Union(u)) => u.value.as_deref().map(to_json).unwrap_or(Value::Null),
    }
}

/// `1.5s`, `90s`: a protobuf duration in seconds.
pub fn format_proto_duration(d: &pbjson_types::Duration) -> String {
    let secs = d.seconds as f64 + f64::from(d.nanos) / 1e9;
    format!("{}s", trim_float(secs))
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A type, as a person reads it: `int`, `list[str]`, `dict[str, float]`, `enum(red|blue)`.
pub fn type_name(ty: &LiteralType) -> String {
    use literal_type::Type;
    match &ty.r#type {
        None => "?".into(),
        Some(Type::Simple(s)) => match SimpleType::try_from(*s) {
            Ok(SimpleType::None) => "none".into(),
            Ok(SimpleType::Integer) => "int".into(),
            Ok(SimpleType::Float) => "float".into(),
            Ok(SimpleType::String) => "str".into(),
            Ok(SimpleType::Boolean) => "bool".into(),
            Ok(SimpleType::Datetime) => "datetime".into(),
            Ok(SimpleType::Duration) => "duration".into(),
            Ok(SimpleType::Binary) => "binary".into(),
            Ok(SimpleType::Error) => "error".into(),
            Ok(SimpleType::Struct) => ty
                .structure
                .as_ref()
                .filter(|s| !s.tag.is_empty())
                .map_or_else(|| "struct".into(), |s| s.tag.clone()),
            Err(_) => format!("simple({s})"),
        },
        Some(Type::Schema(_)) => "schema".into(),
        Some(Type::CollectionType(inner)) => format!("list[{}]", type_name(inner)),
        Some(Type::MapValueType(inner)) => format!("dict[str, {}]", type_name(inner)),
        Some(Type::Blob(b)) => {
            if b.dimensionality == 1 {
                "directory".into()
            } else {
                "file".into()
            }
        }
        Some(Type::EnumType(e)) => format!("enum({})", e.values.join("|")),
        Some(Type::StructuredDatasetType(_)) => "structured_dataset".into(),
        Some(Type::UnionType(u)) => {
            let names: Vec<String> = u.variants.iter().map(type_name).collect();
            if names.len() == 2 && names.iter().any(|n| n == "none") {
                let other = names
                    .iter()
                    .find(|n| *n != "none")
                    .cloned()
                    .unwrap_or_default();
                format!("optional[{other}]")
            } else {
                format!("union[{}]", names.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyteidl::core::{EnumType, UnionType};

    fn simple(s: SimpleType) -> LiteralType {
        LiteralType {
            r#type: Some(literal_type::Type::Simple(s as i32)),
            ..Default::default()
        }
    }

    fn spec(ty: LiteralType, required: bool) -> InputSpec {
        InputSpec {
            ty,
            default: None,
            required,
        }
    }

    fn flag(name: &str, text: &str, ty: LiteralType) -> Value {
        let specs = BTreeMap::from([(name.to_string(), spec(ty, true))]);
        let map = build_inputs(
            &specs,
            BTreeMap::new(),
            &[split_flag(&format!("{name}={text}")).unwrap()],
        )
        .unwrap();
        to_json(&map.literals[name])
    }

    #[test]
    fn flags_by_type() {
        assert_eq!(flag("a", "3", simple(SimpleType::Integer)), json!(3));
        assert_eq!(flag("a", "2.5", simple(SimpleType::Float)), json!(2.5));
        assert_eq!(flag("a", "true", simple(SimpleType::Boolean)), json!(true));
        // Strings are taken as written, even when they look like numbers or contain '='.
        assert_eq!(flag("a", "007", simple(SimpleType::String)), json!("007"));
        assert_eq!(flag("a", "x=y", simple(SimpleType::String)), json!("x=y"));
        assert_eq!(
            flag("a", "1m30s", simple(SimpleType::Duration)),
            json!("90s")
        );
        assert_eq!(
            flag("a", "2024-01-02T03:04:05Z", simple(SimpleType::Datetime)),
            json!("2024-01-02T03:04:05Z")
        );
        let list = LiteralType {
            r#type: Some(literal_type::Type::CollectionType(Box::new(simple(
                SimpleType::Integer,
            )))),
            ..Default::default()
        };
        assert_eq!(flag("a", "[1, 2, 3]", list), json!([1, 2, 3]));
        let colour = LiteralType {
            r#type: Some(literal_type::Type::EnumType(EnumType {
                values: vec!["red".into(), "green".into()],
            })),
            ..Default::default()
        };
        assert_eq!(flag("a", "green", colour), json!("green"));
    }

    #[test]
    fn optional_takes_null_and_value() {
        let optional = LiteralType {
            r#type: Some(literal_type::Type::UnionType(UnionType {
                variants: vec![simple(SimpleType::Integer), simple(SimpleType::None)],
            })),
            ..Default::default()
        };
        assert_eq!(type_name(&optional), "optional[int]");
        let lit = to_literal(&json!(null), &optional).unwrap();
        assert_eq!(to_json(&lit), Value::Null);
        let lit = to_literal(&json!(4), &optional).unwrap();
        assert_eq!(to_json(&lit), json!(4));
        let Some(literal::Value::Scalar(s)) = &lit.value else {
            panic!()
        };
        let Some(scalar::Value::Union(u)) = &s.value else {
            panic!("{s:?}")
        };
        assert_eq!(u.r#type, Some(simple(SimpleType::Integer)));
    }

    #[test]
    fn optional_without_default_is_none_when_not_given() {
        let optional = LiteralType {
            r#type: Some(literal_type::Type::UnionType(UnionType {
                variants: vec![simple(SimpleType::Integer), simple(SimpleType::None)],
            })),
            ..Default::default()
        };
        let specs = BTreeMap::from([("x".to_string(), spec(optional, true))]);
        let map = build_inputs(&specs, BTreeMap::new(), &[]).unwrap();
        assert_eq!(map_json(&map), json!({"x": null}));
        assert!(map.literals.contains_key("x"));
    }

    #[test]
    fn errors_name_the_input_and_the_fix() {
        let specs = BTreeMap::from([
            ("a".to_string(), spec(simple(SimpleType::Integer), true)),
            ("b".to_string(), spec(simple(SimpleType::Integer), false)),
        ]);
        let err = build_inputs(&specs, BTreeMap::new(), &[("a".into(), "x".into())]).unwrap_err();
        assert!(
            err.to_string().contains("input a: expected an integer"),
            "{err}"
        );
        let err = build_inputs(&specs, BTreeMap::new(), &[("c".into(), "1".into())]).unwrap_err();
        assert!(
            err.to_string()
                .contains("no input named \"c\"; the inputs are: a, b"),
            "{err}"
        );
        let err = build_inputs(&specs, BTreeMap::new(), &[]).unwrap_err();
        assert!(
            err.to_string().contains("missing required input(s): a"),
            "{err}"
        );
        assert!(split_flag("novalue").is_err());
    }

    #[test]
    fn file_values_and_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.yaml");
        std::fs::write(&path, "a: 1\nb: 5\nnames: [x, y]\n").unwrap();
        let file = read_inputs_file(&path).unwrap();
        let list = LiteralType {
            r#type: Some(literal_type::Type::CollectionType(Box::new(simple(
                SimpleType::String,
            )))),
            ..Default::default()
        };
        let specs = BTreeMap::from([
            ("a".to_string(), spec(simple(SimpleType::Integer), true)),
            ("b".to_string(), spec(simple(SimpleType::Integer), true)),
            ("names".to_string(), spec(list, true)),
        ]);
        let map = build_inputs(&specs, file, &[("b".into(), "7".into())]).unwrap();
        assert_eq!(map_json(&map), json!({"a": 1, "b": 7, "names": ["x", "y"]}));
        std::fs::write(&path, "[1, 2]\n").unwrap();
        let err = read_inputs_file(&path).unwrap_err();
        assert!(err.to_string().contains("expected a mapping"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().seconds, 90);
        assert_eq!(parse_duration("1h30m").unwrap().seconds, 5400);
        let d = parse_duration("250ms").unwrap();
        assert_eq!((d.seconds, d.nanos), (0, 250_000_000));
        assert!(parse_duration("soon").is_none());
        assert!(parse_duration("5x").is_none());
    }
}
