//! The cache key: upstream's own test vectors (propeller `transformer_test.go`,
//! `datacatalog_test.go`, pluginmachinery `hashing_test.go`) and the rules of issue 5.

use flyte_cache::CacheKey;
use flyte_cache::key::{hash_literal_map, interface_hash};
use flyteidl::core::{
    self, Identifier, Literal, LiteralCollection, LiteralMap, LiteralType, Primitive, Scalar,
    SimpleType, TypedInterface, Variable, VariableMap, literal, literal_type, primitive, scalar,
};
use prost::Message;

fn prim(v: primitive::Value) -> Literal {
    Literal {
        value: Some(literal::Value::Scalar(Box::new(Scalar {
            value: Some(scalar::Value::Primitive(Primitive { value: Some(v) })),
        }))),
        ..Default::default()
    }
}

fn int(i: i64) -> Literal {
    prim(primitive::Value::Integer(i))
}

fn string(s: &str) -> Literal {
    prim(primitive::Value::StringValue(s.into()))
}

fn float(f: f64) -> Literal {
    prim(primitive::Value::FloatValue(f))
}

fn with_hash(mut l: Literal, hash: &str) -> Literal {
    l.hash = hash.into();
    l
}

fn collection(items: Vec<Literal>) -> Literal {
    Literal {
        value: Some(literal::Value::Collection(LiteralCollection {
            literals: items,
        })),
        ..Default::default()
    }
}

