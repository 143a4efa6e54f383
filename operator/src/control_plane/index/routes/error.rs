//! Why a route (or one of its backends) cannot be used; each error names the field.

/// A route field or annotation the mesh cannot use: the route is not sent to proxies, and its
/// `Accepted` condition is False with this message.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A duration that does not parse.
    #[error("{field}: {source}")]
    Duration {
        /// The field, like `spec.rules[0].timeouts.request`.
        field: String,
        /// Why it does not parse.
        #[source]
        source: trellis_crds::error::Error,
    },
    /// A regular expression that does not compile.
    #[error("{field}: {source}")]
    Regex {
        /// The field.
        field: String,
        /// Why it does not compile.
        #[source]
        source: trellis_crds::error::Error,
    },
    /// A value outside what the mesh supports.
    #[error("{field}: {value:?} is not supported; use {expected}")]
    Unsupported {
        /// The field.
        field: String,
        /// The value.
        value: String,
        /// What is supported.
        expected: &'static str,
    },
    /// A backend weight below zero.
    #[error("{field}: weight {weight} is negative; use 0 to send a backend no requests")]
    NegativeWeight {
        /// The field.
        field: String,
        /// The weight.
        weight: i32,
    },
    /// An annotation whose value does not parse.
    #[error("{field}: {value:?} is not valid; write {expected}")]
    Annotation {
        /// The annotation, as `metadata.annotations[<key>]`.
        field: String,
        /// The value.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
}

/// A backend that cannot be resolved: it is left out of its rule, and the route's
/// `ResolvedRefs` condition is False with [`Unresolved::reason`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// The backend Service does not exist.
    #[error("{field}: Service {namespace}/{name} not found")]
    NotFound {
        /// The field, like `spec.rules[0].backendRefs[1]`.
        field: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The backend is not a core Service.
    #[error("{field}: {kind} is not a Service; the mesh routes only to Services")]
    InvalidKind {
        /// The field.
        field: String,
        /// The group/kind named.
        kind: String,
    },
    /// The backend is in another namespace (ReferenceGrants are not supported).
    #[error("{field}: Service {namespace}/{name} is in another namespace than the route")]
    NotPermitted {
        /// The field.
        field: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

impl Unresolved {
    /// The `ResolvedRefs` reason.
    pub fn reason(&self) -> &'static str {
        use trellis_crds::gateway::reasons;
        match self {
            Self::NotFound { .. } => reasons::BACKEND_NOT_FOUND,
            Self::InvalidKind { .. } => reasons::INVALID_KIND,
            Self::NotPermitted { .. } => reasons::REF_NOT_PERMITTED,
        }
    }
}
