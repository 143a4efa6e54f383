//! The validating webhook for the policy kinds: rules that span objects, which CRD schemas
//! and CEL rules cannot express.

pub mod authorization_policy;
pub mod server;

#[cfg(test)]
mod tests;

use std::future::Future;

use bytes::Bytes;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, Operation},
};
use serde::de::DeserializeOwned;
use trellis_crds::{
    POLICY_GROUP,
    v1alpha1::{authorization_policy::AuthorizationPolicySpec, server::ServerSpec},
};

use crate::{State, error::Error, lookup::PolicyLookup, review};

/// The outcome of validating one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Why the object is refused; `None` admits it.
    pub denied: Option<String>,
    /// Warnings shown to whoever applied the object.
    pub warnings: Vec<String>,
}

impl Verdict {
    /// Admits the object.
    pub fn allow() -> Self {
        Self::default()
    }

    /// Refuses the object with `reason`.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            denied: Some(reason.into()),
            warnings: Vec::new(),
        }
    }

    /// Admits the object with a warning.
    pub fn warn(warning: impl Into<String>) -> Self {
        Self {
            denied: None,
            warnings: vec![warning.into()],
        }
    }
}

/// Handles one AdmissionReview body for the validating webhook.
pub(crate) async fn handle(state: &State, body: &Bytes) -> Result<Vec<u8>, Error> {
    let request: AdmissionRequest<DynamicObject> = review::decode(body)?;
    let verdict = validate(state, &request).await?;
    let mut response = AdmissionResponse::from(&request);
    if let Some(reason) = verdict.denied {
        tracing::debug!(
            kind = %request.kind.kind,
            name = %request.name,
            namespace = request.namespace.as_deref().unwrap_or_default(),
            %reason,
            "Refused"
        );
        response = response.deny(reason);
    }
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings);
    }
    review::encode(response)
}

/// Validates `request` by group and kind; kinds without cross-object rules are admitted.
pub async fn validate(
    state: &State,
    request: &AdmissionRequest<DynamicObject>,
) -> Result<Verdict, Error> {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(Verdict::allow());
    }
    let Some(object) = request.object.as_ref() else {
        return Ok(Verdict::allow());
    };
    let namespace = request
        .namespace
        .clone()
        .or_else(|| object.metadata.namespace.clone())
        .unwrap_or_default();
    if request.kind.group != POLICY_GROUP {
        return Ok(Verdict::allow());
    }
    let lookup = state.policies.as_ref();
    match request.kind.kind.as_str() {
        ServerSpec::KIND => run::<ServerSpec>(lookup, object, &namespace, &request.name).await,
        AuthorizationPolicySpec::KIND => {
            run::<AuthorizationPolicySpec>(lookup, object, &namespace, &request.name).await
        }
        _ => Ok(Verdict::allow()),
    }
}

/// Cross-object rules for one policy kind, implemented on its spec.
pub trait Validate: DeserializeOwned + Sync {
    /// The kind, like `Server`.
    const KIND: &'static str;

    /// Checks object `name` in `namespace` with this spec against the other objects.
    fn validate(
        &self,
        lookup: &dyn PolicyLookup,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Verdict, Error>> + Send;
}

async fn run<T: Validate>(
    lookup: &dyn PolicyLookup,
    object: &DynamicObject,
    namespace: &str,
    name: &str,
) -> Result<Verdict, Error> {
    match spec_of::<T>(object, T::KIND) {
        Ok(spec) => spec.validate(lookup, namespace, name).await,
        Err(verdict) => Ok(verdict),
    }
}

/// The object's `spec` as a `T`, or a denial naming what did not decode.
fn spec_of<T: DeserializeOwned>(object: &DynamicObject, kind: &str) -> Result<T, Verdict> {
    let spec = object.data.get("spec").cloned().unwrap_or_default();
    serde_json::from_value(spec)
        .map_err(|e| Verdict::deny(format!("{kind} spec does not decode: {e}")))
}
