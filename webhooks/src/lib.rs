//! Trellis admission webhooks, as a library the operator mounts on the webhook port.
//!
//! This crate will own the mutating proxy injector and the validating webhook for the policy
//! kinds. It may depend on `trellis-api` and `trellis-crds`, never on `trellis-operator` or
//! `trellis-proxy`.

pub use trellis_api::well_known::WEBHOOK_PORT;
