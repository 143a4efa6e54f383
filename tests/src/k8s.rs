//! Per-test namespaces, server-side apply of YAML, and waits on Kubernetes objects.

use std::{fmt::Debug, future::Future, time::Duration};

use k8s_openapi::{
    api::{
        authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
        core::v1::{Namespace, ServiceAccount},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    discovery::{ApiCapabilities, ApiResource, Discovery, Scope},
};
use serde::de::DeserializeOwned;

use crate::{DEFAULT_TIMEOUT, cluster, eventually};

/// Field manager used by test applies.
pub const FIELD_MANAGER: &str = "trellis-tests";
/// Label put on every test namespace, so leftovers can be found.
pub const TEST_NAMESPACE_LABEL: &str = "trellis.dev/test";

/// Runs `test` with a client and a fresh namespace named `t-<name>-<random>`.
///
/// The namespace is created, its `default` ServiceAccount awaited, and it is deleted when
/// the test ends, passed or failed (without waiting for it to go). A panic inside `test`
/// fails the caller with the original message.
pub async fn with_temp_ns<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    crate::trace_init();
    let client = cluster::client().await;
    let ns = create_test_namespace(&client, name).await;
    let outcome = tokio::spawn(test(client.clone(), ns.clone())).await;
    let namespaces: Api<Namespace> = Api::all(client);
    if let Err(e) = namespaces.delete(&ns, &DeleteParams::background()).await {
        tracing::warn!(%ns, error = %e, "Could not delete test namespace");
    }
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task for {name} did not finish: {e}"),
        }
    }
}

