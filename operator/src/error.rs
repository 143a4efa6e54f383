//! The crate's error type, with a fixed metric label per variant.

/// What can go wrong in the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What the operator was doing, like `apply Deployment trellis-system/trellis-controller`.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Connecting to the Kubernetes API failed.
    #[error(
        "cannot reach the Kubernetes API (check KUBECONFIG or the in-cluster ServiceAccount): {0}"
    )]
    Connect(#[source] kube::Error),
    /// The Trellis CRDs are not installed or not served.
    #[error(
        "the cluster does not serve {kind}: install the CRDs with `kubectl apply --server-side -f config/crds/`"
    )]
    CrdsMissing {
        /// The kind that is not served.
        kind: &'static str,
        /// The discovery error.
        #[source]
        source: kube::Error,
    },
    /// An object lacks metadata the operator needs.
    #[error("{kind} has no {field}")]
    MissingMetadata {
        /// Kind of the object.
        kind: &'static str,
        /// The missing field, like `metadata.uid`.
        field: &'static str,
    },
    /// Encoding a rendered object failed.
    #[error("encode {what}: {source}")]
    Encode {
        /// The object.
        what: String,
        /// The serializer error.
        #[source]
        source: serde_json::Error,
    },
    /// Generating certificates failed.
    #[error("generate {what}: {source}")]
    Certificate {
        /// Which certificate, like `trust anchor`.
        what: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// Identity material the user referenced is unusable; the message says what to fix.
    #[error("{0}")]
    InvalidIdentityMaterial(String),
    /// The spec cannot be rendered; the message names the field.
    #[error("{0}")]
    InvalidSpec(String),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Binding or serving the admin server failed.
    #[error("admin server on {addr}: {source}")]
    Admin {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Installing the tracing subscriber failed.
    #[error("install tracing: {0}")]
    Telemetry(String),
    /// This replica lost the Lease; it stops writing and exits so a fresh one can start.
    #[error("lost the lease {0} to another replica")]
    LeaseLost(String),
    /// The identity, destination or policy server stopped.
    #[error("control plane: {0}")]
    ControlPlane(#[from] crate::index::serve::ControlPlaneError),
    /// The admission webhook server failed.
    #[error("webhooks: {0}")]
    Webhooks(#[from] crate::webhooks::WebhookError),
}

impl Error {
    /// A fixed label for metrics (never built from the message).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Connect(_) => "connect",
            Self::CrdsMissing { .. } => "crds_missing",
            Self::MissingMetadata { .. } => "missing_metadata",
            Self::Encode { .. } => "encode",
            Self::Certificate { .. } => "certificate",
            Self::InvalidIdentityMaterial(_) => "invalid_identity_material",
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Finalizer(_) => "finalizer",
            Self::Admin { .. } => "admin",
            Self::Telemetry(_) => "telemetry",
            Self::LeaseLost(_) => "lease_lost",
            Self::ControlPlane(_) => "control_plane",
            Self::Webhooks(_) => "webhooks",
        }
    }

    /// Wraps a client error with what the operator was doing.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Kube { action, source }
    }
}
