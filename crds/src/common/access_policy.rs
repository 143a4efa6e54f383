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
