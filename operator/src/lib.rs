//! The Trellis operator and control plane.
//!
//! One binary, several roles: `operator` reconciles `Mesh` objects into the control plane,
//! `controller` serves identity, destination, policy and webhooks, `all-in-one` runs both.
//! It may depend on every Trellis crate except `trellis-proxy`. Start reading at `main.rs`,
//! then [`config`].

pub mod config;
