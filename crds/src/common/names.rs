//! Patterns and limits for Kubernetes object names used in references.

/// An RFC 1123 label: what namespaces and port names must be (at most 63 characters).
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest RFC 1123 label.
pub const DNS_LABEL_MAX_LENGTH: u32 = 63;

/// An RFC 1123 subdomain: what most object names must be (at most 253 characters).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Longest RFC 1123 subdomain.
pub const DNS_SUBDOMAIN_MAX_LENGTH: u32 = 253;
