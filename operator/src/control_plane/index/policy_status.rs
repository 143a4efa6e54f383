//! The `Accepted` condition Trellis wants on Servers and AuthorizationPolicies.
//!
//! - A Server is Accepted unless another Server in its namespace, earlier by name, has the
//!   same port and pod selector: proxies use the earlier one, so this one is False with
//!   `Conflict` naming it.
//! - An AuthorizationPolicy is Accepted when its target and every required authentication
//!   (a Server, HTTPRoute or GRPCRoute in its namespace) and every required authentication
//!   exist (False with `RefNotFound` naming the missing object) and a Namespace target is its
//!   own namespace (False with `Invalid`).

use trellis_crds::{
    common::{
        status::{conditions, reasons},
        target_ref::{AuthenticationKind, PolicyTargetKind},
    },
    v1alpha1::{authorization_policy::AuthorizationPolicy, server::Server},
};

use super::{Index, policy::targets_route, routes::status::WantedCondition};

fn accepted(status: bool, reason: &'static str, message: String) -> WantedCondition {
    WantedCondition {
        type_: conditions::ACCEPTED,
        status,
        reason,
        message,
    }
}

impl Index {
    /// The `Accepted` condition of Server `ns/name`.
    pub fn server_status(&self, ns: &str, name: &str, server: &Server) -> WantedCondition {
        let earlier = self
            .policy
            .servers
            .iter()
            .filter(|((ons, oname), other)| {
                ons == ns
                    && oname.as_str() < name
                    && other.spec.port == server.spec.port
                    && other.spec.pod_selector == server.spec.pod_selector
                    && other.spec.external_workload_selector
                        == server.spec.external_workload_selector
            })
            .map(|((_, oname), _)| oname.as_str())
            .min();
        match earlier {
            Some(other) => accepted(
                false,
                reasons::CONFLICT,
                format!(
                    "Server {ns}/{other} selects the same pods and port and takes precedence \
                     (first by name); change the port or the selector of one of them"
                ),
            ),
            None => accepted(true, reasons::ACCEPTED, String::new()),
        }
    }

    /// The `Accepted` condition of AuthorizationPolicy `ns/name`.
    pub fn authorization_policy_status(
        &self,
        ns: &str,
        policy: &AuthorizationPolicy,
    ) -> WantedCondition {
        let target = &policy.spec.target_ref;
        match target.kind {
            PolicyTargetKind::Server => {
                if !self
                    .policy
                    .servers
                    .contains_key(&(ns.to_string(), target.name.clone()))
                {
                    return accepted(
                        false,
                        reasons::REF_NOT_FOUND,
                        format!("spec.targetRef: Server {ns}/{} not found", target.name),
                    );
                }
            }
            PolicyTargetKind::Namespace if target.name != ns => {
                return accepted(
                    false,
                    reasons::INVALID,
                    format!(
                        "spec.targetRef.name: a Namespace target must be the policy's own \
                         namespace {ns}, not {}",
                        target.name
                    ),
                );
            }
            PolicyTargetKind::Namespace => {}
            PolicyTargetKind::HTTPRoute | PolicyTargetKind::GRPCRoute => {
                let found = self
                    .routes
                    .all()
                    .any(|r| r.namespace() == ns && targets_route(target, r));
                if !found {
                    return accepted(
                        false,
                        reasons::REF_NOT_FOUND,
                        format!(
                            "spec.targetRef: {:?} {ns}/{} not found",
                            target.kind, target.name
                        ),
                    );
                }
            }
        }
        for (i, r) in policy.spec.required_authentication_refs.iter().enumerate() {
            let rns = r.namespace.clone().unwrap_or_else(|| ns.to_string());
            let key = (rns.clone(), r.name.clone());
            let found = match r.kind {
                AuthenticationKind::ServiceAccount => true,
                AuthenticationKind::MeshTLSAuthentication => {
                    self.policy.mesh_tls_authentications.contains_key(&key)
                }
                AuthenticationKind::NetworkAuthentication => {
                    self.policy.network_authentications.contains_key(&key)
                }
            };
            if !found {
                return accepted(
                    false,
                    reasons::REF_NOT_FOUND,
                    format!(
                        "spec.requiredAuthenticationRefs[{i}]: {:?} {rns}/{} not found",
                        r.kind, r.name
                    ),
                );
            }
        }
        accepted(true, reasons::ACCEPTED, String::new())
    }
}