async fn create_test_namespace(client: &Client, name: &str) -> String {
    let suffix: u32 = rand::random::<u32>() % 0xff_ffff;
    let mut base: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(48);
    let ns = format!("t-{}-{suffix:06x}", base.trim_matches('-'));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": ns, "labels": { TEST_NAMESPACE_LABEL: "true" } }
    }))
    .expect("namespace object");
    namespaces
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create namespace {ns}: {e}"));
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    eventually(
        &format!("ServiceAccount {ns}/default (created by kube-controller-manager)"),
        DEFAULT_TIMEOUT,
        || async {
            match accounts.get_opt("default").await {
                Ok(Some(sa)) => Ok(sa),
                Ok(None) => Err("absent".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    ns
}

/// The committed CRD manifests in `config/crds/`, parsed, in file-name order.
pub fn committed_crds() -> Vec<CustomResourceDefinition> {
    let dir = cluster::repo_root().join("config/crds");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no CRDs in {}; run `cargo run -p trellis-crds --bin crdgen`",
        dir.display()
    );
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("read CRD file");
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// Server-side applies every committed CRD (forced, identical content: safe to repeat and to
/// run concurrently), waits until each is Established with its names accepted and discovery
/// serves every kind, and returns the CRDs applied.
pub async fn install_crds(client: &Client) -> Vec<CustomResourceDefinition> {
    crate::trace_init();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let crds = committed_crds();
    for crd in &crds {
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .unwrap_or_else(|e| panic!("the apiserver rejected CRD {name}: {e}"));
    }
    for crd in &crds {
        await_object(&api, &crd.name_any(), DEFAULT_TIMEOUT, |crd| {
            let conditions = crd.status.as_ref().and_then(|s| s.conditions.as_ref());
            let holds = |type_: &str| {
                conditions
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == type_ && c.status == "True")
            };
            if holds("Established") && holds("NamesAccepted") {
                Ok(())
            } else {
                Err(format!("conditions: {conditions:?}"))
            }
        })
        .await;
    }
    eventually(
        "discovery to serve every Trellis kind",
        DEFAULT_TIMEOUT,
        || async {
            let discovery = Discovery::new(client.clone())
                .run()
                .await
                .map_err(|e| e.to_string())?;
            for crd in &crds {
                let gvk = kube::api::GroupVersionKind::gvk(
                    &crd.spec.group,
                    &crd.spec.versions[0].name,
                    &crd.spec.names.kind,
                );
                if discovery.resolve_gvk(&gvk).is_none() {
                    return Err(format!("{gvk:?} not served yet"));
                }
            }
            Ok(())
        },
    )
    .await;
    crds
}

/// Waits until `get(name)` in `api` satisfies `ready`, returning the object.
///
/// `ready` returns `Err(state)` with a short description while it is not satisfied.
pub async fn await_object<K, F>(api: &Api<K>, name: &str, timeout: Duration, ready: F) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
    F: Fn(&K) -> Result<(), String>,
{
    let what = format!("{} {name}", K::kind(&Default::default()));
    eventually(&what, timeout, || async {
        let obj = api
            .get_opt(name)
            .await
            .map_err(|e| format!("get failed: {e}"))?
            .ok_or_else(|| "not found".to_string())?;
        ready(&obj).map(|()| obj)
    })
    .await
}

/// Deletes `name` through `api` with `params`, then waits up to `timeout` (the wait described
/// as `what`) until `after` accepts what then stands under that name (`None`: it is gone).
///
/// `after` returns `Err(state)` with a short description while it is not satisfied.
pub async fn delete_and_await<K, F>(
    api: &Api<K>,
    name: &str,
    params: &DeleteParams,
    what: &str,
    timeout: Duration,
    after: F,
) where
    K: Resource + Clone + DeserializeOwned + Debug,
    F: Fn(Option<K>) -> Result<(), String>,
{
    api.delete(name, params)
        .await
        .unwrap_or_else(|e| panic!("delete {name}: {e}"));
    eventually(what, timeout, || async {
        let obj = api
            .get_opt(name)
            .await
            .map_err(|e| format!("get failed: {e}"))?;
        after(obj)
    })
    .await;
}

/// A dynamic API for the kind of `obj`, found through discovery.
pub fn dynamic_api(
    client: &Client,
    discovery: &Discovery,
    obj: &DynamicObject,
    default_ns: Option<&str>,
) -> Result<(Api<DynamicObject>, ApiResource, ApiCapabilities), String> {
    let types = obj.types.as_ref().ok_or("object without apiVersion/kind")?;
    let gvk = kube::api::GroupVersionKind::try_from(types).map_err(|e| e.to_string())?;
    let (resource, caps) = discovery
        .resolve_gvk(&gvk)
        .ok_or_else(|| format!("the cluster does not serve {gvk:?}; is its CRD applied?"))?;
    let api = match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => {
            let ns = obj
                .namespace()
                .or(default_ns.map(str::to_string))
                .ok_or_else(|| format!("{} {} needs a namespace", types.kind, obj.name_any()))?;
            Api::namespaced_with(client.clone(), &ns, &resource)
        }
    };
    Ok((api, resource, caps))
}

/// A Deployment `name` of `replicas` pods labelled `app: <name>`, as YAML: the pod template
/// has the metadata `pod_metadata` (to which the `app` label is added) and the spec `pod_spec`.
pub fn deployment_yaml(
    name: &str,
    replicas: u32,
    pod_metadata: serde_json::Value,
    pod_spec: serde_json::Value,
) -> String {
    let mut metadata = pod_metadata;
    metadata["labels"]["app"] = name.into();
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": metadata, "spec": pod_spec },
        },
    });
    serde_yaml::to_string(&deployment).expect("a Deployment serializes")
}

/// The spec of a pod with one container `web`, port `http` (8080), whose image never runs
/// (kwok fakes the pods).
pub fn web_pod_spec() -> serde_json::Value {
    serde_json::json!({
        "containers": [{
            "name": "web",
            "image": "example.invalid/web:1",
            "ports": [{ "name": "http", "containerPort": 8080 }],
        }],
    })
}

/// A Deployment `web` of `replicas` pods labelled `app: web` with [`web_pod_spec`].
pub fn web_deployment_yaml(replicas: u32) -> String {
    deployment_yaml("web", replicas, serde_json::json!({}), web_pod_spec())
}

/// The Service `web` (port 80 to the pods' port `http`), beside [`web_deployment_yaml`].
pub const WEB_SERVICE_YAML: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

/// A token for service account `sa` in `ns` with the identity audience
/// ([`trellis_api::well_known::IDENTITY_TOKEN_AUDIENCE`]), valid for `expiration_seconds` and
/// bound to `bound_to` when given, as a pod's projected token volume would hold.
pub async fn identity_token(
    client: &Client,
    ns: &str,
    sa: &str,
    expiration_seconds: i64,
    bound_to: Option<BoundObjectReference>,
) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![
                trellis_api::well_known::IDENTITY_TOKEN_AUDIENCE.to_string(),
            ]),
            bound_object_ref: bound_to,
            expiration_seconds: Some(expiration_seconds),
        }),
        ..TokenRequest::default()
    };
    accounts
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {ns}/{sa}: {e}"))
        .status
        .and_then(|s| s.token)
        .unwrap_or_else(|| panic!("no token for {ns}/{sa}"))
}

