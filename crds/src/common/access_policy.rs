//! Who may connect to a port when no AuthorizationPolicy says otherwise.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The policy applied to inbound connections that no AuthorizationPolicy authorizes.
///
/// Valid values: `deny`, `audit`, `all-authenticated`, `all-unauthenticated`,
/// `cluster-authenticated`, `cluster-unauthenticated`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum AccessPolicy {
    /// Refuse every connection that no AuthorizationPolicy allows.
    Deny,
    /// Allow every connection, but report the ones `deny` would refuse.
    Audit,
    /// Allow meshed (mTLS) clients from any network.
    AllAuthenticated,
    /// Allow every client, meshed or not.
    AllUnauthenticated,
    /// Allow meshed (mTLS) clients from the cluster's networks.
    ClusterAuthenticated,
    /// Allow any client from the cluster's networks.
    ClusterUnauthenticated,
}

impl AccessPolicy {
    /// Every policy, in the order the docs list them.
    pub const ALL: [Self; 6] = [
        Self::Deny,
        Self::Audit,
        Self::AllAuthenticated,
        Self::AllUnauthenticated,
        Self::ClusterAuthenticated,
        Self::ClusterUnauthenticated,
    ];

    /// The policy's name as written in specs and annotations, like `all-unauthenticated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Audit => "audit",
            Self::AllAuthenticated => "all-authenticated",
            Self::AllUnauthenticated => "all-unauthenticated",
            Self::ClusterAuthenticated => "cluster-authenticated",
            Self::ClusterUnauthenticated => "cluster-unauthenticated",
        }
    }

    /// The policy named `name` (see [`Self::as_str`]), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}
