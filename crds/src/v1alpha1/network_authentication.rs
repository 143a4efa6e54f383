//! NetworkAuthentication: a set of client networks, each a CIDR with optional exceptions.

use kube::core::Rule;
use serde::{Deserialize, Serialize};

use crate::common::cidr::Cidr;

/// Most networks one NetworkAuthentication may list.
pub const MAX_NETWORKS: u32 = 64;
/// Most exceptions one network may list.
pub const MAX_EXCEPTIONS: u32 = 32;

policy_status_kind! {
    /// Clients authenticate by connecting from one of these networks.
    #[kube(
        group = "policy.trellis.dev",
        kind = "NetworkAuthentication",
        shortname = "tnetauthn",
        doc = "A NetworkAuthentication is satisfied by clients whose source address lies in one \
               of the listed networks. AuthorizationPolicies require it through \
               requiredAuthenticationRefs."
    )]
    accepted_column = "Whether proxies use this authentication";
    pub struct NetworkAuthenticationSpec {
        /// Client networks; a client matches when its address is in any of them (and not in
        /// that network's exceptions). At least one, at most 64.
        #[schemars(length(min = 1, max = MAX_NETWORKS))]
        pub networks: Vec<Network>,
    }
}

const EXCEPT_INSIDE_CIDR_RULE: &str = "!has(self.except) || !isCIDR(self.cidr) || \
     self.except.all(e, !isCIDR(e) || cidr(self.cidr).containsCIDR(e))";

/// An IP network, minus optional sub-networks.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new(EXCEPT_INSIDE_CIDR_RULE)
            .message("every except entry must be a network inside cidr, of the same IP family: remove it or widen cidr")
            .field_path(".except"),
    ],
))]
pub struct Network {
    /// The network, in CIDR notation: `10.0.0.0/8`, `198.18.0.0/15`, `fd00::/8`. Use
    /// `0.0.0.0/0` and `::/0` for every address.
    pub cidr: Cidr,
    /// Sub-networks of `cidr` that do not match. Optional; at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EXCEPTIONS))]
    pub except: Vec<Cidr>,
}
