//! Property tests of cache keys from task inputs (docs/fuzzing.md): any inputs hash or fail
//! with an error (never a panic), and the hash depends on the values only, not on how they
//! were built or carried: a copy decoded from the wire (fresh hash maps inside generic
//! structs) hashes the same, hashifying twice changes nothing, and ignored inputs are ignored.

#[path = "../../flyte-core/tests/proptest_support/mod.rs"]
mod proptest_support;

use flyte_cache::key::{hash_literal_map, hashify, interface_hash};
use flyteidl::core::{LiteralMap, VariableMap};
use proptest::prelude::*;
use proptest_support::{literal, literal_map, variables};
use prost::Message;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn inputs_hash_the_same_after_the_wire(inputs in literal_map()) {
        let hash = hash_literal_map(&inputs, &[]);
        let decoded = LiteralMap::decode(inputs.encode_to_vec().as_slice()).expect("decodes");
        let again = hash_literal_map(&decoded, &[]);
        match (hash, again) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a.map_err(|e| e.to_string()), b.map_err(|e| e.to_string())),
        }
    }

    #[test]
    fn hashify_is_idempotent(lit in literal()) {
        let once = hashify(&lit);
        let twice = hashify(&once);
        // NaN floats make a literal unequal to itself: compare encodings then.
        #[allow(clippy::eq_op)]
        if once == once {
            prop_assert_eq!(twice, once);
        } else {
            prop_assert_eq!(twice.encoded_len(), once.encoded_len());
        }
    }

    #[test]
    fn ignored_inputs_do_not_count(inputs in literal_map(), extra in literal()) {
        let mut with_extra = inputs.clone();
        with_extra.literals.insert("ignored-input".into(), extra);
        let a = hash_literal_map(&inputs, &["ignored-input".to_string()]).map_err(|e| e.to_string());
        let b = hash_literal_map(&with_extra, &["ignored-input".to_string()]).map_err(|e| e.to_string());
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if a.is_ok() {
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn any_interface_hashes(vars in variables("[a-c]{0,2}")) {
        let vars = VariableMap { variables: vars };
        let _ = interface_hash(&vars);
    }
}
