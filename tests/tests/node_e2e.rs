//! The mesh on the local cluster's real node, as a user runs it: the operator installed from
//! `config/install/` as a real Deployment, `config/samples/mesh.yaml` applied, injected demo
//! workloads talking HTTP/1.1, HTTP/2, gRPC and raw TCP over mTLS, an AuthorizationPolicy
//! that denies and then allows, an upgrade that rolls the control plane under steady
//! traffic with zero failed requests, the operator's leader killed, and the Mesh deleted.
//!
//! Needs the images from `tests/images/build trellis --tag <version> --tag <version>-next`
//! (`tests/test-all` builds them) in the node's containerd. The steps share one installation,
//! so they run in order inside one test; a failed step still uninstalls everything.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use k8s_openapi::api::{
    admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{ConfigMap, Namespace, Pod, Secret, Service},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::json;
use trellis_crds::v1alpha1::mesh::Mesh;
use trellis_tests::{
    cluster, eventually, gateway, k8s,
    real_node::{self, Stats},
};

const CONTROL_PLANE_NS: &str = "trellis-system";
const MESH: &str = "default";
/// Real pods on two shared cores: image start, identity, probes.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(240);
const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(90);
/// The demo clients and the stats port each listens on (container name, protocol, port).
const CLIENTS: [(&str, &str, u16); 4] = [
    ("http1", "http1", 9001),
    ("http2", "http2", 9002),
    ("grpc", "grpc", 9003),
    ("tcp", "tcp", 9004),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_runs_on_real_pods_from_install_to_delete() {
    trellis_tests::trace_init();
    let client = cluster::client().await;
    let apps = format!("t-node-e2e-{:06x}", rand::random::<u32>() % 0xff_ffff);
    let outcome = tokio::spawn(run(client.clone(), apps.clone())).await;
    uninstall(&client, &apps).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run(client: Client, apps: String) {
    // A fresh install: earlier tests leave config/install applied with kwok's fake pods.
    uninstall(&client, &apps).await;
    gateway::install_crds(&client).await;
    install(&client).await;
    apply_mesh(&client).await;
    let demo = deploy_workloads(&client, &apps).await;
    every_protocol_flows_over_mtls(&client, &apps, &demo).await;
    authorization_denies_then_allows(&client, &apps, &demo).await;
    a_canary_split_moves_traffic_as_its_weights_change(&client, &apps, &demo).await;
    route_authorization_admits_one_path_and_denies_another(&client, &apps).await;
    admission_with_and_without_a_controller(&client, &apps).await;
    a_missing_image_is_reported_and_changes_nothing(&client, &demo).await;
    upgrade_rolls_the_control_plane_without_failed_requests(&client, &demo).await;
    killing_the_leader_hands_over(&client).await;
    memory_of_real_containers(&client, &apps).await;
    deleting_the_mesh_removes_everything(&client).await;
}

fn repo_file(path: &str) -> String {
    let p: PathBuf = cluster::repo_root().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn yaml_files(dir: &str) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cluster::repo_root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn meshes(client: &Client) -> Api<Mesh> {
    Api::all(client.clone())
}

/// CRDs and `config/install/` (the operator as a real Deployment of two replicas).
async fn install(client: &Client) {
    k8s::install_crds(client).await;
    real_node::namespace(client, CONTROL_PLANE_NS, &[]).await;
    for yaml in yaml_files("config/install") {
        k8s::apply_yaml(client, None, &yaml).await.unwrap();
    }
    let started = tokio::time::Instant::now();
    rollout_operator(client).await;
    let operators = real_node::ready_pods(
        client,
        CONTROL_PLANE_NS,
        "app.kubernetes.io/component=operator",
    )
    .await;
    assert_on_real_node(&operators);
    eprintln!("operator: 2 real replicas Ready in {:?}", started.elapsed());
}

/// `config/samples/mesh.yaml`, then Ready once the controller's real pods are Ready.
async fn apply_mesh(client: &Client) {
    let started = tokio::time::Instant::now();
    k8s::apply_yaml(client, None, &repo_file("config/samples/mesh.yaml"))
        .await
        .unwrap();
    let mesh = await_mesh_ready(client, real_node::version()).await;
    eprintln!(
        "mesh.yaml → Ready with real pods in {:?} ({})",
        started.elapsed(),
        mesh.status.unwrap().components_ready.unwrap_or_default()
    );
    let controller = real_node::ready_pods(
        client,
        CONTROL_PLANE_NS,
        "app.kubernetes.io/component=controller",
    )
    .await;
    assert!(!controller.is_empty(), "no Ready controller pod");
    assert_on_real_node(&controller);
}

fn assert_on_real_node(pods: &[Pod]) {
    for pod in pods {
        assert_eq!(
            pod.spec.as_ref().unwrap().node_name.as_deref(),
            Some(real_node::NODE_NAME),
            "pod {} must run on the real node",
            pod.name_any()
        );
    }
}

/// Waits for the operator Deployment's rollout.
async fn rollout_operator(client: &Client) {
    real_node::rollout(
        client,
        CONTROL_PLANE_NS,
        "trellis-operator",
        ROLLOUT_TIMEOUT,
    )
    .await;
}

async fn await_mesh_ready(client: &Client, version: &str) -> Mesh {
    let api = meshes(client);
    eventually(
        &format!("Mesh {MESH} Ready at {version}"),
        ROLLOUT_TIMEOUT,
        || async {
            let mesh = api.get(MESH).await.map_err(|e| e.to_string())?;
            let status = mesh.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let observed = status.observed_generation >= mesh.metadata.generation;
            if ready && observed && status.version.as_deref() == Some(version) {
                Ok(mesh)
            } else {
                Err(status
                    .conditions
                    .iter()
                    .map(|c| format!("{}={} {}", c.type_, c.status, c.message))
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        },
    )
    .await
}

/// Pod IPs of the demo: the web pods and the client pod.
#[derive(Debug)]
struct Demo {
    web: Vec<IpAddr>,
    client: IpAddr,
}

/// `web` (two replicas) and one `client` pod with a demo client per protocol, injected.
async fn deploy_workloads(client: &Client, ns: &str) -> Demo {
    real_node::namespace(client, ns, &[("trellis.dev/inject", "enabled")]).await;
    let image = real_node::demo_image();
    let target = format!("web.{ns}.svc.cluster.local");
    let containers: Vec<serde_json::Value> = CLIENTS
        .iter()
        .map(|(name, protocol, port)| {
            let port_of_target = if *protocol == "tcp" { 8082 } else { 80 };
            json!({
                "name": name, "image": image, "imagePullPolicy": "Never",
                "args": ["client", "--target", format!("{target}:{port_of_target}"),
                         "--protocol", protocol, "--rate", "10",
                         "--stats-addr", format!("0.0.0.0:{port}")],
                "ports": [{ "name": format!("stats-{name}"), "containerPort": port }],
                "resources": { "requests": { "cpu": "5m", "memory": "8Mi" } },
            })
        })
        .collect();
    let web = k8s::deployment_yaml(
        "web",
        2,
        json!({}),
        json!({
            "serviceAccountName": "web",
            "containers": [{
                "name": "web", "image": image, "imagePullPolicy": "Never", "args": ["server"],
                "ports": [{ "name": "http", "containerPort": 8080 }, { "name": "tcp", "containerPort": 8082 }],
                "readinessProbe": { "httpGet": { "path": "/healthz", "port": 8080 }, "periodSeconds": 1 },
            }],
        }),
    );
    let clients = k8s::deployment_yaml(
        "client",
        1,
        json!({}),
        json!({ "serviceAccountName": "client", "containers": containers }),
    );
    let yaml = format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: web}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: client}}
---
{web}---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}, {{name: tcp, port: 8082, targetPort: 8082}}]
---
{clients}"#
    );
    k8s::apply_yaml(client, Some(ns), &yaml).await.unwrap();
    real_node::rollout(client, ns, "web", ROLLOUT_TIMEOUT).await;
    real_node::rollout(client, ns, "client", ROLLOUT_TIMEOUT).await;
    let web = real_node::ready_pods(client, ns, "app=web").await;
    let clients = real_node::ready_pods(client, ns, "app=client").await;
    for pod in web.iter().chain(&clients) {
        let spec = pod.spec.as_ref().unwrap();
        let names: Vec<&str> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| c.name.as_str())
            .collect();
        assert!(
            names.contains(&trellis_webhooks::inject::template::PROXY_CONTAINER)
                && names.contains(&trellis_webhooks::inject::template::PROXY_INIT_CONTAINER),
            "pod {} was not injected: {names:?}",
            pod.name_any()
        );
    }
    Demo {
        web: web.iter().map(real_node::pod_ip).collect(),
        client: real_node::pod_ip(&clients[0]),
    }
}

