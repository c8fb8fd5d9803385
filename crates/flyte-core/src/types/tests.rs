use super::*;
use flyteidl::core::schema_type::SchemaColumn;
use flyteidl::core::structured_dataset_type::DatasetColumn;
use flyteidl::core::{
    Binary, Blob, BlobMetadata, EnumType, LiteralCollection, LiteralMap, Primitive, Scalar,
    TypeStructure, Void,
};

pub(crate) fn simple_t(s: SimpleType) -> LiteralType {
    simple_type(s)
}
fn int() -> LiteralType {
    simple_t(SimpleType::Integer)
}
fn float() -> LiteralType {
    simple_t(SimpleType::Float)
}
fn string() -> LiteralType {
    simple_t(SimpleType::String)
}
fn none() -> LiteralType {
    simple_t(SimpleType::None)
}
fn list(t: LiteralType) -> LiteralType {
    wrap(Type::CollectionType(Box::new(t)))
}
fn map(t: LiteralType) -> LiteralType {
    wrap(Type::MapValueType(Box::new(t)))
}
fn union(vs: Vec<LiteralType>) -> LiteralType {
    wrap(Type::UnionType(UnionType { variants: vs }))
}
fn blob(format: &str) -> LiteralType {
    wrap(Type::Blob(BlobType {
        format: format.into(),
        dimensionality: 0,
    }))
}
fn sd(format: &str, cols: &[(&str, LiteralType)]) -> LiteralType {
    wrap(Type::StructuredDatasetType(StructuredDatasetType {
        format: format.into(),
        columns: cols
            .iter()
            .map(|(n, t)| DatasetColumn {
                name: n.to_string(),
                literal_type: Some(t.clone()),
            })
            .collect(),
        ..Default::default()
    }))
}
fn schema(cols: &[(&str, SchemaColumnType)]) -> LiteralType {
    wrap(Type::Schema(SchemaType {
        columns: cols
            .iter()
            .map(|(n, t)| SchemaColumn {
                name: n.to_string(),
                r#type: *t as i32,
            })
            .collect(),
    }))
}
fn enum_t(vals: &[&str]) -> LiteralType {
    wrap(Type::EnumType(EnumType {
        values: vals.iter().map(|s| s.to_string()).collect(),
    }))
}
fn struct_with(schema: Option<serde_json::Value>) -> LiteralType {
    let mut t = simple_t(SimpleType::Struct);
    t.metadata = schema.map(|v| serde_json::from_value(v).expect("struct"));
    t
}

#[test]
fn simple_types_must_match() {
    assert!(is_castable(&int(), &int()));
    assert!(!is_castable(&int(), &float()));
    assert!(!is_castable(&string(), &int()));
}

#[test]
fn metadata_and_annotations_are_ignored_for_simple_types() {
    let mut a = int();
    a.annotation = Some(flyteidl::core::TypeAnnotation::default());
    assert!(is_castable(&a, &int()));
}

#[test]
fn structure_tags_must_agree_when_upstream_has_one() {
    let mut tagged = int();
    tagged.structure = Some(TypeStructure {
        tag: "A".into(),
        ..Default::default()
    });
    let mut other = int();
    other.structure = Some(TypeStructure {
        tag: "B".into(),
        ..Default::default()
    });
    assert!(!is_castable(&tagged, &other));
    assert!(!is_castable(&tagged, &int()));
    assert!(is_castable(&int(), &tagged));
    assert!(is_castable(&tagged, &tagged.clone()));
}

#[test]
fn none_only_into_none_or_optional() {
    assert!(is_castable(&none(), &none()));
    assert!(!is_castable(&int(), &none()));
    assert!(!is_castable(&none(), &int()));
    assert!(is_castable(&none(), &union(vec![int(), none()])));
}

#[test]
fn value_into_union_needs_exactly_one_variant() {
    assert!(is_castable(&int(), &union(vec![int(), string()])));
    assert!(!is_castable(&float(), &union(vec![int(), string()])));
    // Ambiguous: two generic blob variants both accept a csv blob.
    assert!(!is_castable(
        &blob("csv"),
        &union(vec![blob(""), blob("csv")])
    ));
}

#[test]
fn union_into_union_needs_subset() {
    let small = union(vec![int(), none()]);
    let big = union(vec![int(), string(), none()]);
    assert!(is_castable(&small, &big));
    assert!(!is_castable(&big, &small));
}

#[test]
fn single_variant_union_acts_as_its_variant() {
    assert!(is_castable(&union(vec![int()]), &int()));
    assert!(!is_castable(&union(vec![int(), none()]), &int()));
}

