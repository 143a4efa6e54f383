//! The mutating webhook: adds trellis-proxy-init and trellis-proxy to pods that opt in.
//!
//! The apiserver calls it for pods in every namespace but `kube-system` and the control-plane
//! namespace (the operator's `namespaceSelector`); namespaces annotated or labelled
//! `trellis.dev/inject: disabled` are still called, so the decision is made here, per pod: a
//! pod is injected when its own `trellis.dev/inject` annotation, or else (when it has none, or
//! an unknown value, which gets a warning) its namespace's, says `enabled` (or `ingress`). A
//! pod annotated `disabled` is left alone without reading its namespace; a namespace without
//! the annotation opts nobody in. Pods on the host network, pods in the control-plane
//! namespace and pods that already hold a proxy are left alone, so injection is idempotent.
//! So is a pod that opts in while the control plane has no trust anchors yet: its proxy could
//! not start, so it is admitted as it is, with a warning. A pod left alone gets an allowing
//! response without a patch.

pub mod annotations;
pub mod patch;
pub mod template;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use trellis_api::well_known::{
    CONTROL_PLANE_NS_LABEL, MANAGED_BY_LABEL, OPAQUE_PORTS_ANNOTATION, PROXY_VERSION_ANNOTATION,
    TRUST_ROOTS_CONFIGMAP,
};

use self::{
    annotations::{
        InjectMode, inject_mode, merged_config, port_list, settings, unknown_inject_values,
    },
    patch::Additions,
    template::{PROXY_CONTAINER, proxy_container, proxy_init_container, volumes},
};
use crate::{State, error::Error, review};

/// Why a pod was admitted without changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The request is not a pod CREATE with an object.
    NotACreate,
    /// The pod runs on the host network; redirecting its traffic would capture the node's.
    HostNetwork,
    /// The pod runs in the control-plane namespace, or the operator manages it.
    ControlPlane,
    /// The pod already holds a trellis-proxy container.
    AlreadyInjected,
    /// Neither the pod nor its namespace asks for injection, or one says `disabled`.
    NotEnabled,
    /// The pod asks for injection, but the control plane has no trust anchors yet.
    NoTrustAnchors,
}

impl Skip {
    fn as_str(self) -> &'static str {
        match self {
            Self::NotACreate => "not a pod create",
            Self::HostNetwork => "host network pod",
            Self::ControlPlane => "control-plane pod",
            Self::AlreadyInjected => "already injected",
            Self::NotEnabled => "injection not enabled",
            Self::NoTrustAnchors => "no trust anchors yet",
        }
    }
}

/// What the injector does with one pod.
#[derive(Clone, Debug)]
pub enum Decision {
    /// Add these to the pod; `warnings` name the annotations that were ignored.
    Inject {
        /// Containers, volumes, labels and annotations to add.
        additions: Additions,
        /// Warnings for the apiserver to show, one per ignored annotation.
        warnings: Vec<String>,
    },
    /// Admit the pod unchanged.
    Skip {
        /// Why.
        reason: Skip,
        /// Warnings for the apiserver to show (ignored annotations, or why a pod that asked
        /// for the proxy did not get it).
        warnings: Vec<String>,
    },
}

impl Decision {
    fn skip(reason: Skip) -> Self {
        Self::Skip {
            reason,
            warnings: Vec::new(),
        }
    }
}

/// Handles one AdmissionReview body for the mutating webhook.
pub(crate) async fn handle(state: &State, body: &Bytes) -> Result<Vec<u8>, Error> {
    let request: AdmissionRequest<Pod> = review::decode(body)?;
    let response = AdmissionResponse::from(&request);
    let response = match admit(state, &request).await? {
        Decision::Inject {
            additions,
            warnings,
        } => {
            let Some(pod) = request.object.as_ref() else {
                return review::encode(response);
            };
            let patch = patch::patch(pod, &additions)?;
            tracing::debug!(
                namespace = request.namespace.as_deref().unwrap_or_default(),
                uid = %request.uid,
                "Injecting proxy"
            );
            let mut response = response.with_patch(patch).map_err(Error::Patch)?;
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            response
        }
        Decision::Skip { reason, warnings } => {
            tracing::debug!(
                namespace = request.namespace.as_deref().unwrap_or_default(),
                uid = %request.uid,
                reason = reason.as_str(),
                "Not injecting"
            );
            let mut response = response;
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            response
        }
    };
    review::encode(response)
}

