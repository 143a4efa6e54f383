//! IP networks in CIDR notation, checked by the apiserver with CEL's `isCIDR()`.

use serde::{Deserialize, Serialize};

/// Longest CIDR string (an IPv6 address with a /128 prefix).
pub const CIDR_MAX_LENGTH: u32 = 43;

/// An IPv4 or IPv6 network in CIDR notation: `10.0.0.0/8`, `198.18.0.0/15`, `fd00::/8`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct Cidr(String);

impl Cidr {
    /// A CIDR from its string form, without checking it (the apiserver checks it).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The string form, as written by the user.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

inline_schema!(Cidr, {
    "type": "string",
    "maxLength": CIDR_MAX_LENGTH,
    "x-kubernetes-validations": [{
        "rule": "isCIDR(self)",
        "message": "must be an IP network in CIDR notation, such as 10.0.0.0/8, 198.18.0.0/15 or fd00::/8",
    }],
});