#[test]
fn collections_and_maps() {
    assert!(is_castable(&list(int()), &list(int())));
    assert!(!is_castable(&list(int()), &list(string())));
    assert!(is_castable(&list(none()), &list(string())), "empty list");
    assert!(!is_castable(&int(), &list(int())));
    assert!(is_castable(&list(list(int())), &list(list(int()))));
    assert!(is_castable(&map(int()), &map(int())));
    assert!(is_castable(&map(none()), &map(int())), "empty map");
    assert!(!is_castable(&map(int()), &map(float())));
    assert!(!is_castable(&list(int()), &map(int())));
}

#[test]
fn blobs_match_on_format_with_empty_as_wildcard() {
    assert!(is_castable(&blob("csv"), &blob("csv")));
    assert!(is_castable(&blob(""), &blob("csv")));
    assert!(is_castable(&blob("csv"), &blob("")));
    assert!(!is_castable(&blob("csv"), &blob("parquet")));
    assert!(!is_castable(&string(), &blob("")));
}

#[test]
fn structured_datasets() {
    let cols = [("a", int()), ("b", string())];
    assert!(is_castable(
        &sd("parquet", &cols),
        &sd("parquet", &[("a", int())])
    ));
    assert!(
        is_castable(&sd("", &cols), &sd("csv", &[])),
        "empty format skips check"
    );
    assert!(
        is_castable(&sd("PARQUET", &[]), &sd("parquet", &cols)),
        "no columns is generic"
    );
    assert!(!is_castable(&sd("csv", &cols), &sd("parquet", &cols)));
    assert!(!is_castable(
        &sd("", &[("a", int())]),
        &sd("", &[("c", int())])
    ));
    assert!(!is_castable(
        &sd("", &[("a", int())]),
        &sd("", &[("a", string())])
    ));
    assert!(
        is_castable(&none(), &sd("", &[])),
        "structured datasets are nullable"
    );
}

#[test]
fn schemas_and_their_structured_dataset_interop() {
    use SchemaColumnType as C;
    let s = schema(&[("a", C::Integer), ("b", C::String)]);
    assert!(is_castable(&s, &schema(&[("a", C::Integer)])));
    assert!(!is_castable(&s, &schema(&[("a", C::Float)])));
    assert!(!is_castable(&s, &schema(&[("z", C::Integer)])));
    assert!(is_castable(&s, &sd("parquet", &[("a", int())])));
    assert!(!is_castable(&s, &sd("csv", &[])));
    assert!(is_castable(
        &sd("", &[("a", int())]),
        &schema(&[("a", C::Integer)])
    ));
    assert!(!is_castable(&sd("csv", &[]), &schema(&[])));
}

#[test]
fn enums_and_strings_convert() {
    let e = enum_t(&["A", "B"]);
    assert!(is_castable(&e, &string()));
    assert!(is_castable(&string(), &e));
    assert!(is_castable(&e, &e.clone()));
    assert!(!is_castable(&e, &enum_t(&["A"])));
    assert!(!is_castable(&int(), &e));
}

#[test]
fn generic_structs_with_and_without_schema() {
    let plain = struct_with(None);
    let a = struct_with(Some(
        serde_json::json!({"type":"object","properties":{"x":{"type":"integer"}}}),
    ));
    let ab = struct_with(Some(
        serde_json::json!({"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"string"}}}),
    ));
    let other = struct_with(Some(
        serde_json::json!({"type":"object","properties":{"x":{"type":"string"}}}),
    ));
    assert!(is_castable(&plain, &a), "no schema on one side is accepted");
    assert!(is_castable(&a, &plain));
    assert!(is_castable(&a, &a.clone()));
    assert!(is_castable(&ab, &a), "more fields upstream is fine");
    assert!(!is_castable(&a, &ab), "missing field downstream needs");
    assert!(!is_castable(&a, &other));
    assert!(!is_castable(&plain, &int()));
}

fn lit_scalar(v: scalar::Value) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar { value: Some(v) }))),
        ..Default::default()
    }
}
fn lit_int(i: i64) -> Literal {
    lit_scalar(scalar::Value::Primitive(Primitive {
        value: Some(primitive::Value::Integer(i)),
    }))
}
fn lit_str(s: &str) -> Literal {
    lit_scalar(scalar::Value::Primitive(Primitive {
        value: Some(primitive::Value::StringValue(s.into())),
    }))
}
fn lit_list(items: Vec<Literal>) -> Literal {
    Literal {
        value: Some(literal::Value::Collection(LiteralCollection {
            literals: items,
        })),
        ..Default::default()
    }
}