/// Decides whether and how to inject `request`'s pod.
pub async fn admit(state: &State, request: &AdmissionRequest<Pod>) -> Result<Decision, Error> {
    let (Operation::Create, Some(pod)) = (&request.operation, &request.object) else {
        return Ok(Decision::skip(Skip::NotACreate));
    };
    let config = state.inject_config();
    let namespace = request
        .namespace
        .clone()
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_default();
    let (managed_by, operator) = MANAGED_BY_LABEL;
    let operator_managed = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(managed_by))
        .is_some_and(|value| value == operator);
    if namespace == config.control_plane_namespace || operator_managed {
        return Ok(Decision::skip(Skip::ControlPlane));
    }
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.host_network).unwrap_or(false) {
        return Ok(Decision::skip(Skip::HostNetwork));
    }
    let has_proxy = spec.is_some_and(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .any(|c| c.name == PROXY_CONTAINER)
    });
    let pod_annotations = pod.metadata.annotations.clone().unwrap_or_default();
    if has_proxy || pod_annotations.contains_key(PROXY_VERSION_ANNOTATION) {
        return Ok(Decision::skip(Skip::AlreadyInjected));
    }
    if inject_mode(&pod_annotations, &BTreeMap::new()) == Some(InjectMode::Disabled) {
        return Ok(Decision::skip(Skip::NotEnabled));
    }
    let ns_annotations = state
        .namespaces
        .namespace_annotations(&namespace)
        .await
        .map_err(|source| Error::Lookup {
            what: format!("namespace {namespace}"),
            source,
        })?
        .unwrap_or_default();
    let mut warnings = unknown_inject_values(&pod_annotations, &ns_annotations, &namespace);
    let mode = match inject_mode(&pod_annotations, &ns_annotations) {
        Some(mode @ (InjectMode::Enabled | InjectMode::Ingress)) => mode,
        Some(InjectMode::Disabled) | None => {
            return Ok(Decision::Skip {
                reason: Skip::NotEnabled,
                warnings,
            });
        }
    };
    if !config.has_trust_anchors() {
        tracing::warn!(
            %namespace,
            uid = %request.uid,
            "Pod admitted without a proxy: no trust anchors loaded yet"
        );
        warnings.push(format!(
            "{PROXY_CONTAINER} not injected: no trust anchors yet (ConfigMap \
             {TRUST_ROOTS_CONFIGMAP} in {cp} has no PEM bundle); the pod runs unmeshed, \
             recreate it once the Mesh is ready",
            cp = config.control_plane_namespace,
        ));
        return Ok(Decision::Skip {
            reason: Skip::NoTrustAnchors,
            warnings,
        });
    }

    let overrides = merged_config(&pod_annotations, &ns_annotations);
    let (settings, setting_warnings) = settings(&config, &overrides, mode);
    warnings.extend(setting_warnings);
    let proxy = proxy_container(&config, &settings, pod);
    let mut additions = Additions {
        init_containers: vec![proxy_init_container(&settings)],
        volumes: volumes(),
        ..Additions::default()
    };
    if settings.native_sidecar {
        additions.init_containers.push(proxy);
    } else {
        additions.containers.push(proxy);
    }
    additions.labels.insert(
        CONTROL_PLANE_NS_LABEL.to_string(),
        config.control_plane_namespace.clone(),
    );
    additions.annotations.insert(
        PROXY_VERSION_ANNOTATION.to_string(),
        settings.version.clone(),
    );
    // Record the effective configuration on the pod: the namespace's values it inherits,
    // and the default opaque ports it exposes (what destination and policy read). An invalid
    // opaque-ports value is not recorded: the pod gets the ports its proxy really uses.
    let opaque_invalid = overrides
        .get(OPAQUE_PORTS_ANNOTATION)
        .is_some_and(|value| port_list(value).is_err());
    for (key, value) in &overrides {
        let invalid = opaque_invalid && key == OPAQUE_PORTS_ANNOTATION;
        if !invalid && !pod_annotations.contains_key(key) {
            additions.annotations.insert(key.clone(), value.clone());
        }
    }
    if !overrides.contains_key(OPAQUE_PORTS_ANNOTATION) || opaque_invalid {
        let exposed = template::exposed_ports_in(pod, &settings.options.opaque_ports);
        let replaces_own = opaque_invalid && pod_annotations.contains_key(OPAQUE_PORTS_ANNOTATION);
        if opaque_invalid {
            warnings.push(format!(
                "annotation {OPAQUE_PORTS_ANNOTATION} is invalid: the pod records the default \
                 opaque ports it exposes ({exposed:?}); fix it to ports and ranges like \
                 25,4000-4100"
            ));
        }
        if !exposed.is_empty() || replaces_own {
            additions
                .annotations
                .insert(OPAQUE_PORTS_ANNOTATION.to_string(), exposed);
        }
    }
    Ok(Decision::Inject {
        additions,
        warnings,
    })
}
