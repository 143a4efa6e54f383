//! The Gateway API CRDs the mesh reads (HTTPRoute, GRPCRoute), installed from the upstream
//! module `tests/cluster/build gateway-api` caches, and route objects for tests.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    discovery::Discovery,
};

use crate::{
    DEFAULT_TIMEOUT, cluster, eventually,
    k8s::{FIELD_MANAGER, await_object},
};

/// The Gateway API version `tests/cluster/versions` pins.
pub fn version() -> String {
    let versions = std::fs::read_to_string(cluster::repo_root().join("tests/cluster/versions"))
        .expect("read tests/cluster/versions");
    versions
        .lines()
        .find_map(|l| l.strip_prefix("GATEWAY_API_VERSION="))
        .expect("GATEWAY_API_VERSION in tests/cluster/versions")
        .trim()
        .to_string()
}

/// Fetches (or reuses) the HTTPRoute and GRPCRoute CRDs, applies them and waits until the
/// apiserver serves both kinds.
pub async fn install_crds(client: &Client) {
    let build = cluster::repo_root().join("tests/cluster/build");
    let out = tokio::process::Command::new(&build)
        .arg("gateway-api")
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {}: {e}", build.display()));
    assert!(
        out.status.success(),
        "tests/cluster/build gateway-api failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = cluster::cache_dir().join(format!("gateway-api-{}", version()));
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for kind in ["httproutes", "grpcroutes"] {
        let path = dir.join(format!("{kind}.yaml"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let crd: CustomResourceDefinition = serde_yaml::from_str(&text).unwrap();
        api.patch(&crd.name_any(), &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {}: {e}", crd.name_any()));
        await_object(&api, &crd.name_any(), DEFAULT_TIMEOUT, |crd| {
            let established = crd
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                Ok(())
            } else {
                Err("not established".to_string())
            }
        })
        .await;
    }
    eventually(
        "discovery to serve HTTPRoute and GRPCRoute",
        DEFAULT_TIMEOUT,
        || async {
            let discovery = Discovery::new(client.clone())
                .run()
                .await
                .map_err(|e| e.to_string())?;
            for kind in ["HTTPRoute", "GRPCRoute"] {
                let gvk = kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind);
                if discovery.resolve_gvk(&gvk).is_none() {
                    return Err(format!("{kind} not served yet"));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// An HTTPRoute `name` on Service `parent` port `port` splitting requests between
/// `backends` (Service name, weight), as YAML.
pub fn split_route_yaml(name: &str, parent: &str, port: u16, backends: &[(&str, u32)]) -> String {
    let refs: Vec<String> = backends
        .iter()
        .map(|(svc, weight)| format!("{{name: {svc}, port: {port}, weight: {weight}}}"))
        .collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\n\
         spec:\n  parentRefs: [{{group: core, kind: Service, name: {parent}, port: {port}}}]\n  \
         rules: [{{backendRefs: [{}]}}]\n",
        refs.join(", ")
    )
}
