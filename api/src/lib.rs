//! Trellis's wire protocol and the names every binary must agree on.
//!
//! This crate owns the re-export of the Linkerd proxy API (`linkerd2_proxy_api`), the
//! conversions between wire messages and Trellis's domain types, and [`well_known`]: ports,
//! the proxy uid, annotation keys and the identity name format. It must stay free of `kube`,
//! `k8s-openapi` and every other Trellis crate, because the proxy depends on it.
//!
//! Start reading at [`well_known`], then the domain types in [`identity`] and [`destination`].

pub use linkerd2_proxy_api;

pub mod destination;
pub mod error;
pub mod identity;
pub mod inbound;
pub mod outbound;
pub mod ports;
pub mod route;
pub mod well_known;
