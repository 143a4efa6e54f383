//! References from one object to another: policy targets, authentications and identities.

use kube::core::Rule;
use serde::{Deserialize, Serialize};

use super::{
    names::{
        DNS_LABEL_MAX_LENGTH, DNS_LABEL_PATTERN, DNS_SUBDOMAIN_MAX_LENGTH, DNS_SUBDOMAIN_PATTERN,
    },
    rules::group_matches_kind,
};
use crate::POLICY_GROUP;

/// The kinds of object an AuthorizationPolicy may target: `Server`, `Namespace`, `HTTPRoute`
/// or `GRPCRoute`.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyTargetKind {
    /// A Server (policy.trellis.dev) in the policy's namespace: the policy applies to its port.
    Server,
    /// The policy's own namespace: the policy applies to every Server in it.
    Namespace,
    /// An HTTPRoute (gateway.networking.k8s.io) in the policy's namespace whose parent is a
    /// Server: the policy applies to that route's requests only.
    HTTPRoute,
    /// A GRPCRoute (gateway.networking.k8s.io) in the policy's namespace whose parent is a
    /// Server: the policy applies to that route's requests only.
    GRPCRoute,
}

impl PolicyTargetKind {
    /// Whether the target is a route (the policy authorizes that route's requests only).
    pub fn is_route(self) -> bool {
        matches!(self, Self::HTTPRoute | Self::GRPCRoute)
    }
}

/// The object a policy applies to, in the policy's namespace.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        group_matches_kind(
            "self.kind == 'Server' ? 'policy.trellis.dev' : \
             (self.kind == 'Namespace' ? '' : 'gateway.networking.k8s.io')",
            "policy.trellis.dev for Server, \"\" (core) for Namespace, \
             gateway.networking.k8s.io for HTTPRoute and GRPCRoute",
        ),
    ],
))]
pub struct PolicyTargetRef {
    /// API group of `kind`. Optional: when omitted it is the kind's own group,
    /// `policy.trellis.dev` for Server, `""` (core) for Namespace and
    /// `gateway.networking.k8s.io` for HTTPRoute and GRPCRoute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub group: Option<String>,
    /// Kind of the target: `Server`, `Namespace`, or `HTTPRoute` / `GRPCRoute` (a route
    /// attached to a Server: the policy then authorizes that route's requests only, besides
    /// what the Server's own policies allow).
    pub kind: PolicyTargetKind,
    /// Name of the target. For kind Namespace it must be the policy's own namespace.
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LENGTH), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

impl PolicyTargetRef {
    /// The target's API group, filling in the kind's own group when `group` was omitted.
    pub fn group(&self) -> &str {
        match (&self.group, self.kind) {
            (Some(group), _) => group,
            (None, PolicyTargetKind::Server) => POLICY_GROUP,
            (None, PolicyTargetKind::Namespace) => "",
            (None, PolicyTargetKind::HTTPRoute | PolicyTargetKind::GRPCRoute) => {
                crate::gateway::GROUP
            }
        }
    }
}

/// The kinds of authentication an AuthorizationPolicy may require:
/// `MeshTLSAuthentication`, `NetworkAuthentication` or `ServiceAccount`.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthenticationKind {
    /// Clients must present one of the mTLS identities a MeshTLSAuthentication lists.
    MeshTLSAuthentication,
    /// Clients must connect from one of the networks a NetworkAuthentication lists.
    NetworkAuthentication,
    /// Clients must present the mTLS identity of this ServiceAccount.
    ServiceAccount,
}

/// An authentication a client must satisfy.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        group_matches_kind(
            "self.kind == 'ServiceAccount' ? '' : 'policy.trellis.dev'",
            "policy.trellis.dev for MeshTLSAuthentication and NetworkAuthentication, \"\" (core) \
             for ServiceAccount",
        ),
    ],
))]
pub struct AuthenticationRef {
    /// API group of `kind`. Optional: when omitted it is the kind's own group,
    /// `policy.trellis.dev` for the authentication kinds and `""` (core) for ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub group: Option<String>,
    /// Kind of the authentication: `MeshTLSAuthentication`, `NetworkAuthentication` or
    /// `ServiceAccount`.
    pub kind: AuthenticationKind,
    /// Name of the referenced object.
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LENGTH), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the referenced object. Optional: defaults to the policy's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = DNS_LABEL_MAX_LENGTH), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
}

impl AuthenticationRef {
    /// The referenced object's API group, filling in the kind's own group when omitted.
    pub fn group(&self) -> &str {
        match (&self.group, self.kind) {
            (Some(group), _) => group,
            (None, AuthenticationKind::ServiceAccount) => "",
            (None, _) => POLICY_GROUP,
        }
    }
}

/// The kinds of identity a MeshTLSAuthentication may reference: `ServiceAccount` or
/// `Namespace` (both core).
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// The identity of one ServiceAccount.
    ServiceAccount,
    /// The identities of every ServiceAccount in a namespace.
    Namespace,
}

/// A reference to the ServiceAccount or Namespace whose mTLS identities are accepted.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new("self.kind == 'ServiceAccount' || !has(self.__namespace__)")
            .message("namespace is only for kind ServiceAccount: to reference a Namespace, put its name in name and remove namespace")
            .field_path(".namespace"),
    ],
))]
pub struct IdentityRef {
    /// Kind of the referenced object: `ServiceAccount` or `Namespace`.
    pub kind: IdentityKind,
    /// Name of the ServiceAccount or Namespace.
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LENGTH), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the ServiceAccount. Optional: defaults to the MeshTLSAuthentication's
    /// namespace. Not allowed for kind Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = DNS_LABEL_MAX_LENGTH), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
}