/// Waits until every client has `min_ok` good answers since its last reset, and none failed.
async fn await_clean_traffic(demo: &Demo, min_ok: u64, what: &str) -> Vec<Stats> {
    eventually(what, TRAFFIC_TIMEOUT, || async {
        let mut all = Vec::new();
        for (name, _, port) in CLIENTS {
            let s = real_node::stats(demo.client, port, false)
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            if s.failed > 0 {
                panic!("{what}: client {name} had failed requests: {s:?}");
            }
            if s.ok < min_ok {
                return Err(format!("{name}: {s:?}"));
            }
            all.push(s);
        }
        Ok(all)
    })
    .await
}

async fn reset_all(demo: &Demo) {
    for (name, _, port) in CLIENTS {
        real_node::stats(demo.client, port, true)
            .await
            .unwrap_or_else(|e| panic!("reset {name}: {e}"));
    }
}

fn identity(sa: &str, ns: &str) -> String {
    format!("{sa}.{ns}.serviceaccount.identity.trellis.cluster.local")
}

async fn every_protocol_flows_over_mtls(_client: &Client, ns: &str, demo: &Demo) {
    reset_all(demo).await;
    await_clean_traffic(
        demo,
        10,
        "HTTP/1.1, HTTP/2, gRPC and TCP through the proxies",
    )
    .await;
    let client_id = identity("client", ns);
    let web_id = identity("web", ns);
    let mut inbound_http = 0.0;
    let mut inbound_tcp = 0.0;
    for ip in &demo.web {
        let m = real_node::proxy_metrics(*ip).await.unwrap();
        inbound_http += real_node::metric_sum(
            &m,
            "request_total",
            &[
                ("direction", "inbound"),
                ("tls", "true"),
                ("client_id", &client_id),
            ],
        );
        inbound_tcp += real_node::metric_sum(
            &m,
            "tcp_open_total",
            &[
                ("direction", "inbound"),
                ("target_port", "8082"),
                ("tls", "true"),
                ("client_id", &client_id),
            ],
        );
    }
    assert!(
        inbound_http >= 30.0,
        "web proxies saw {inbound_http} mTLS requests from {client_id}"
    );
    assert!(
        inbound_tcp >= 10.0,
        "web proxies saw {inbound_tcp} mTLS TCP connections from {client_id}"
    );
    let m = real_node::proxy_metrics(demo.client).await.unwrap();
    let outbound = real_node::metric_sum(
        &m,
        "request_total",
        &[
            ("direction", "outbound"),
            ("tls", "true"),
            ("server_id", &web_id),
        ],
    );
    assert!(
        outbound >= 30.0,
        "the client proxy sent {outbound} mTLS requests to {web_id}"
    );
}

