//! Literal types: compatibility of an upstream type with a downstream one (Flyte's rules,
//! propeller's `compiler/validators/typing.go`), and the type of a literal value
//! (`validators.LiteralTypeForLiteral`), used to check launch-plan and execution inputs.

use flyteidl::core::literal_type::Type;
use flyteidl::core::schema_type::schema_column::SchemaColumnType;
use flyteidl::core::{
    BlobType, Literal, LiteralType, SchemaType, SimpleType, StructuredDatasetType, UnionType,
    literal, primitive, scalar,
};
use serde_json::Value as Json;

mod depth;
pub use depth::{
    MAX_NESTING_DEPTH, Nested, TooDeep, check_binding_depth, check_literal_depth, check_type_depth,
};

/// flytekit tags a msgpack-encoded `Binary` (dataclasses, dicts, pydantic models) with this.
const MESSAGEPACK_TAG: &str = "msgpack";

/// Whether a value of type `upstream` may be bound to an input of type `downstream`.
pub fn is_castable(upstream: &LiteralType, downstream: &LiteralType) -> bool {
    // A single-variant union upstream is as good as its variant.
    if let Some(Type::UnionType(u)) = &upstream.r#type
        && let [only] = u.variants.as_slice()
        && casts_from(downstream, only)
    {
        return true;
    }
    casts_from(downstream, upstream)
}

/// Dispatches on the downstream type, like upstream's `getTypeChecker`.
fn casts_from(downstream: &LiteralType, upstream: &LiteralType) -> bool {
    match &downstream.r#type {
        Some(Type::CollectionType(inner)) => match &upstream.r#type {
            // An empty collection (element type none) matches any collection.
            Some(Type::CollectionType(up)) => is_none(up) || casts_from(inner, up),
            _ => false,
        },
        Some(Type::MapValueType(inner)) => match &upstream.r#type {
            Some(Type::MapValueType(up)) => is_none(up) || casts_from(inner, up),
            _ => false,
        },
        Some(Type::Blob(down)) => match &upstream.r#type {
            // A blob without a format is generic and matches any blob.
            Some(Type::Blob(up)) => {
                up.format.is_empty() || down.format.is_empty() || up.format == down.format
            }
            _ => false,
        },
        Some(Type::Schema(down)) => schema_casts_from(down, upstream),
        Some(Type::StructuredDatasetType(down)) => structured_dataset_casts_from(down, upstream),
        Some(Type::UnionType(down)) => union_casts_from(down, upstream),
        _ if is_none(downstream) => is_none(upstream),
        _ => trivial_casts_from(downstream, upstream),
    }
}

fn union_casts_from(down: &UnionType, upstream: &LiteralType) -> bool {
    if let Some(Type::UnionType(up)) = &upstream.r#type {
        // Every upstream variant needs a home downstream.
        return up
            .variants
            .iter()
            .all(|u| down.variants.iter().any(|d| is_castable(u, d)));
    }
    // A plain value must select exactly one variant; ambiguity is refused.
    down.variants
        .iter()
        .filter(|d| is_castable(upstream, d))
        .count()
        == 1
}

