//! MeshTLSAuthentication: a set of mTLS identities, by name or by ServiceAccount/Namespace.

use crate::common::{rules::exactly_one_of, target_ref::IdentityRef};

/// Most identities or identity references one MeshTLSAuthentication may list.
pub const MAX_IDENTITIES: u32 = 64;

/// What each entry of `identities` must match: `*`, a DNS-like identity name whose first
/// label may be `*`, or a SPIFFE ID.
pub const IDENTITY_PATTERN: &str = r"^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|spiffe://[a-z0-9._-]+(/[A-Za-z0-9._~-]+)*)$";

policy_status_kind! {
    /// Clients authenticate by presenting one of these mTLS identities.
    #[kube(
        group = "policy.trellis.dev",
        kind = "MeshTLSAuthentication",
        shortname = "tmtlsauthn",
        doc = "A MeshTLSAuthentication is satisfied by meshed clients whose mTLS identity is one \
               of those listed. AuthorizationPolicies require it through requiredAuthenticationRefs."
    )]
    accepted_column = "Whether proxies use this authentication";
    #[schemars(extend(
        "x-kubernetes-validations" = [exactly_one_of("identities", "identityRefs")],
    ))]
    pub struct MeshTLSAuthenticationSpec {
        /// Accepted identity names, like
        /// `web.shop.serviceaccount.identity.trellis.cluster.local`. `*` accepts every meshed
        /// client; a leading `*.` label accepts any first label (`*.shop.serviceaccount.identity.trellis.cluster.local`
        /// is every ServiceAccount of namespace shop). SPIFFE IDs (`spiffe://cluster.local/ns/shop/sa/web`)
        /// are accepted too. Exactly one of identities and identityRefs must be set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_IDENTITIES))]
        #[schemars(inner(length(min = 1, max = 253), regex(pattern = IDENTITY_PATTERN)))]
        pub identities: Option<Vec<String>>,
        /// Accepted identities as references: a ServiceAccount (its identity) or a Namespace
        /// (every ServiceAccount in it). Exactly one of identities and identityRefs must be set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_IDENTITIES))]
        pub identity_refs: Option<Vec<IdentityRef>>,
    }
}