async fn authorization_denies_then_allows(client: &Client, ns: &str, demo: &Demo) {
    let policy = |allowed: &str| k8s::web_http_policy_yaml(allowed, None);
    k8s::apply_yaml(client, Some(ns), &policy(&identity("someone-else", ns)))
        .await
        .unwrap();
    real_node::stats(demo.client, 9001, true).await.unwrap();
    let denied = eventually(
        "the HTTP/1.1 client denied with 403",
        TRAFFIC_TIMEOUT,
        || async {
            let s = real_node::stats(demo.client, 9001, false).await?;
            if s.outcome("403") >= 5 {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await;
    eprintln!("denied: {denied:?}");
    k8s::apply_yaml(client, Some(ns), &policy(&identity("client", ns)))
        .await
        .unwrap();
    eventually("the client allowed again", TRAFFIC_TIMEOUT, || async {
        // One second of traffic (10 requests) with no failure.
        real_node::stats(demo.client, 9001, true).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = real_node::stats(demo.client, 9001, false).await?;
        if s.ok >= 5 && s.failed == 0 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    for (kind, name) in [
        ("AuthorizationPolicy", "web-http-from-clients"),
        ("MeshTLSAuthentication", "web-clients"),
        ("Server", "web-http"),
    ] {
        let (ok, _, err) = cluster::kubectl(&[
            "-n",
            ns,
            "delete",
            &format!("{}.policy.trellis.dev", kind.to_lowercase()),
            name,
        ])
        .await;
        assert!(ok, "delete {kind} {name}: {err}");
    }
}

/// One demo server pod of Deployment `name` (`app=<name>`, ServiceAccount `web`).
fn web_deployment_yaml(name: &str) -> String {
    k8s::deployment_yaml(
        name,
        1,
        json!({}),
        json!({
            "serviceAccountName": "web",
            "containers": [{
                "name": "web", "image": real_node::demo_image(), "imagePullPolicy": "Never",
                "args": ["server"],
                "ports": [{ "name": "http", "containerPort": 8080 }],
                "readinessProbe": { "httpGet": { "path": "/healthz", "port": 8080 }, "periodSeconds": 1 },
            }],
        }),
    )
}

/// A Service `name` on port 80 for the demo servers labelled `app=<app>`.
fn web_service_yaml(name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n\
         spec: {{selector: {{app: {app}}}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}\n"
    )
}

/// The demo HTTP/1.1 client's answers over three seconds: (from `web-v2` pods, from others, failed).
async fn one_window(demo: &Demo) -> Result<(u64, u64, u64), String> {
    real_node::stats(demo.client, 9001, true).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = real_node::stats(demo.client, 9001, false).await?;
    let v2 = s.answered_by("web-v2");
    let all: u64 = s.servers.values().sum();
    Ok((v2, all - v2, s.failed))
}

/// An HTTPRoute on the `web` Service splits its traffic between `web-v1` (the existing web
/// pods) and `web-v2` (a new Deployment); the demo client's requests follow each change of
/// the weights, on their open connections, without failures.
async fn a_canary_split_moves_traffic_as_its_weights_change(
    client: &Client,
    ns: &str,
    demo: &Demo,
) {
    let yaml = format!(
        "{}---\n{}---\n{}",
        web_service_yaml("web-v1", "web"),
        web_service_yaml("web-v2", "web-v2"),
        web_deployment_yaml("web-v2")
    );
    k8s::apply_yaml(client, Some(ns), &yaml).await.unwrap();
    real_node::rollout(client, ns, "web-v2", ROLLOUT_TIMEOUT).await;
    for (w1, w2) in [(100, 0), (50, 50), (0, 100)] {
        let route =
            gateway::split_route_yaml("web-canary", "web", 80, &[("web-v1", w1), ("web-v2", w2)]);
        k8s::apply_yaml(client, Some(ns), &route).await.unwrap();
        let (v2, v1, failed) = eventually(
            &format!("web-v1/web-v2 at {w1}/{w2}"),
            TRAFFIC_TIMEOUT,
            || async {
                let (v2, v1, failed) = one_window(demo).await?;
                let converged = v1 + v2 >= 15
                    && match (w1, w2) {
                        (_, 0) => v2 == 0,
                        (0, _) => v1 == 0,
                        _ => v1 >= 3 && v2 >= 3,
                    };
                if converged && failed == 0 {
                    Ok((v2, v1, failed))
                } else {
                    Err(format!("v1 {v1}, v2 {v2}, failed {failed}"))
                }
            },
        )
        .await;
        eprintln!("canary {w1}/{w2}: web-v1 {v1}, web-v2 {v2}, failed {failed}");
    }
    let (ok, _, err) = cluster::kubectl(&[
        "-n",
        ns,
        "delete",
        "httproute.gateway.networking.k8s.io",
        "web-canary",
    ])
    .await;
    assert!(ok, "delete the route: {err}");
    eventually("traffic back on the web pods", TRAFFIC_TIMEOUT, || async {
        let (v2, v1, failed) = one_window(demo).await?;
        if v2 == 0 && v1 >= 15 && failed == 0 {
            Ok(())
        } else {
            Err(format!("v1 {v1}, v2 {v2}, failed {failed}"))
        }
    })
    .await;
}

/// On the `web-v2` pods' HTTP port, a Server with two HTTPRoutes and an AuthorizationPolicy
/// that targets only one of them: the prober's requests on that route's path are admitted,
/// those on the other path of the same port get 403.
async fn route_authorization_admits_one_path_and_denies_another(client: &Client, ns: &str) {
    let containers: Vec<serde_json::Value> = [
        ("public", "/status/200", 9011),
        ("admin", "/status/201", 9012),
    ]
    .iter()
    .map(|(name, path, port)| {
        json!({
            "name": name, "image": real_node::demo_image(), "imagePullPolicy": "Never",
            "args": ["client", "--target", format!("web-v2.{ns}.svc.cluster.local:80"),
                     "--path", path, "--rate", "5", "--stats-addr", format!("0.0.0.0:{port}")],
        })
    })
    .collect();
    let prober = k8s::deployment_yaml(
        "prober",
        1,
        json!({}),
        json!({ "serviceAccountName": "prober", "containers": containers }),
    );
    let yaml = format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: prober}}
---
{prober}---
apiVersion: policy.trellis.dev/v1alpha1
kind: Server
metadata: {{name: web-v2-http}}
spec: {{podSelector: {{matchLabels: {{app: web-v2}}}}, port: http, accessPolicy: deny}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web-v2-public}}
spec:
  parentRefs: [{{group: policy.trellis.dev, kind: Server, name: web-v2-http}}]
  rules: [{{matches: [{{path: {{type: Exact, value: /status/200}}}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web-v2-admin}}
spec:
  parentRefs: [{{group: policy.trellis.dev, kind: Server, name: web-v2-http}}]
  rules: [{{matches: [{{path: {{type: Exact, value: /status/201}}}}]}}]
---
apiVersion: policy.trellis.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: probers}}
spec: {{identities: ["{}"]}}
---
apiVersion: policy.trellis.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: web-v2-public-from-probers}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: web-v2-public}}
  requiredAuthenticationRefs:
    - {{group: policy.trellis.dev, kind: MeshTLSAuthentication, name: probers}}
"#,
        identity("prober", ns)
    );
    k8s::apply_yaml(client, Some(ns), &yaml).await.unwrap();
    real_node::rollout(client, ns, "prober", ROLLOUT_TIMEOUT).await;
    let prober = real_node::pod_ip(&real_node::ready_pods(client, ns, "app=prober").await[0]);
    eventually(
        "the public path admitted and the admin path denied",
        TRAFFIC_TIMEOUT,
        || async {
            real_node::stats(prober, 9011, true).await?;
            real_node::stats(prober, 9012, true).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let public = real_node::stats(prober, 9011, false).await?;
            let admin = real_node::stats(prober, 9012, false).await?;
            if public.ok >= 5 && public.failed == 0 && admin.outcome("403") >= 5 && admin.ok == 0 {
                Ok(())
            } else {
                Err(format!("public {public:?}, admin {admin:?}"))
            }
        },
    )
    .await;
    for (kind, name) in [
        ("deployment.apps", "prober"),
        (
            "authorizationpolicy.policy.trellis.dev",
            "web-v2-public-from-probers",
        ),
        ("httproute.gateway.networking.k8s.io", "web-v2-public"),
        ("httproute.gateway.networking.k8s.io", "web-v2-admin"),
        ("server.policy.trellis.dev", "web-v2-http"),
        ("deployment.apps", "web-v2"),
        ("service", "web-v2"),
        ("service", "web-v1"),
    ] {
        let (ok, _, err) = cluster::kubectl(&["-n", ns, "delete", kind, name]).await;
        assert!(ok, "delete {kind} {name}: {err}");
    }
}

