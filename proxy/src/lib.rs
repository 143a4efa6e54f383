//! The Trellis sidecar proxy and its iptables initialiser.
//!
//! This crate owns the data plane: transparent inbound and outbound listeners, protocol
//! detection, mTLS, discovery, load balancing, policy and metrics. It must never depend on
//! `kube`, `k8s-openapi`, `trellis-crds`, `trellis-operator` or `trellis-webhooks`; a test in
//! `trellis-tests` enforces that. Shared names come from `trellis_api::well_known`.
//!
//! Start reading at [`app::spawn`], which binds the listeners and wires the stages together;
//! configuration lives in [`app::config`].

pub use trellis_api::well_known;

pub mod admin;
pub mod app;
pub mod drain;
pub mod error;
pub mod http;
pub mod identity;
pub mod inbound;
pub mod init;
pub mod metrics;
pub mod outbound;
pub mod retry;
pub mod route;
pub mod transport;

pub mod tls;

#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