fn trivial_casts_from(downstream: &LiteralType, upstream: &LiteralType) -> bool {
    // Enums are constrained strings: each converts to the other.
    if matches!(upstream.r#type, Some(Type::EnumType(_)))
        && simple(downstream) == Some(SimpleType::String)
    {
        return true;
    }
    if matches!(downstream.r#type, Some(Type::EnumType(_)))
        && simple(upstream) == Some(SimpleType::String)
    {
        return true;
    }
    let up_tag = tag(upstream);
    if !up_tag.is_empty() && up_tag != tag(downstream) {
        return false;
    }
    if simple(upstream) == Some(SimpleType::Struct)
        && simple(downstream) == Some(SimpleType::Struct)
    {
        return struct_casts_from(downstream, upstream);
    }
    // Metadata, annotations and structure do not take part in the comparison.
    without_decorations(upstream) == without_decorations(downstream)
}

/// Generic structs: the dataclass JSON schema lives in `metadata`. Without a schema on
/// either side (older flytekit, reference tasks) anything goes.
fn struct_casts_from(downstream: &LiteralType, upstream: &LiteralType) -> bool {
    let (Some(up), Some(down)) = (&upstream.metadata, &downstream.metadata) else {
        return true;
    };
    let (Ok(up), Ok(down)) = (serde_json::to_value(up), serde_json::to_value(down)) else {
        return false;
    };
    up == down || json_schema_is_subtype(&up, &down)
}

/// A structural approximation of upstream's JSON-schema comparison: the upstream schema
/// may carry more properties than the downstream one, but every downstream property must
/// exist upstream with a compatible schema, and the JSON types must agree.
fn json_schema_is_subtype(up: &Json, down: &Json) -> bool {
    if up == down {
        return true;
    }
    let (Some(up), Some(down)) = (up.as_object(), down.as_object()) else {
        return false;
    };
    if up.get("type") != down.get("type") {
        return false;
    }
    if let Some(down_items) = down.get("items") {
        let Some(up_items) = up.get("items") else {
            return false;
        };
        if !json_schema_is_subtype(up_items, down_items) {
            return false;
        }
    }
    let empty = serde_json::Map::new();
    let props = |o: &serde_json::Map<String, Json>| {
        o.get("properties")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_else(|| empty.clone())
    };
    let (up_props, down_props) = (props(up), props(down));
    down_props.iter().all(|(name, down_schema)| {
        up_props
            .get(name)
            .is_some_and(|up_schema| json_schema_is_subtype(up_schema, down_schema))
    })
}

fn schema_casts_from(down: &SchemaType, upstream: &LiteralType) -> bool {
    match &upstream.r#type {
        Some(Type::Schema(up)) => schema_from_schema(up, down),
        Some(Type::StructuredDatasetType(up)) => {
            // A FlyteSchema can only be serialized to parquet.
            (up.format.is_empty() || up.format.eq_ignore_ascii_case("parquet"))
                && schema_from_structured_dataset(up, down)
        }
        _ => false,
    }
}

fn structured_dataset_casts_from(down: &StructuredDatasetType, upstream: &LiteralType) -> bool {
    // Structured datasets are nullable.
    if is_none(upstream) {
        return true;
    }
    match &upstream.r#type {
        Some(Type::Schema(up)) => {
            (down.format.is_empty() || down.format.eq_ignore_ascii_case("parquet"))
                && structured_dataset_from_schema(up, down)
        }
        Some(Type::StructuredDatasetType(up)) => {
            structured_dataset_from_structured_dataset(up, down)
        }
        _ => false,
    }
}