/// A Server named `name` for the web pods on `port` that lets every client in, so the demo
/// traffic is not denied while it exists.
fn web_server_yaml(name: &str, port: &str) -> String {
    format!(
        "apiVersion: policy.trellis.dev/v1alpha1\nkind: Server\nmetadata: {{name: {name}}}\n\
         spec: {{podSelector: {{matchLabels: {{app: web}}}}, port: {port}, accessPolicy: all-unauthenticated}}\n"
    )
}

async fn delete_server(ns: &str, name: &str) {
    let (ok, _, err) = cluster::kubectl(&[
        "-n",
        ns,
        "delete",
        "--ignore-not-found",
        "server.policy.trellis.dev",
        name,
    ])
    .await;
    assert!(ok, "delete Server {name}: {err}");
}

/// The admission webhooks on real pods. The validator refuses a Server that overlaps
/// another; with one controller replica deleted, policy objects are still admitted; with no
/// controller at all (the Deployment marked `trellis.dev/ignore` and scaled to 0), the
/// validator fails closed, while the injector fails open and the pod it could not inject is
/// reported (Event and metric). Unmarked, the operator brings both replicas back.
async fn admission_with_and_without_a_controller(client: &Client, ns: &str) {
    let controllers: Api<Deployment> = Api::namespaced(client.clone(), CONTROL_PLANE_NS);
    k8s::apply_yaml(client, Some(ns), &web_server_yaml("web-a", "http"))
        .await
        .unwrap();
    let overlap = k8s::apply_yaml(client, Some(ns), &web_server_yaml("web-b", "8080")).await;
    let refused = overlap.expect_err("a Server overlapping web-a must be refused");
    assert!(
        refused.contains("web-a"),
        "the refusal names the other Server: {refused}"
    );

    // One replica gone: the other answers every call, even while the first stops.
    let pods = real_node::ready_pods(
        client,
        CONTROL_PLANE_NS,
        "app.kubernetes.io/component=controller",
    )
    .await;
    assert_eq!(pods.len(), 2, "the controller runs two replicas");
    let victim = pods[0].name_any();
    Api::<Pod>::namespaced(client.clone(), CONTROL_PLANE_NS)
        .delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    for i in 0..10 {
        let name = format!("web-during-{i}");
        k8s::apply_yaml(client, Some(ns), &web_server_yaml(&name, "tcp"))
            .await
            .unwrap_or_else(|e| panic!("Server {name}, with one controller replica stopping: {e}"));
        delete_server(ns, &name).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("admission: 10 Servers admitted while controller pod {victim} stopped");

    // No controller: mark the Deployment so the operator leaves it alone, and scale it to 0.
    let mark = |value: Option<&str>, replicas: Option<i32>| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "annotations": { "trellis.dev/ignore": value } },
            "spec": { "replicas": replicas },
        })
    };
    controllers
        .patch(
            "trellis-controller",
            &PatchParams::default(),
            &Patch::Merge(mark(Some("true"), Some(0))),
        )
        .await
        .unwrap();
    eventually("no controller pod left", ROLLOUT_TIMEOUT, || async {
        let pods = Api::<Pod>::namespaced(client.clone(), CONTROL_PLANE_NS)
            .list(&ListParams::default().labels("app.kubernetes.io/component=controller"))
            .await
            .map_err(|e| e.to_string())?;
        if pods.items.is_empty() {
            Ok(())
        } else {
            Err(format!("{} pods", pods.items.len()))
        }
    })
    .await;
    let refused = k8s::apply_yaml(client, Some(ns), &web_server_yaml("web-unchecked", "tcp"))
        .await
        .expect_err("with no controller, the validator fails closed");
    assert!(
        refused.contains("validator.trellis.dev"),
        "the refusal names the webhook: {refused}"
    );
    eprintln!("admission: no controller, a Server is refused: {refused}");
    let scaled_down = tokio::time::Instant::now();
    let lone: Pod = serde_json::from_value(json!({
        "metadata": { "name": "unmeshed", "labels": { "app": "unmeshed" } },
        "spec": {
            "containers": [{ "name": "app", "image": real_node::demo_image(), "imagePullPolicy": "Never", "args": ["server"] }],
        },
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lone = pods
        .create(&Default::default(), &lone)
        .await
        .expect("the injector fails open");
    assert!(
        lone.spec
            .unwrap()
            .containers
            .iter()
            .all(|c| c.name != "trellis-proxy"),
        "nothing could inject it"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let note = eventually(
        "a ProxyNotInjected event on the pod",
        TRAFFIC_TIMEOUT,
        || async {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("ProxyNotInjected")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("unmeshed")
                })
                .and_then(|e| e.note)
                .ok_or_else(|| "no event yet".to_string())
        },
    )
    .await;
    assert!(
        note.contains("rollout restart"),
        "the event says how to fix it: {note}"
    );
    eprintln!(
        "admission: the uninjected pod reported {:.1?} after it was created: {note}",
        scaled_down.elapsed()
    );
    let mut reported = 0.0;
    for pod in real_node::ready_pods(
        client,
        CONTROL_PLANE_NS,
        "app.kubernetes.io/component=operator",
    )
    .await
    {
        let (_, body) = real_node::http("GET", real_node::pod_ip(&pod), 9990, "/metrics")
            .await
            .unwrap();
        reported += body
            .lines()
            .filter_map(|l| l.strip_prefix("trellis_operator_uninjected_pods "))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum::<f64>();
    }
    assert!(
        reported >= 1.0,
        "trellis_operator_uninjected_pods counts the pod"
    );
    pods.delete("unmeshed", &DeleteParams::default())
        .await
        .unwrap();

    // Unmarked: the operator restores two replicas, and admission works again.
    controllers
        .patch(
            "trellis-controller",
            &PatchParams::default(),
            &Patch::Merge(mark(None, None)),
        )
        .await
        .unwrap();
    let unmarked = tokio::time::Instant::now();
    eventually("policy objects admitted again", ROLLOUT_TIMEOUT, || async {
        k8s::apply_yaml(client, Some(ns), &web_server_yaml("web-checked", "tcp")).await
    })
    .await;
    eprintln!(
        "admission: policy objects admitted again {:.1?} after the mark was removed",
        unmarked.elapsed()
    );
    await_mesh_ready(client, real_node::version()).await;
    for name in ["web-a", "web-checked"] {
        delete_server(ns, name).await;
    }
}

/// A Mesh naming an image the node does not have: Degraded names it, the running control
/// plane keeps serving, and restoring the version heals it.
async fn a_missing_image_is_reported_and_changes_nothing(client: &Client, demo: &Demo) {
    reset_all(demo).await;
    set_version(client, "9.9.9-missing").await;
    eventually(
        "Degraded naming the missing image",
        ROLLOUT_TIMEOUT,
        || async {
            let mesh = meshes(client).get(MESH).await.map_err(|e| e.to_string())?;
            let conds = mesh.status.unwrap_or_default().conditions;
            let degraded = conds.iter().find(|c| c.type_ == "Degraded");
            match degraded {
                Some(c)
                    if c.status == "True"
                        && c.reason == "ImageUnavailable"
                        && c.message.contains("controller:9.9.9-missing") =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    set_version(client, real_node::version()).await;
    await_mesh_ready(client, real_node::version()).await;
    let stats =
        await_clean_traffic(demo, 5, "traffic while a control-plane image was missing").await;
    eprintln!("traffic while the image was missing: {stats:?}");
}

async fn set_version(client: &Client, version: &str) {
    meshes(client)
        .patch(
            MESH,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "version": version } })),
        )
        .await
        .unwrap();
}

