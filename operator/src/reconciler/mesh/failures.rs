//! Why a component's pods do not start: images that cannot be pulled, containers that crash
//! or cannot be created. Read from the pods of a not-ready component's Deployment, so the Mesh
//! status names the image and the fix instead of only "0/1 available".

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{Api, Client, ResourceExt, api::ListParams};

/// Waiting reasons that mean the image is not there for the node.
const IMAGE_REASONS: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
];
/// Waiting reasons that mean the container cannot run.
const RUN_REASONS: [&str; 3] = [
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];
/// At most this many problems are reported per component (one per container is enough).
const MAX_PROBLEMS: usize = 3;

/// What keeps one container of a component's pod from running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    /// The image cannot be pulled (as opposed to a container that does not run).
    pub image: bool,
    /// One sentence naming the pod, container, image, the kubelet's reason and the fix.
    pub message: String,
}

/// Problems of the containers of `pod` (init containers included).
pub fn problems(pod: &Pod) -> Vec<PodProblem> {
    let name = pod.name_any();
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    let mut out = Vec::new();
    for container in statuses {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let detail = waiting.message.as_deref().unwrap_or("no message");
        if IMAGE_REASONS.contains(&reason) {
            out.push(PodProblem {
                image: true,
                message: format!(
                    "pod {name} container {}: image {} is not available to the node ({reason}: {detail}); \
                     push it to the registry the nodes pull from or load it into the nodes, or set \
                     spec.version to a released version",
                    container.name, container.image
                ),
            });
        } else if RUN_REASONS.contains(&reason) {
            out.push(PodProblem {
                image: false,
                message: format!(
                    "pod {name} container {} (image {}) does not run ({reason}: {detail}); see \
                     `kubectl logs {name} -c {} --previous` and the pod's events",
                    container.name, container.image, container.name
                ),
            });
        }
    }
    out
}

/// Problems of the pods of `deployment` (its selector), at most [`MAX_PROBLEMS`].
///
/// A failed pod list is logged and yields nothing: it only enriches the status.
pub async fn of_deployment(client: &Client, deployment: &Deployment) -> Vec<PodProblem> {
    let Some(labels) = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
    else {
        return Vec::new();
    };
    let selector = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let ns = deployment.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list
            .items
            .iter()
            .flat_map(problems)
            .take(MAX_PROBLEMS)
            .collect(),
        Err(e) => {
            tracing::warn!(%ns, %selector, error = %e, "Cannot list a component's pods for its status");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn pod(statuses: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "trellis-controller-abc" },
            "status": statuses,
        }))
        .unwrap()
    }

    #[test]
    fn image_pull_failures_name_the_image_and_the_fix() {
        let p = pod(serde_json::json!({ "containerStatuses": [{
            "name": "controller", "image": "ghcr.io/trellis-mesh/controller:9.9.9", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": { "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image" } },
        }]}));
        let found = problems(&p);
        assert_eq!(found.len(), 1);
        assert!(found[0].image);
        let m = &found[0].message;
        assert!(
            m.contains("trellis-controller-abc") && m.contains("controller:9.9.9"),
            "{m}"
        );
        assert!(
            m.contains("ImagePullBackOff") && m.contains("spec.version"),
            "{m}"
        );
    }

    #[test]
    fn crash_loops_in_init_containers_are_reported() {
        let p = pod(serde_json::json!({ "initContainerStatuses": [{
            "name": "init", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
            "state": { "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 40s" } },
        }]}));
        let found = problems(&p);
        assert_eq!(found.len(), 1);
        assert!(!found[0].image);
        assert!(
            found[0].message.contains("kubectl logs"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn starting_and_running_containers_are_fine() {
        let p = pod(serde_json::json!({ "containerStatuses": [
            { "name": "a", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
              "state": { "waiting": { "reason": "ContainerCreating" } } },
            { "name": "b", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
              "state": { "running": {} } },
        ]}));
        assert!(problems(&p).is_empty());
        assert!(problems(&Pod::default()).is_empty());
    }
}
