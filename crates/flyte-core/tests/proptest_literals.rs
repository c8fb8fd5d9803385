//! Property tests of literal decoding (docs/fuzzing.md): bytes off the wire (random, or valid
//! encodings with bytes flipped, cut or inserted) decode to a `Literal`, `LiteralMap`,
//! `LiteralType` or `BindingData` or fail with an error, and whatever decodes goes through
//! the type walks and the nesting bound (`flyte_core::types::check_*_depth`) without
//! panicking or overflowing the stack. Deeply nested values are refused by the bound with its
//! error, and every value the bound refuses still decodes inside a request, so the client
//! gets the bound's message rather than a decoder error.

mod proptest_support;

use flyte_core::types::{
    MAX_NESTING_DEPTH, Nested, check_binding_depth, check_literal_depth, check_type_depth,
    display_type, is_castable, literal_is_instance, literal_type_of, try_literal_type_of,
};
use flyteidl::admin::ExecutionCreateRequest;
use flyteidl::core::literal_type::Type;
use flyteidl::core::{
    BindingData, Literal, LiteralCollection, LiteralMap, LiteralType, TypeStructure, UnionType,
    literal, scalar,
};
use proptest::prelude::*;
use proptest_support::{literal, literal_map, literal_type, scalar_literal, wrap};
use prost::Message;

/// Everything the admin API and the engine do with a literal they were sent.
fn exercise_literal(lit: &Literal) {
    let own = literal_type_of(lit);
    let _ = try_literal_type_of(lit);
    let _ = literal_is_instance(lit, &own);
    let _ = is_castable(&own, &own);
    let _ = display_type(&own);
    let _ = check_literal_depth(lit);
}

fn exercise_type(t: &LiteralType) {
    let _ = is_castable(t, t);
    let _ = display_type(t);
    let _ = check_type_depth(t);
}

/// Bytes of a valid encoding with a few edits: flips, cuts and insertions.
fn mutated(encoded: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = encoded.len().max(1);
    prop::collection::vec((0..len, 0u8..3, any::<u8>()), 1..6).prop_map(move |edits| {
        let mut bytes = encoded.clone();
        for (at, kind, byte) in edits {
            let at = at.min(bytes.len());
            match kind {
                0 if at < bytes.len() => bytes[at] ^= byte.max(1),
                1 => bytes.truncate(at),
                _ => bytes.insert(at, byte),
            }
        }
        bytes
    })
}

/// One level of nesting around a literal.
#[derive(Debug, Clone, Copy)]
enum Wrap {
    List,
    Map,
    /// A union scalar whose value is the inner literal.
    Union,
}

fn wrap_literal(inner: Literal, how: Wrap) -> Literal {
    match how {
        Wrap::List => Literal {
            value: Some(literal::Value::Collection(LiteralCollection {
                literals: vec![inner],
            })),
            ..Default::default()
        },
        Wrap::Map => Literal {
            value: Some(literal::Value::Map(LiteralMap {
                literals: [("k".to_string(), inner)].into(),
            })),
            ..Default::default()
        },
        Wrap::Union => scalar_literal(Some(scalar::Value::Union(Box::new(
            flyteidl::core::Union {
                value: Some(Box::new(inner)),
                r#type: None,
            },
        )))),
    }
}

/// An integer inside `wraps` (innermost first): `wraps.len() + 1` levels by the bound's count.
fn spine(wraps: &[Wrap]) -> Literal {
    let int = scalar_literal(Some(scalar::Value::Primitive(flyteidl::core::Primitive {
        value: Some(flyteidl::core::primitive::Value::Integer(7)),
    })));
    wraps.iter().fold(int, |lit, how| wrap_literal(lit, *how))
}

/// `int` inside `wraps` type constructors: list, map, single-variant union, dataclass field.
fn type_spine(wraps: &[u8]) -> LiteralType {
    wraps
        .iter()
        .fold(wrap(Type::Simple(1)), |t, how| match how % 4 {
            0 => wrap(Type::CollectionType(Box::new(t))),
            1 => wrap(Type::MapValueType(Box::new(t))),
            2 => wrap(Type::UnionType(UnionType { variants: vec![t] })),
            _ => LiteralType {
                r#type: Some(Type::Simple(9)),
                structure: Some(TypeStructure {
                    tag: String::new(),
                    dataclass_type: [("f".to_string(), t)].into(),
                }),
                ..Default::default()
            },
        })
}

