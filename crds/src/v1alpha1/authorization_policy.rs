//! AuthorizationPolicy: which authenticated clients may reach a Server, a whole namespace, or
//! one route of a Server.

use kube::core::Rule;

use crate::common::target_ref::{AuthenticationRef, PolicyTargetRef};

/// Most authentications one policy may require.
pub const MAX_AUTHENTICATION_REFS: u32 = 8;

policy_status_kind! {
    /// Allows clients that satisfy every listed authentication to connect to the target.
    #[kube(
        group = "policy.trellis.dev",
        kind = "AuthorizationPolicy",
        shortname = "tauthz",
        doc = "An AuthorizationPolicy allows clients to connect to a Server, to every Server in \
               a namespace, or to one HTTPRoute or GRPCRoute of a Server, when they satisfy all \
               of its required authentications.",
        printcolumn(
            name = "Target-Kind",
            type_ = "string",
            json_path = ".spec.targetRef.kind",
            description = "Kind of the target"
        ),
        printcolumn(
            name = "Target",
            type_ = "string",
            json_path = ".spec.targetRef.name",
            description = "Name of the target"
        )
    )]
    accepted_column = "Whether proxies use this policy";
    pub struct AuthorizationPolicySpec {
        /// The Server, the Namespace (this policy's own), or the HTTPRoute / GRPCRoute of a
        /// Server, that this policy applies to.
        pub target_ref: PolicyTargetRef,
        /// Authentications a client must all satisfy: at most one MeshTLSAuthentication or
        /// ServiceAccount, and at most one NetworkAuthentication. An empty list (`[]`) allows
        /// every client, authenticated or not.
        #[schemars(length(max = MAX_AUTHENTICATION_REFS))]
        #[schemars(extend(
            "x-kubernetes-validations" = [
                Rule::new("self.filter(r, r.kind == 'MeshTLSAuthentication' || r.kind == 'ServiceAccount').size() <= 1")
                    .message("at most one MeshTLSAuthentication or ServiceAccount may be required: list every accepted identity in one MeshTLSAuthentication"),
                Rule::new("self.filter(r, r.kind == 'NetworkAuthentication').size() <= 1")
                    .message("at most one NetworkAuthentication may be required: list every allowed network in one NetworkAuthentication"),
            ],
        ))]
        pub required_authentication_refs: Vec<AuthenticationRef>,
    }
}