async fn upgrade_rolls_the_control_plane_without_failed_requests(client: &Client, demo: &Demo) {
    let controllers: Api<Deployment> = Api::namespaced(client.clone(), CONTROL_PLANE_NS);
    let before = real_node::ready_pods(
        client,
        CONTROL_PLANE_NS,
        "app.kubernetes.io/component=controller",
    )
    .await;
    reset_all(demo).await;
    let next = real_node::next_version();
    set_version(client, &next).await;
    await_mesh_ready(client, &next).await;
    let d = controllers.get("trellis-controller").await.unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert!(image.ends_with(&format!("/controller:{next}")), "{image}");
    let after = real_node::ready_pods(
        client,
        CONTROL_PLANE_NS,
        "app.kubernetes.io/component=controller",
    )
    .await;
    assert!(
        after
            .iter()
            .all(|p| before.iter().all(|b| b.uid() != p.uid())),
        "the control plane's pods were not replaced"
    );
    // Keep the clients going on the new control plane a little, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut total = 0;
    for (name, _, port) in CLIENTS {
        let s = real_node::stats(demo.client, port, false).await.unwrap();
        assert_eq!(
            s.failed, 0,
            "client {name} had failed requests during the upgrade: {s:?}"
        );
        assert!(s.ok > 0, "client {name} sent nothing during the upgrade");
        total += s.ok;
    }
    eprintln!(
        "upgrade {} → {next}: {total} requests, 0 failed",
        real_node::version()
    );
}

