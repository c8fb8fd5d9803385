//! Task attempts as Kubernetes pods (docs/kubernetes.md, docs/adr-009-kubernetes-backend.md).
//!
//! * [`pod::build_pod`]: one attempt and the configuration to the pod flytepropeller would
//!   create for it (a pure function; golden files in `tests/golden/`).
//! * [`phase::classify`]: a pod's status to the attempt's progress, as propeller's
//!   `DemystifyPending` / `DemystifySuccess` / `DemystifyFailure` decide it.
//! * [`KubeBackend`]: the engine's `TaskBackend` over kube-rs: creates pods, follows them with
//!   one label-selected watch over all namespaces, deletes them on abort, re-attaches to the
//!   pods that exist after a restart.

pub mod backend;
pub mod config;
pub mod logs;
pub mod owner;
pub mod phase;
pub mod pod;

pub use backend::{KubeBackend, KubeError};
pub use config::KubeConfig;
