//! Literal types: compatibility of an upstream type with a downstream one (Flyte's rules).