#[test]
fn literal_types() {
    assert_eq!(literal_type_of(&lit_int(1)), int());
    assert_eq!(literal_type_of(&lit_str("a")), string());
    assert_eq!(
        literal_type_of(&lit_list(vec![lit_int(1), lit_int(2)])),
        list(int())
    );
    assert_eq!(literal_type_of(&lit_list(vec![])), list(none()));
    let mixed = literal_type_of(&lit_list(vec![lit_int(1), lit_str("a")]));
    assert!(
        matches!(&mixed.r#type, Some(Type::CollectionType(inner)) if matches!(inner.r#type, Some(Type::UnionType(_))))
    );
    let m = Literal {
        value: Some(literal::Value::Map(LiteralMap {
            literals: [("k".to_string(), lit_int(1))].into(),
        })),
        ..Default::default()
    };
    assert_eq!(literal_type_of(&m), map(int()));
    assert_eq!(
        literal_type_of(&lit_scalar(scalar::Value::NoneType(Void {}))),
        none()
    );
    let msgpack = lit_scalar(scalar::Value::Binary(Binary {
        value: vec![],
        tag: "msgpack".into(),
    }));
    assert_eq!(literal_type_of(&msgpack), simple_t(SimpleType::Struct));
    let b = lit_scalar(scalar::Value::Blob(Blob {
        metadata: Some(BlobMetadata {
            r#type: Some(BlobType {
                format: "csv".into(),
                dimensionality: 0,
            }),
        }),
        uri: "s3://x".into(),
    }));
    assert_eq!(literal_type_of(&b), blob("csv"));
    assert_eq!(literal_type_of(&Literal::default()), LiteralType::default());
}

#[test]
fn instances() {
    assert!(literal_is_instance(&lit_int(1), &int()));
    assert!(!literal_is_instance(&lit_int(1), &string()));
    assert!(literal_is_instance(
        &lit_int(1),
        &union(vec![int(), none()])
    ));
    assert!(literal_is_instance(
        &lit_scalar(scalar::Value::NoneType(Void {})),
        &union(vec![int(), none()])
    ));
    assert!(literal_is_instance(&lit_list(vec![]), &list(int())));
    assert!(literal_is_instance(
        &lit_list(vec![lit_int(1)]),
        &list(int())
    ));
    assert!(!literal_is_instance(
        &lit_list(vec![lit_str("x")]),
        &list(int())
    ));
    assert!(literal_is_instance(&lit_str("A"), &enum_t(&["A", "B"])));
    assert!(!literal_is_instance(&lit_str("C"), &enum_t(&["A", "B"])));
    assert!(!literal_is_instance(&Literal::default(), &int()));
}

#[test]
fn readable_types() {
    assert_eq!(display_type(&list(int())), "list<int>");
    assert_eq!(display_type(&map(float())), "map<str, float>");
    assert_eq!(
        display_type(&union(vec![int(), none()])),
        "union<int, none>"
    );
    assert_eq!(display_type(&blob("csv")), "blob(format=csv, single)");
    assert_eq!(display_type(&enum_t(&["A", "B"])), "enum{A, B}");
}

/// A list of two values whose types carry annotations of several keys: the union of their
/// types comes out in one order whatever the hash order of the annotations' structs (a
/// property test found it varying between a literal and its decoded copy).
#[test]
fn the_union_of_annotated_element_types_has_one_order() {
    use prost::Message;
    let annotated = |keys: &[&str], t: LiteralType| LiteralType {
        annotation: Some(flyteidl::core::TypeAnnotation {
            annotations: Some(pbjson_types::Struct {
                fields: keys
                    .iter()
                    .map(|k| {
                        (
                            k.to_string(),
                            pbjson_types::Value {
                                kind: Some(pbjson_types::value::Kind::StringValue(k.to_string())),
                            },
                        )
                    })
                    .collect(),
            }),
        }),
        ..t
    };
    let union_value = |t: LiteralType| Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Union(Box::new(flyteidl::core::Union {
                value: Some(Box::new(Literal::default())),
                r#type: Some(t),
            }))),
        }))),
        ..Default::default()
    };
    let keys = ["a", "items", "b", "properties", "c", "d", "e", "f"];
    let lit = Literal {
        value: Some(literal::Value::Collection(LiteralCollection {
            literals: vec![
                union_value(annotated(&keys, int())),
                union_value(annotated(&keys[1..], string())),
            ],
        })),
        ..Default::default()
    };
    let expected = literal_type_of(&lit);
    for _ in 0..20 {
        let copy = Literal::decode(lit.encode_to_vec().as_slice()).unwrap();
        assert_eq!(literal_type_of(&copy), expected);
    }
}