async fn killing_the_leader_hands_over(client: &Client) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROL_PLANE_NS);
    let holder = || async {
        leases
            .get("trellis-operator")
            .await
            .ok()
            .and_then(|l| l.spec?.holder_identity)
    };
    let leader = eventually("a leader", Duration::from_secs(60), || async {
        holder().await.ok_or("no holder")
    })
    .await;
    let operators = real_node::ready_pods(
        client,
        CONTROL_PLANE_NS,
        "app.kubernetes.io/component=operator",
    )
    .await;
    let others: Vec<String> = operators
        .iter()
        .map(ResourceExt::name_any)
        .filter(|n| *n != leader)
        .collect();
    assert!(
        !others.is_empty(),
        "no standby operator replica besides {leader}"
    );
    let leader_pod = operators.iter().find(|p| p.name_any() == leader).unwrap();
    let container = leader_pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    // A crash: SIGKILL, so the Lease is not released and the standby waits for it to expire;
    // the pod is force-deleted so the kubelet does not restart it in place (a restarted
    // leader would simply renew its own Lease).
    let started = tokio::time::Instant::now();
    real_node::kill_container(&container).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), CONTROL_PLANE_NS);
    pods.delete(
        &leader,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    let new = eventually(
        "a standby replica to take the lease",
        Duration::from_secs(90),
        || async {
            match holder().await {
                Some(h) if others.contains(&h) => Ok(h),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    eprintln!(
        "leader {leader} SIGKILLed; {new} took over after {:?}",
        started.elapsed()
    );
    // The Deployment replaces the killed pod; the new one waits as the standby.
    rollout_operator(client).await;
    // The new leader reconciles: a spec change is observed and the Mesh stays Ready.
    meshes(client)
        .patch(
            MESH,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "controlPlane": { "logLevel": "debug" } } })),
        )
        .await
        .unwrap();
    await_mesh_ready(client, &real_node::next_version()).await;
}