/// A Server `web-http` for the `web` pods' port `http` that denies everyone but the clients of
/// an AuthorizationPolicy requiring MeshTLSAuthentication `web-clients` with `identity`
/// (`proxy_protocol` set when given, else detected).
pub fn web_http_policy_yaml(identity: &str, proxy_protocol: Option<&str>) -> String {
    let protocol = proxy_protocol
        .map(|p| format!("\n  proxyProtocol: {p}"))
        .unwrap_or_default();
    format!(
        r#"
apiVersion: policy.trellis.dev/v1alpha1
kind: Server
metadata: {{name: web-http}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  port: http{protocol}
  accessPolicy: deny
---
apiVersion: policy.trellis.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: web-clients}}
spec:
  identities: ["{identity}"]
---
apiVersion: policy.trellis.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: web-http-from-clients}}
spec:
  targetRef: {{group: policy.trellis.dev, kind: Server, name: web-http}}
  requiredAuthenticationRefs:
    - {{group: policy.trellis.dev, kind: MeshTLSAuthentication, name: web-clients}}
"#
    )
}

/// Server-side applies `obj` as `name` through `api`, as [`FIELD_MANAGER`] taking over any
/// conflicting fields; returns the object as stored and panics naming it when refused.
pub async fn server_side_apply<K>(
    api: &Api<K>,
    name: &str,
    obj: &(impl serde::Serialize + Debug),
) -> K
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {name}: {e}", std::any::type_name::<K>()))
}

/// Parses a multi-document YAML string into dynamic objects (empty documents are skipped).
pub fn parse_yaml(yaml: &str) -> Vec<DynamicObject> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| {
            let value = serde_yaml::Value::deserialize(doc).expect("valid YAML");
            (!value.is_null()).then(|| serde_yaml::from_value(value).expect("a Kubernetes object"))
        })
        .collect()
}

/// Server-side applies every object in `yaml`, namespaced ones into `ns` unless they name one.
///
/// Returns the apiserver's error message for the first object it rejects.
pub async fn apply_yaml(
    client: &Client,
    ns: Option<&str>,
    yaml: &str,
) -> Result<Vec<DynamicObject>, String> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let mut applied = Vec::new();
    for obj in parse_yaml(yaml) {
        let (api, _, _) = dynamic_api(client, &discovery, &obj, ns)?;
        let name = obj.name_any();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let out = api
            .patch(&name, &params, &Patch::Apply(&obj))
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) => status.message,
                other => other.to_string(),
            })?;
        applied.push(out);
    }
    Ok(applied)
}

use serde::Deserialize as _;

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;

    use super::*;

    #[test]
    fn a_deployment_selects_its_pods_by_the_app_label() {
        let yaml = deployment_yaml(
            "web",
            2,
            serde_json::json!({ "labels": { "tier": "front" }, "annotations": { "a": "5432" } }),
            web_pod_spec(),
        );
        let deployment: Deployment = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(deployment.metadata.name.as_deref(), Some("web"));
        let spec = deployment.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let app = [("app".to_string(), "web".to_string())];
        assert_eq!(spec.selector.match_labels, Some(app.clone().into()));
        let pod = spec.template.metadata.unwrap();
        let labels = pod.labels.unwrap();
        assert_eq!(
            (labels["app"].as_str(), labels["tier"].as_str()),
            ("web", "front")
        );
        assert_eq!(pod.annotations.unwrap()["a"], "5432");
        let containers = spec.template.spec.unwrap().containers;
        assert_eq!(
            containers[0].image.as_deref(),
            Some("example.invalid/web:1")
        );
    }

    #[test]
    fn the_web_deployment_and_service_parse_as_two_objects() {
        let objects = parse_yaml(&format!("{}---{WEB_SERVICE_YAML}", web_deployment_yaml(1)));
        let kinds: Vec<_> = objects
            .iter()
            .map(|o| o.types.as_ref().unwrap().kind.as_str())
            .collect();
        assert_eq!(kinds, ["Deployment", "Service"]);
    }
}
