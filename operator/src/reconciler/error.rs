//! The reconciler's error type, with a fixed metric label per variant.

use crate::pki::cert::CertError;

/// What can go wrong while reconciling.
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
    /// The Lease timings cannot keep one writer.
    #[error(
        "lease timings: the renew interval ({interval:?}) must be shorter than the renew deadline ({deadline:?}), and the deadline shorter than the lease duration ({duration:?}); fix --lease-renew-interval, --lease-renew-deadline or --lease-duration"
    )]
    LeaseTimings {
        /// Renew interval.
        interval: std::time::Duration,
        /// Renew deadline.
        deadline: std::time::Duration,
        /// Lease duration.
        duration: std::time::Duration,
    },
    /// This replica lost the Lease; it stops writing and exits so a fresh one can start.
    #[error("lost the lease {0} to another replica")]
    LeaseLost(String),
}

impl Error {
    /// A fixed label for metrics (never built from the message).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::CrdsMissing { .. } => "crds_missing",
            Self::MissingMetadata { .. } => "missing_metadata",
            Self::Encode { .. } => "encode",
            Self::Certificate { .. } => "certificate",
            Self::InvalidIdentityMaterial(_) => "invalid_identity_material",
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Finalizer(_) => "finalizer",
            Self::LeaseTimings { .. } => "lease_timings",
            Self::LeaseLost(_) => "lease_lost",
        }
    }

    /// Wraps a client error with what the operator was doing.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Kube { action, source }
    }
}

impl From<CertError> for Error {
    /// A validity out of range is a spec the user must fix; anything else is a failure.
    fn from(e: CertError) -> Self {
        match e {
            CertError::Generate { what, source } => Self::Certificate { what, source },
            out_of_range @ CertError::OutOfRange(_) => Self::InvalidSpec(out_of_range.to_string()),
        }
    }
}