async fn memory_of_real_containers(client: &Client, ns: &str) {
    let mut lines = Vec::new();
    for (pod_ns, selector) in [
        (CONTROL_PLANE_NS, "app.kubernetes.io/component=controller"),
        (CONTROL_PLANE_NS, "app.kubernetes.io/component=operator"),
        (ns, "app=web"),
        (ns, "app=client"),
    ] {
        for pod in real_node::ready_pods(client, pod_ns, selector)
            .await
            .iter()
            .take(1)
        {
            let st = pod.status.clone().unwrap_or_default();
            for c in st
                .init_container_statuses
                .iter()
                .flatten()
                .chain(st.container_statuses.iter().flatten())
            {
                if let Some(id) = &c.container_id
                    && let Some((usage, ws)) = real_node::container_memory(id)
                {
                    lines.push(format!(
                        "{} {}: usage {:.1} MiB, working set {:.1} MiB",
                        pod.name_any(),
                        c.name,
                        usage as f64 / 1048576.0,
                        ws as f64 / 1048576.0
                    ));
                }
            }
        }
    }
    eprintln!("container memory (cgroups):\n  {}", lines.join("\n  "));
    assert!(
        lines.iter().any(|l| l.contains("trellis-proxy")),
        "no proxy cgroup found: {lines:?}"
    );
}