fn wraps(max: usize) -> impl Strategy<Value = Vec<Wrap>> {
    prop::collection::vec(
        prop::sample::select(&[Wrap::List, Wrap::Map, Wrap::Union][..]),
        0..max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_decode_or_fail(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(lit) = Literal::decode(bytes.as_slice()) {
            exercise_literal(&lit);
        }
        if let Ok(map) = LiteralMap::decode(bytes.as_slice()) {
            map.literals.values().for_each(exercise_literal);
        }
        if let Ok(t) = LiteralType::decode(bytes.as_slice()) {
            exercise_type(&t);
        }
        if let Ok(b) = BindingData::decode(bytes.as_slice()) {
            let _ = check_binding_depth(&b);
        }
    }

    #[test]
    fn edited_encodings_decode_or_fail(bytes in literal_map().prop_flat_map(|m| mutated(m.encode_to_vec()))) {
        if let Ok(map) = LiteralMap::decode(bytes.as_slice()) {
            map.literals.values().for_each(exercise_literal);
        }
        if let Ok(lit) = Literal::decode(bytes.as_slice()) {
            exercise_literal(&lit);
        }
    }

    #[test]
    fn edited_type_encodings_decode_or_fail(bytes in literal_type().prop_flat_map(|t| mutated(t.encode_to_vec()))) {
        if let Ok(t) = LiteralType::decode(bytes.as_slice()) {
            exercise_type(&t);
        }
    }

    #[test]
    fn literals_round_trip_through_the_wire(lit in literal()) {
        let decoded = Literal::decode(lit.encode_to_vec().as_slice());
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
        let decoded = decoded.unwrap();
        // NaN floats make a literal unequal to itself; compare what can be compared.
        #[allow(clippy::eq_op)]
        if lit == lit {
            prop_assert_eq!(&decoded, &lit);
        }
        prop_assert_eq!(literal_type_of(&decoded), literal_type_of(&lit));
        exercise_literal(&decoded);
    }

    /// The bound counts levels as documented: the integer is one, each list, map or union
    /// around it one more.
    #[test]
    fn the_bound_refuses_exactly_the_literals_past_it(w in wraps(2 * MAX_NESTING_DEPTH)) {
        let lit = spine(&w);
        let levels = w.len() + 1;
        match check_literal_depth(&lit) {
            Ok(()) => prop_assert!(levels <= MAX_NESTING_DEPTH, "{levels} levels accepted"),
            Err(e) => {
                prop_assert!(levels > MAX_NESTING_DEPTH, "{levels} levels refused: {e}");
                prop_assert_eq!(e.what, Nested::Literal);
            }
        }
        // Whatever the bound says, the walks cope with anything prost decodes (its recursion
        // limit keeps decoded values shallow).
        if let Ok(decoded) = Literal::decode(lit.encode_to_vec().as_slice()) {
            prop_assert_eq!(&decoded, &lit);
            exercise_literal(&decoded);
        }
    }

    #[test]
    fn the_bound_refuses_exactly_the_types_past_it(w in prop::collection::vec(any::<u8>(), 0..2 * MAX_NESTING_DEPTH)) {
        let t = type_spine(&w);
        let levels = w.len() + 1;
        prop_assert_eq!(check_type_depth(&t).is_ok(), levels <= MAX_NESTING_DEPTH, "{} levels", levels);
        if let Ok(decoded) = LiteralType::decode(t.encode_to_vec().as_slice()) {
            prop_assert_eq!(&decoded, &t);
            exercise_type(&decoded);
        }
    }

    /// A literal one level past the bound still decodes as an execution's input, so the
    /// caller is told about the bound, not about a protobuf decoding failure.
    #[test]
    fn a_literal_just_past_the_bound_reaches_the_check(w in wraps(MAX_NESTING_DEPTH + 1)) {
        let mut w = w;
        while w.len() < MAX_NESTING_DEPTH {
            w.push(Wrap::Map);
        }
        let lit = spine(&w);
        prop_assert!(check_literal_depth(&lit).is_err());
        let request = ExecutionCreateRequest {
            inputs: Some(LiteralMap { literals: [("x".to_string(), lit)].into() }),
            ..Default::default()
        };
        let decoded = ExecutionCreateRequest::decode(request.encode_to_vec().as_slice());
        prop_assert!(decoded.is_ok(), "{:?}", decoded.err());
    }
}
