//! Property tests of type checking (`flyte_core::types`), see docs/fuzzing.md: any pair of
//! literal types and any literal go through every check without panicking, and the rules
//! that must hold do hold (a type casts to itself; a literal is an instance of its own type;
//! types that differ only in decorations compare the same).

mod proptest_support;

use flyte_core::types::{
    display_type, is_castable, is_none, is_optional, literal_is_instance, literal_type_of,
    same_type, try_literal_type_of,
};
use flyteidl::core::LiteralType;
use flyteidl::core::literal_type::Type;
use proptest::prelude::*;
use proptest_support::{literal, literal_type, literal_type_with, wrap};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_two_types_are_checked_without_panicking(a in literal_type(), b in literal_type()) {
        let _ = is_castable(&a, &b);
        let _ = is_castable(&b, &a);
        prop_assert_eq!(same_type(&a, &b), same_type(&b, &a));
        let _ = (is_none(&a), is_optional(&a));
        prop_assert!(!display_type(&a).is_empty());
    }

    #[test]
    fn a_type_casts_to_itself(t in literal_type_with(true)) {
        prop_assert!(is_castable(&t, &t), "{} does not cast to itself: {:?}", display_type(&t), t);
        prop_assert!(same_type(&t, &t));
    }

    #[test]
    fn a_type_casts_to_its_optional_and_list_of_it_to_list_of_optional(t in literal_type_with(true)) {
        // `Optional[T]` is `union<T, none>`; a plain `T` selects the `T` variant. Not for `none`
        // itself (it fits both variants: ambiguous) nor for unions (each of their variants
        // must select exactly one variant, which duplicates inside them prevent).
        let optional = wrap(Type::UnionType(flyteidl::core::UnionType {
            variants: vec![t.clone(), wrap(Type::Simple(0))],
        }));
        if !is_none(&t) && !matches!(t.r#type, Some(Type::UnionType(_))) {
            prop_assert!(is_castable(&t, &optional), "{} -> {}", display_type(&t), display_type(&optional));
        }
        let list = |t: &LiteralType| wrap(Type::CollectionType(Box::new(t.clone())));
        prop_assert_eq!(is_castable(&t, &t), is_castable(&list(&t), &list(&t)));
    }

    #[test]
    fn decorations_do_not_change_same_type(t in literal_type(), u in literal_type()) {
        let bare = |t: &LiteralType| LiteralType { r#type: t.r#type.clone(), ..Default::default() };
        prop_assert_eq!(same_type(&t, &u), same_type(&bare(&t), &bare(&u)));
    }

    #[test]
    fn any_literal_and_type_are_checked_without_panicking(lit in literal(), t in literal_type()) {
        let own = literal_type_of(&lit);
        let _ = literal_is_instance(&lit, &t);
        let _ = is_castable(&own, &t);
        prop_assert!(!display_type(&own).is_empty());
    }

    #[test]
    fn a_literal_is_an_instance_of_its_own_type(lit in literal()) {
        if let Some(own) = try_literal_type_of(&lit) {
            prop_assert!(
                literal_is_instance(&lit, &own),
                "literal {:?} is not an instance of its type {}", lit, display_type(&own)
            );
        }
    }
}
