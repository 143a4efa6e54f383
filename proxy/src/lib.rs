//! The Trellis sidecar proxy and its iptables initialiser.
//!
//! This crate will own the data plane: transparent inbound and outbound listeners, protocol
//! detection, mTLS, discovery, load balancing, policy and metrics. It must never depend on
//! `kube`, `k8s-openapi`, `trellis-crds`, `trellis-operator` or `trellis-webhooks`; a test in
//! `trellis-tests` enforces that. Shared names come from `trellis_api::well_known`.

pub use trellis_api::well_known;
