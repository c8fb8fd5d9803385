//! The execution engine (Flyte's propeller, in-process): runs compiled workflows node by
//! node, event-driven, with durable state, and hands task attempts to task backends.

pub mod backend;