/// Downstream columns must be a subset of the upstream ones; no columns means generic.
fn schema_from_schema(up: &SchemaType, down: &SchemaType) -> bool {
    if up.columns.is_empty() || down.columns.is_empty() {
        return true;
    }
    down.columns.iter().all(|d| {
        up.columns
            .iter()
            .find(|u| u.name == d.name)
            .is_some_and(|u| u.r#type == d.r#type)
    })
}

fn structured_dataset_from_structured_dataset(
    up: &StructuredDatasetType,
    down: &StructuredDatasetType,
) -> bool {
    // An empty format on either side skips the format check (flyte#2864).
    if !up.format.is_empty()
        && !down.format.is_empty()
        && !up.format.eq_ignore_ascii_case(&down.format)
    {
        return false;
    }
    if up.columns.is_empty() || down.columns.is_empty() {
        return true;
    }
    down.columns.iter().all(|d| {
        let up_col = up.columns.iter().find(|u| u.name == d.name);
        match (
            up_col.and_then(|u| u.literal_type.as_ref()),
            d.literal_type.as_ref(),
        ) {
            (Some(ut), Some(dt)) => casts_from(dt, ut),
            (Some(_), None) | (None, None) => up_col.is_some(),
            (None, Some(_)) => false,
        }
    })
}

fn structured_dataset_from_schema(up: &SchemaType, down: &StructuredDatasetType) -> bool {
    if up.columns.is_empty() || down.columns.is_empty() {
        return true;
    }
    down.columns.iter().all(|d| {
        let down_simple = d.literal_type.as_ref().and_then(simple);
        up.columns
            .iter()
            .find(|u| u.name == d.name)
            .is_some_and(|u| schema_column_matches(u.r#type, down_simple))
    })
}

fn schema_from_structured_dataset(up: &StructuredDatasetType, down: &SchemaType) -> bool {
    if up.columns.is_empty() || down.columns.is_empty() {
        return true;
    }
    down.columns.iter().all(|d| {
        up.columns
            .iter()
            .find(|u| u.name == d.name)
            .is_some_and(|u| {
                schema_column_matches(d.r#type, u.literal_type.as_ref().and_then(simple))
            })
    })
}

fn schema_column_matches(column: i32, simple_type: Option<SimpleType>) -> bool {
    let expected = match SchemaColumnType::try_from(column) {
        Ok(SchemaColumnType::Integer) => SimpleType::Integer,
        Ok(SchemaColumnType::Float) => SimpleType::Float,
        Ok(SchemaColumnType::String) => SimpleType::String,
        Ok(SchemaColumnType::Boolean) => SimpleType::Boolean,
        Ok(SchemaColumnType::Datetime) => SimpleType::Datetime,
        Ok(SchemaColumnType::Duration) => SimpleType::Duration,
        Err(_) => return false,
    };
    simple_type == Some(expected)
}

fn simple(t: &LiteralType) -> Option<SimpleType> {
    match t.r#type {
        Some(Type::Simple(s)) => SimpleType::try_from(s).ok(),
        _ => None,
    }
}

/// `NONE` is the type of `None` values (and of the elements of empty collections).
pub fn is_none(t: &LiteralType) -> bool {
    simple(t) == Some(SimpleType::None)
}

/// Whether a type is `Optional[...]`: a union with a `none` variant. Such inputs need no binding.
pub fn is_optional(t: &LiteralType) -> bool {
    matches!(&t.r#type, Some(Type::UnionType(u)) if u.variants.iter().any(is_none))
}

fn tag(t: &LiteralType) -> &str {
    t.structure.as_ref().map_or("", |s| s.tag.as_str())
}

fn without_decorations(t: &LiteralType) -> LiteralType {
    LiteralType {
        metadata: None,
        annotation: None,
        structure: None,
        r#type: t.r#type.clone(),
    }
}

/// Type equality ignoring metadata, annotations and structure (used where upstream compares
/// types as strings, e.g. branch operands and branch outputs).
pub fn same_type(a: &LiteralType, b: &LiteralType) -> bool {
    without_decorations(a) == without_decorations(b)
}

/// The type of a literal; `None` when it cannot be known (an empty scalar, a blob without
/// metadata).
pub fn try_literal_type_of(lit: &Literal) -> Option<LiteralType> {
    match lit.value.as_ref()? {
        literal::Value::Scalar(s) => scalar_type(s.value.as_ref()?),
        literal::Value::Collection(c) => Some(wrap(Type::CollectionType(Box::new(
            type_of_elements(c.literals.iter()),
        )))),
        literal::Value::Map(m) => Some(wrap(Type::MapValueType(Box::new(type_of_elements(
            m.literals.values(),
        ))))),
        literal::Value::OffloadedMetadata(o) => o.inferred_type.clone(),
    }
}

/// The type of a literal (flyteadmin's `validators.LiteralTypeForLiteral`). An unknown type
/// is the empty `LiteralType`, which is castable to nothing.
pub fn literal_type_of(lit: &Literal) -> LiteralType {
    try_literal_type_of(lit).unwrap_or_default()
}

/// Whether a literal is an instance of a type: its type casts to `t`, and a string bound to
/// an enum is one of the enum's values.
pub fn literal_is_instance(lit: &Literal, t: &LiteralType) -> bool {
    let Some(lit_type) = try_literal_type_of(lit) else {
        return false;
    };
    if !is_castable(&lit_type, t) {
        return false;
    }
    match (&t.r#type, string_value(lit)) {
        (Some(Type::EnumType(e)), Some(s)) => e.values.iter().any(|v| v == s),
        _ => true,
    }
}

fn string_value(lit: &Literal) -> Option<&str> {
    match lit.value.as_ref()? {
        literal::Value::Scalar(s) => match s.value.as_ref()? {
            scalar::Value::Primitive(p) => match p.value.as_ref()? {
                primitive::Value::StringValue(s) => Some(s),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn wrap(t: Type) -> LiteralType {
    LiteralType {
        r#type: Some(t),
        ..Default::default()
    }
}

fn simple_type(s: SimpleType) -> LiteralType {
    wrap(Type::Simple(s as i32))
}

fn scalar_type(s: &scalar::Value) -> Option<LiteralType> {
    Some(match s {
        scalar::Value::Primitive(p) => simple_type(match p.value.as_ref() {
            Some(primitive::Value::Integer(_)) => SimpleType::Integer,
            Some(primitive::Value::FloatValue(_)) => SimpleType::Float,
            Some(primitive::Value::StringValue(_)) => SimpleType::String,
            Some(primitive::Value::Boolean(_)) => SimpleType::Boolean,
            Some(primitive::Value::Datetime(_)) => SimpleType::Datetime,
            Some(primitive::Value::Duration(_)) => SimpleType::Duration,
            None => SimpleType::None,
        }),
        scalar::Value::Blob(b) => wrap(Type::Blob(
            b.metadata.as_ref()?.r#type.clone().unwrap_or_default(),
        )),
        scalar::Value::Binary(b) if b.tag == MESSAGEPACK_TAG => simple_type(SimpleType::Struct),
        scalar::Value::Binary(_) => simple_type(SimpleType::Binary),
        scalar::Value::Schema(s) => wrap(Type::Schema(s.r#type.clone().unwrap_or_default())),
        scalar::Value::StructuredDataset(sd) => wrap(Type::StructuredDatasetType(
            sd.metadata
                .as_ref()
                .and_then(|m| m.structured_dataset_type.clone())
                .unwrap_or_default(),
        )),
        scalar::Value::NoneType(_) => simple_type(SimpleType::None),
        scalar::Value::Error(_) => simple_type(SimpleType::Error),
        scalar::Value::Generic(_) => simple_type(SimpleType::Struct),
        scalar::Value::Union(u) => wrap(Type::UnionType(UnionType {
            variants: vec![u.r#type.clone().unwrap_or_default()],
        })),
    })
}

/// The element type of a collection or map: the common type, `none` when empty, or a union
/// of the distinct element types (upstream's `literalTypeForLiterals`).
fn type_of_elements<'a>(literals: impl Iterator<Item = &'a Literal>) -> LiteralType {
    let mut distinct: Vec<LiteralType> = Vec::new();
    let mut empty_collection_type = None;
    for lit in literals {
        let t = literal_type_of(lit);
        if matches!(&lit.value, Some(literal::Value::Collection(c)) if c.literals.is_empty()) {
            empty_collection_type = Some(t);
            continue;
        }
        if !distinct.contains(&t) {
            distinct.push(t);
        }
    }
    if distinct.is_empty()
        && let Some(t) = empty_collection_type
    {
        distinct.push(t);
    }
    match distinct.len() {
        0 => simple_type(SimpleType::None),
        1 => distinct.remove(0),
        _ => {
            // In a canonical order, as upstream sorts by the types' text: a type's JSON has its
            // maps' keys sorted (its `Debug` follows the hash order of annotation structs).
            distinct.sort_by_cached_key(canonical_text);
            multiple_type_union(distinct)
        }
    }
}

fn canonical_text(t: &LiteralType) -> String {
    serde_json::to_value(t)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| format!("{t:?}"))
}

fn multiple_type_union(types: Vec<LiteralType>) -> LiteralType {
    let mut nested = false;
    let mut variants = Vec::new();
    for t in types {
        match t.r#type {
            Some(Type::CollectionType(inner))
                if matches!(inner.r#type, Some(Type::UnionType(_))) =>
            {
                nested = true;
                if let Some(Type::UnionType(u)) = inner.r#type {
                    variants.extend(u.variants);
                }
            }
            _ => variants.push(t),
        }
    }
    let union = wrap(Type::UnionType(UnionType { variants }));
    if nested {
        wrap(Type::CollectionType(Box::new(union)))
    } else {
        union
    }
}

/// A short, readable rendering of a type for error messages: `list<int>`, `map<str, float>`,
/// `union<int, none>`, `blob(format=csv, single)`.
pub fn display_type(t: &LiteralType) -> String {
    let base = match &t.r#type {
        None => "<unknown type>".to_string(),
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
            Ok(SimpleType::Struct) => "struct".into(),
            Err(_) => format!("simple type {s}"),
        },
        Some(Type::Schema(s)) => format!("schema({} columns)", s.columns.len()),
        Some(Type::CollectionType(inner)) => format!("list<{}>", display_type(inner)),
        Some(Type::MapValueType(inner)) => format!("map<str, {}>", display_type(inner)),
        Some(Type::Blob(b)) => display_blob(b),
        Some(Type::EnumType(e)) => format!("enum{{{}}}", e.values.join(", ")),
        Some(Type::StructuredDatasetType(sd)) => {
            let cols: Vec<&str> = sd.columns.iter().map(|c| c.name.as_str()).collect();
            match (sd.format.is_empty(), cols.is_empty()) {
                (true, true) => "structured_dataset".into(),
                (false, true) => format!("structured_dataset(format={})", sd.format),
                (true, false) => format!("structured_dataset(columns={})", cols.join(",")),
                (false, false) => format!(
                    "structured_dataset(format={}, columns={})",
                    sd.format,
                    cols.join(",")
                ),
            }
        }
        Some(Type::UnionType(u)) => format!(
            "union<{}>",
            u.variants
                .iter()
                .map(display_type)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    match tag(t) {
        "" => base,
        tag => format!("{base} ({tag})"),
    }
}

fn display_blob(b: &BlobType) -> String {
    let dim = if b.dimensionality == 1 {
        "multipart"
    } else {
        "single"
    };
    if b.format.is_empty() {
        format!("blob({dim})")
    } else {
        format!("blob(format={}, {dim})", b.format)
    }
}

#[cfg(test)]
mod tests;
