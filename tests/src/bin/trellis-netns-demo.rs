//! The quick start's meshed workloads: runs `config/samples/mesh.yaml` with the control plane
//! as a local `trellis-operator all-in-one` process, starts two meshed pods in network
//! namespaces (`web`, an HTTP app, and `client`), sends plain HTTP from `client` to the
//! Service name, and prints what the proxies saw. Used by `tests/demo`; needs root and the
//! local cluster. Everything it made is removed at exit, except the cluster; set
//! `TRELLIS_DEMO_KEEP=1` to keep the mesh and workloads running until Ctrl-C.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a demo that prints its findings and stops at the first failure"
)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use trellis_tests::{
    cluster, eventually,
    mesh::{MeshNet, MeshSetup},
    proxy::serve_http_app,
};

/// Namespace of the demo workloads.
const NS: &str = "trellis-demo";
/// Requests the client sends.
const REQUESTS: usize = 20;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let client = cluster::client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_namespace_gone(&namespaces).await;
    let obj = serde_json::from_value(serde_json::json!({ "metadata": { "name": NS } })).unwrap();
    namespaces
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();

    let started = tokio::time::Instant::now();
    let mut mesh = MeshNet::start_with(client.clone(), MeshSetup::sample(NS)).await;
    println!(
        "control plane up and Mesh {} Ready in {:.1}s (logs in {})",
        mesh.mesh_name,
        started.elapsed().as_secs_f64(),
        mesh.log_dir().display()
    );
    show("kubectl get mesh", &["get", "mesh"]).await;

    mesh.add_service("web", &[("http", 80)]).await;
    let web = mesh.add_pod("web", "web", "web", &[("http", 80)]).await;
    let seen = serve_http_app(web.listen(80), "web");
    let client_pod = mesh.add_pod("client", "client", "client", &[]).await;
    println!(
        "pods: web {} and client {}, each a network namespace with proxy-init rules and a proxy (uid 2102)",
        web.addr(),
        client_pod.addr()
    );

    let url = format!("http://web.{NS}.svc.cluster.local/");
    let mut ok = 0;
    let mut last = String::new();
    for _ in 0..REQUESTS {
        let out = tokio::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                client_pod.ns(),
                "curl",
                "-sS",
                "--max-time",
                "10",
            ])
            .args(["-o", "-", "-w", "\n%{http_code}", &url])
            .output()
            .await
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some((body, "200")) = text.rsplit_once('\n') {
            ok += 1;
            last = body.to_string();
        } else {
            last = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    println!("\nclient: curl {url} x{REQUESTS}: {ok} answered 200; the last said:\n  {last}");
    println!("web app saw {} requests", seen.lock().len());

    for (pod, direction) in [("client", "outbound"), ("web", "inbound")] {
        println!("\n{pod} proxy, {direction} golden metrics (tls and peer identity labels):");
        let metrics = mesh.metrics(pod).await;
        for line in metrics.lines().filter(|l| {
            (l.starts_with("request_total{") || l.starts_with("response_total{"))
                && l.contains(&format!("direction=\"{direction}\""))
                && !l.contains(":4191")
        }) {
            println!("  {line}");
        }
    }

    show("kubectl get mesh -o wide", &["get", "mesh", "-o", "wide"]).await;
    let all_ok = ok == REQUESTS;
    if cluster::env("TRELLIS_DEMO_KEEP").as_deref() == Some("1") {
        println!("\nThe mesh keeps running; press Ctrl-C to remove it.");
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(mesh);
    let _ = namespaces.delete(NS, &DeleteParams::background()).await;
    println!("\nThe demo workloads, their network namespaces and the Mesh were removed.");
    assert!(all_ok, "only {ok} of {REQUESTS} requests succeeded");
}

/// Waits until a namespace left by an earlier demo is gone.
async fn wait_namespace_gone(namespaces: &Api<Namespace>) {
    if namespaces.get_opt(NS).await.unwrap().is_some() {
        let _ = namespaces.delete(NS, &DeleteParams::background()).await;
        eventually(
            &format!("namespace {NS} from an earlier demo to go"),
            Duration::from_secs(120),
            || async {
                match namespaces.get_opt(NS).await {
                    Ok(None) => Ok(()),
                    other => Err(format!("{:?}", other.map(|n| n.map(|n| n.status)))),
                }
            },
        )
        .await;
    }
}

/// Runs kubectl with `args` and prints its output under `title`.
async fn show(title: &str, args: &[&str]) {
    let (_, out, err) = cluster::kubectl(args).await;
    println!("\n$ {title}\n{out}{err}");
}
