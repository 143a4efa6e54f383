//! The Trellis demo app: a small server and load generator that run in pods for the mesh demo
//! and the end-to-end tests.
//!
//! [`server::run`] serves HTTP/1.1, cleartext HTTP/2 and gRPC health on one port and a raw TCP
//! echo on another. [`client::run`] sends requests to a target at a fixed rate over one of
//! those protocols and counts every outcome in [`stats::Stats`], which [`stats::serve`] exposes
//! as JSON. Both take already-bound listeners and a cancellation token, so tests start them
//! in-process on `127.0.0.1:0`. `main.rs` only parses flags and wires signals. This crate must
//! never depend on `kube` or any other Trellis crate: it is the workload, not part of the mesh.

pub mod client;
pub mod error;
pub mod server;
pub mod stats;

pub use error::Error;
