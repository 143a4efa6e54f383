//! Errors of this crate: bad values in typed fields and CRD manifest rendering.

/// What went wrong reading a CRD value or rendering the CRD manifests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A duration string that does not follow `<number><unit>` terms (units ms, s, m, h).
    #[error("invalid duration {value:?}: write it like 500ms, 30s, 5m or 1h30m")]
    InvalidDuration {
        /// The rejected string.
        value: String,
    },

    /// A duration below zero, like `-5s`.
    #[error("invalid duration {value:?}: durations cannot be negative; write it like 30s")]
    NegativeDuration {
        /// The rejected string.
        value: String,
    },

    /// A regular expression that does not compile (with the `regex` crate's syntax, the one
    /// proxies match with).
    #[error("invalid regular expression {value:?}: {source}")]
    InvalidRegex {
        /// The rejected expression.
        value: String,
        /// Why it does not compile.
        #[source]
        source: regex::Error,
    },

    /// A port range that is not `<port>` or `<first>-<last>` within 1-65535.
    #[error(
        "invalid port range {value:?}: write a port (3306) or a range (4000-4100) within 1-65535"
    )]
    InvalidPortRange {
        /// The rejected value.
        value: String,
    },

    /// A generated CRD has no name (a bug in the type's `#[kube]` attributes).
    #[error("generated CustomResourceDefinition for kind {kind} has no metadata.name")]
    UnnamedCrd {
        /// The kind of the CRD.
        kind: String,
    },

    /// A CRD could not be written as YAML.
    #[error("serialize CustomResourceDefinition {name} to YAML")]
    Serialize {
        /// The CRD's name.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_yaml::Error,
    },
}
