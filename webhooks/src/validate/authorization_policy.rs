//! AuthorizationPolicy rules: its target should exist, and a Namespace target must be the
//! policy's own namespace.

use trellis_crds::{
    common::target_ref::PolicyTargetKind, v1alpha1::authorization_policy::AuthorizationPolicySpec,
};

use super::{Validate, Verdict};
use crate::{error::Error, lookup::PolicyLookup};

impl Validate for AuthorizationPolicySpec {
    const KIND: &'static str = "AuthorizationPolicy";

    /// Admits a policy whose target Server does not exist yet with a warning (it applies
    /// once the Server is created), and refuses a Namespace target other than the policy's
    /// own.
    async fn validate(
        &self,
        lookup: &dyn PolicyLookup,
        namespace: &str,
        _name: &str,
    ) -> Result<Verdict, Error> {
        validate(lookup, namespace, self).await
    }
}

async fn validate(
    lookup: &dyn PolicyLookup,
    namespace: &str,
    spec: &AuthorizationPolicySpec,
) -> Result<Verdict, Error> {
    let target = &spec.target_ref;
    match target.kind {
        PolicyTargetKind::Namespace => {
            if target.name == namespace {
                Ok(Verdict::allow())
            } else {
                Ok(Verdict::deny(format!(
                    "targetRef names Namespace {}, but a policy can only target its own \
                     namespace ({namespace}); set targetRef.name to {namespace} or create the \
                     policy in {}",
                    target.name, target.name
                )))
            }
        }
        // A route target that does not exist yet is reported in the policy's status.
        PolicyTargetKind::HTTPRoute | PolicyTargetKind::GRPCRoute => Ok(Verdict::allow()),
        PolicyTargetKind::Server => {
            let exists = lookup
                .server_exists(namespace, &target.name)
                .await
                .map_err(|source| Error::Lookup {
                    what: format!("Server {namespace}/{}", target.name),
                    source,
                })?;
            if exists {
                Ok(Verdict::allow())
            } else {
                Ok(Verdict::warn(format!(
                    "target Server {} does not exist in namespace {namespace} yet; the policy \
                     takes effect once it is created",
                    target.name
                )))
            }
        }
    }
}