async fn deleting_the_mesh_removes_everything(client: &Client) {
    k8s::delete_and_await(
        &meshes(client),
        MESH,
        &DeleteParams::background(),
        "the Mesh gone (finalizer done)",
        ROLLOUT_TIMEOUT,
        |m| match m {
            None => Ok(()),
            Some(m) => Err(format!("{:?}", m.status)),
        },
    )
    .await;
    let lp = ListParams::default().labels(&format!("trellis.dev/mesh={MESH}"));
    let left = leftovers(client, &lp).await;
    assert!(
        left.is_empty(),
        "the Mesh's objects are still there: {left:?}"
    );
}

async fn leftovers(client: &Client, lp: &ListParams) -> Vec<String> {
    let mut left = Vec::new();
    macro_rules! collect {
        ($kind:ty, $api:expr) => {{
            let api: Api<$kind> = $api;
            for o in api.list_metadata(lp).await.unwrap().items {
                left.push(format!("{} {}", stringify!($kind), o.name_any()));
            }
        }};
    }
    collect!(
        Deployment,
        Api::namespaced(client.clone(), CONTROL_PLANE_NS)
    );
    collect!(Service, Api::namespaced(client.clone(), CONTROL_PLANE_NS));
    collect!(ConfigMap, Api::namespaced(client.clone(), CONTROL_PLANE_NS));
    collect!(Secret, Api::namespaced(client.clone(), CONTROL_PLANE_NS));
    collect!(ClusterRole, Api::all(client.clone()));
    collect!(ClusterRoleBinding, Api::all(client.clone()));
    collect!(MutatingWebhookConfiguration, Api::all(client.clone()));
    collect!(ValidatingWebhookConfiguration, Api::all(client.clone()));
    left
}

/// Removes the workloads, the Mesh and `config/install/` (not the CRDs), and waits for the
/// namespaces to go, so later tests find the cluster as it was.
async fn uninstall(client: &Client, apps: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(apps, &DeleteParams::background()).await;
    if meshes(client).get_opt(MESH).await.ok().flatten().is_some() {
        let _ = meshes(client)
            .delete(MESH, &DeleteParams::background())
            .await;
        let gone = tokio::time::timeout(Duration::from_secs(120), async {
            while meshes(client).get_opt(MESH).await.ok().flatten().is_some() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
        .await;
        if gone.is_err() {
            // No operator left to run the finalizer (the test failed before it was up).
            eprintln!("Mesh {MESH} not finalized in 120 s: removing its finalizer");
            let _ = meshes(client)
                .patch(
                    MESH,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
                )
                .await;
        }
    }
    let mut install = yaml_files("config/install");
    install.reverse();
    for yaml in install {
        for obj in k8s::parse_yaml(&yaml) {
            let kind = obj
                .types
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            let mut args = vec![
                "delete".to_string(),
                "--ignore-not-found".to_string(),
                "--wait=false".to_string(),
                kind.to_lowercase(),
                obj.name_any(),
            ];
            if let Some(ns) = obj.namespace() {
                args.extend(["-n".to_string(), ns]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = cluster::kubectl(&args).await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            let cp = namespaces.get_opt(CONTROL_PLANE_NS).await.ok().flatten();
            let a = namespaces.get_opt(apps).await.ok().flatten();
            if cp.is_none() && a.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
}