fn map(entries: &[(&str, Literal)]) -> LiteralMap {
    LiteralMap {
        literals: entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn simple(t: SimpleType) -> Variable {
    Variable {
        r#type: Some(LiteralType {
            r#type: Some(literal_type::Type::Simple(t as i32)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn vars(names: &[(&str, SimpleType)]) -> VariableMap {
    VariableMap {
        variables: names
            .iter()
            .map(|(n, t)| (n.to_string(), simple(*t)))
            .collect(),
    }
}

fn task_id() -> Identifier {
    Identifier {
        resource_type: core::ResourceType::Task as i32,
        project: "project".into(),
        domain: "domain".into(),
        name: "name".into(),
        version: "1.0.0".into(),
        org: String::new(),
    }
}

fn iface(inputs: &[(&str, SimpleType)], outputs: &[(&str, SimpleType)]) -> TypedInterface {
    TypedInterface {
        inputs: Some(vars(inputs)),
        outputs: Some(vars(outputs)),
    }
}

fn key(version: &str, i: &TypedInterface, inputs: &LiteralMap, ignore: &[&str]) -> CacheKey {
    let ignore: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
    CacheKey::compute(&task_id(), version, Some(i), inputs, &ignore).unwrap()
}

#[test]
fn upstream_dataset_versions() {
    // TestNilParamTask / TestEmptyParamTask: no interface at all, or empty maps.
    let none = CacheKey::compute(&task_id(), "1.0.0", None, &LiteralMap::default(), &[]).unwrap();
    assert_eq!(none.dataset.version, "1.0.0-GKw-c0Pw-GKw-c0Pw");
    assert_eq!(none.dataset.name, "flyte_task-name");
    assert_eq!(
        (none.dataset.project.as_str(), none.dataset.domain.as_str()),
        ("project", "domain")
    );
    let empty = key("1.0.0", &iface(&[], &[]), &LiteralMap::default(), &[]);
    assert_eq!(empty.dataset.version, "1.0.0-GKw-c0Pw-GKw-c0Pw");
    // TestVariableMapOrder: two integer inputs, no outputs.
    let two = iface(
        &[("1", SimpleType::Integer), ("2", SimpleType::Integer)],
        &[],
    );
    assert_eq!(
        key("1.0.0", &two, &LiteralMap::default(), &[])
            .dataset
            .version,
        "1.0.0-UxVtPm0k-GKw-c0Pw"
    );
    // Spaces around the cache version are trimmed; an empty one is refused.
    assert_eq!(
        key(" 1.0.0 ", &two, &LiteralMap::default(), &[])
            .dataset
            .version,
        "1.0.0-UxVtPm0k-GKw-c0Pw"
    );
    assert!(CacheKey::compute(&task_id(), "  ", None, &LiteralMap::default(), &[]).is_err());
}

#[test]
fn upstream_tags() {
    // TestGenerateArtifactTagName(WithIgnore).
    let m = map(&[("1", int(1)), ("2", int(2))]);
    assert_eq!(
        hash_literal_map(&m, &[]).unwrap(),
        "GQid5LjHbakcW68DS3P2jp80QLbiF0olFHF2hTh5bg8"
    );
    let m3 = map(&[("1", int(1)), ("2", int(2)), ("3", int(3))]);
    let k = key("1.0.0", &iface(&[], &[]), &m3, &["3"]);
    assert_eq!(
        k.tag,
        "flyte_cached-GQid5LjHbakcW68DS3P2jp80QLbiF0olFHF2hTh5bg8"
    );
    // datacatalog_test.go: one string input.
    let s = map(&[("out1", string("output1-stringval"))]);
    assert_eq!(
        hash_literal_map(&s, &[]).unwrap(),
        "BE6CZsMk6N3ExR_4X9EuwBgj2Jh2UwasXK3a_pM9xlY"
    );
    // hashing_test.go / datacatalog_test.go: no inputs.
    assert_eq!(
        hash_literal_map(&LiteralMap::default(), &[]).unwrap(),
        "GKw-c0PwFokMUQ6T-TUmEWnZ4_VlQ2Qpgw-vCTT0-OQ"
    );
    assert_eq!(interface_hash(&VariableMap::default()).unwrap(), "GKw-c0Pw");
}

#[test]
fn ignored_inputs_do_not_count() {
    let i = iface(
        &[("a", SimpleType::Integer), ("seed", SimpleType::Integer)],
        &[],
    );
    let k1 = key("v", &i, &map(&[("a", int(1)), ("seed", int(7))]), &["seed"]);
    let k2 = key("v", &i, &map(&[("a", int(1)), ("seed", int(8))]), &["seed"]);
    assert_eq!(k1, k2);
    let k3 = key("v", &i, &map(&[("a", int(2)), ("seed", int(7))]), &["seed"]);
    assert_ne!(k1.tag, k3.tag);
    // Without the ignore list the ignored input counts again.
    let k4 = key("v", &i, &map(&[("a", int(1)), ("seed", int(8))]), &[]);
    assert_ne!(k1.tag, k4.tag);
}

#[test]
fn a_literal_hash_stands_for_its_value() {
    let i = iface(&[("f", SimpleType::Integer)], &[]);
    // Different values (e.g. two upload locations of one file), same content hash: hit.
    let a = key(
        "v",
        &i,
        &map(&[("f", with_hash(string("s3://a/x"), "abc"))]),
        &[],
    );
    let b = key(
        "v",
        &i,
        &map(&[("f", with_hash(string("s3://b/y"), "abc"))]),
        &[],
    );
    assert_eq!(a, b);
    // Same value, other content hash: miss. No hash: the value counts.
    let c = key(
        "v",
        &i,
        &map(&[("f", with_hash(string("s3://a/x"), "def"))]),
        &[],
    );
    assert_ne!(a.tag, c.tag);
    let d = key("v", &i, &map(&[("f", string("s3://a/x"))]), &[]);
    let e = key("v", &i, &map(&[("f", string("s3://b/y"))]), &[]);
    assert_ne!(d.tag, e.tag);
    // Recursively, inside collections and maps.
    let nested = |uri: &str| {
        let inner = map(&[("k", with_hash(string(uri), "h1"))]);
        let m = Literal {
            value: Some(literal::Value::Map(inner)),
            ..Default::default()
        };
        key(
            "v",
            &i,
            &map(&[("f", collection(vec![m, with_hash(string(uri), "h2")]))]),
            &[],
        )
    };
    assert_eq!(nested("s3://a"), nested("s3://b"));
}

#[test]
fn interface_and_version_changes_miss() {
    let inputs = map(&[("a", int(1))]);
    let base = key(
        "v1",
        &iface(&[("a", SimpleType::Integer)], &[("o", SimpleType::String)]),
        &inputs,
        &[],
    );
    let other_out = key(
        "v1",
        &iface(&[("a", SimpleType::Integer)], &[("o", SimpleType::Integer)]),
        &inputs,
        &[],
    );
    let other_in = key(
        "v1",
        &iface(&[("a", SimpleType::Float)], &[("o", SimpleType::String)]),
        &inputs,
        &[],
    );
    let other_version = key(
        "v2",
        &iface(&[("a", SimpleType::Integer)], &[("o", SimpleType::String)]),
        &inputs,
        &[],
    );
    assert_ne!(base.dataset.version, other_out.dataset.version);
    assert_ne!(base.dataset.version, other_in.dataset.version);
    assert_ne!(base.dataset.version, other_version.dataset.version);
    assert!(other_version.dataset.version.starts_with("v2-"));
    // The tag depends on the inputs only.
    assert_eq!(base.tag, other_version.tag);
    // The task version is not part of the key; the name is.
    let mut id = task_id();
    id.version = "other".into();
    let same = CacheKey::compute(
        &id,
        "v1",
        Some(&iface(
            &[("a", SimpleType::Integer)],
            &[("o", SimpleType::String)],
        )),
        &inputs,
        &[],
    )
    .unwrap();
    assert_eq!(same, base);
    id.name = "other".into();
    let other_task = CacheKey::compute(
        &id,
        "v1",
        Some(&iface(
            &[("a", SimpleType::Integer)],
            &[("o", SimpleType::String)],
        )),
        &inputs,
        &[],
    )
    .unwrap();
    assert_ne!(other_task.dataset, base.dataset);
}

#[test]
fn equal_values_hit_however_produced_and_any_change_misses() {
    let i = iface(&[("a", SimpleType::Integer), ("b", SimpleType::Float)], &[]);
    let inline = map(&[
        ("a", int(1)),
        ("b", float(0.5)),
        ("c", collection(vec![string("x"), int(2)])),
    ]);
    // Written to storage and read back (outputs.pb of an upstream node), built in another order.
    let reread = LiteralMap::decode(inline.encode_to_vec().as_slice()).unwrap();
    let reordered = map(&[
        ("c", collection(vec![string("x"), int(2)])),
        ("b", float(0.5)),
        ("a", int(1)),
    ]);
    let k = key("v", &i, &inline, &[]);
    assert_eq!(k, key("v", &i, &reread, &[]));
    assert_eq!(k, key("v", &i, &reordered, &[]));
    // Any change misses: a value, a type, an element's order, a float's last bit, a missing input.
    for changed in [
        map(&[
            ("a", int(2)),
            ("b", float(0.5)),
            ("c", collection(vec![string("x"), int(2)])),
        ]),
        map(&[
            ("a", float(1.0)),
            ("b", float(0.5)),
            ("c", collection(vec![string("x"), int(2)])),
        ]),
        map(&[
            ("a", int(1)),
            ("b", float(0.5)),
            ("c", collection(vec![int(2), string("x")])),
        ]),
        map(&[
            ("a", int(1)),
            ("b", float(0.5 + f64::EPSILON)),
            ("c", collection(vec![string("x"), int(2)])),
        ]),
        map(&[("a", int(1)), ("b", float(0.5))]),
    ] {
        assert_ne!(k.tag, key("v", &i, &changed, &[]).tag, "{changed:?}");
    }
    // Zero values hash (upstream's objecthash never returns on a 0 float).
    let zero = key("v", &i, &map(&[("a", int(0)), ("b", float(0.0))]), &[]);
    assert_ne!(
        zero.tag,
        key("v", &i, &map(&[("a", int(0)), ("b", float(-1.0))]), &[]).tag
    );
}

#[test]
fn service_key_round_trips() {
    let k = key(
        "v1/with/slash",
        &iface(&[], &[]),
        &map(&[("a", int(1))]),
        &[],
    );
    let s = k.service_key();
    assert_eq!(CacheKey::from_service_key(&s), Some(k));
    assert_eq!(CacheKey::from_service_key("free-form key"), None);
    assert_eq!(CacheKey::from_service_key("a/b/c/d/"), None);
}

#[test]
fn for_task_reads_the_template() {
    let template = core::TaskTemplate {
        id: Some(task_id()),
        interface: Some(iface(
            &[("a", SimpleType::Integer), ("s", SimpleType::Integer)],
            &[],
        )),
        metadata: Some(core::TaskMetadata {
            discoverable: true,
            discovery_version: "1".into(),
            cache_ignore_input_vars: vec!["s".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let k1 = CacheKey::for_task(&template, &map(&[("a", int(1)), ("s", int(1))]))
        .unwrap()
        .unwrap();
    let k2 = CacheKey::for_task(&template, &map(&[("a", int(1)), ("s", int(2))]))
        .unwrap()
        .unwrap();
    assert_eq!(k1, k2);
    assert!(k1.dataset.version.starts_with("1-"));
    let mut off = template.clone();
    off.metadata.as_mut().unwrap().discoverable = false;
    assert!(CacheKey::for_task(&off, &LiteralMap::default()).is_none());
}
