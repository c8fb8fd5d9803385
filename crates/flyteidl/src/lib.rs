//! The flyteidl 1.16 wire contract: prost message types, tonic clients and servers,
//! and proto3-JSON (serde) impls, generated at build time from the registry packages.
#![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/mod.rs"));

pub mod codec;

/// The encoded `FileDescriptorSet` of every compiled file (flyteidl and its imports), used
/// by the REST gateway (google.api.http rules, JSON transcoding) and gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/flyteidl_descriptor.bin"));

pub use self::flyteidl::{admin, cacheservice, core, event, plugins, service};
