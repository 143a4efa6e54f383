//! The error every wire → domain conversion returns: which field was bad, and why.

/// A wire message that cannot become a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidMessage {
    /// The message field that was missing or malformed, e.g. `certificate_signing_request`.
    pub field: &'static str,
    /// What was wrong with it.
    pub reason: String,
}

impl InvalidMessage {
    /// An error for `field`, with a reason.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// An error for a required `field` that is absent or empty.
    pub fn missing(field: &'static str) -> Self {
        Self::new(field, "required but missing or empty")
    }
}
