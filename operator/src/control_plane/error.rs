//! The control plane's error type: why the gRPC servers or the admission server stopped.

use crate::control_plane::{admission::WebhookError, serve::ControlPlaneError};

/// What can stop the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The identity, destination or policy server stopped.
    #[error("control plane: {0}")]
    Grpc(#[from] ControlPlaneError),
    /// The admission webhook server failed.
    #[error("webhooks: {0}")]
    Admission(#[from] WebhookError),
}

impl Error {
    /// A fixed label for metrics (never built from the message).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Grpc(_) => "control_plane",
            Self::Admission(_) => "webhooks",
        }
    }
}
