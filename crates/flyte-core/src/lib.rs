//! Flyte's domain core, free of I/O: identifiers and their validation, literal and type
//! rules, the list-filter grammar, and the workflow compiler. The admin API validates and
//! converts at its edge with these; the engine (later) runs what the compiler produced.

pub mod compiler;
pub mod filters;
pub mod ids;
pub mod types;
