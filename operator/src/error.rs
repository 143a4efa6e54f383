//! The process's error type: what stops a role, wrapping each side's own error.

/// What can stop the operator process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting to the Kubernetes API failed.
    #[error(
        "cannot reach the Kubernetes API (check KUBECONFIG or the in-cluster ServiceAccount): {0}"
    )]
    Connect(#[source] kube::Error),
    /// The reconciler (the `operator` role) stopped.
    #[error(transparent)]
    Reconciler(#[from] crate::reconciler::error::Error),
    /// The control plane (the `controller` role) stopped.
    #[error(transparent)]
    ControlPlane(#[from] crate::control_plane::error::Error),
    /// Binding or serving the admin server failed.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    /// Installing the tracing subscriber failed.
    #[error("install tracing: {0}")]
    Telemetry(String),
}

impl Error {
    /// A fixed label for metrics (never built from the message).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Reconciler(e) => e.metric_label(),
            Self::ControlPlane(e) => e.metric_label(),
            Self::Admin(_) => "admin",
            Self::Telemetry(_) => "telemetry",
        }
    }
}
