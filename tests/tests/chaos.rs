//! Chaos under load in the mesh in network namespaces (see `trellis_tests::chaos`): the
//! control plane killed, a partition between the proxies and the control plane, a hung
//! endpoint and EndpointSlice churn, each while a steady client sends HTTP/1 through its
//! proxy, over keep-alive connections, to the pods behind the `web` Service. The apiserver
//! restart is in `restart_apiserver.rs`, so that it runs after every other cluster test.
//!
//! Needs root, iproute2, iptables and the local cluster (`tests/cluster/cluster up`).

use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::time::{Instant, sleep};
use trellis_api::well_known;
use trellis_tests::{
    chaos::{Fixture, HTTP, PHASE, SPARE, WORKERS, report, serial},
    netns::{GATEWAY, PodNs},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn established_traffic_survives_the_loss_of_the_control_plane() {
    serial("chaos-cp", |client, ns| async move {
        let mut f = Fixture::start(client, &ns, &[("web-a", "web"), ("web-b", "web")]).await;
        let load = f.load().await;
        let calm = Instant::now();
        sleep(PHASE).await;
        let calm = report("control plane", "calm", load.report(calm));

        let fault = Instant::now();
        f.mesh.stop_control_plane();
        sleep(2 * PHASE).await;
        let down = report("control plane", "killed", load.report(fault));
        let restart = Instant::now();
        f.mesh.start_control_plane();
        // The proxies find the restarted control plane: a new pod gets a certificate, and
        // discovery sends it the traffic when it replaces the others.
        f.add_web("web-c", SPARE).await;
        f.swap(&["web-a", "web-b"], "web-c").await;
        eprintln!(
            "chaos: control plane: restarted; a new endpoint got traffic {:.2}s after the restart",
            (Instant::now() - restart).as_secs_f64()
        );
        let after = report("control plane", "restarted", load.report(restart));
        load.stop().await;
        assert_eq!(calm.failed, 0, "calm: {calm}");
        assert_eq!(down.failed, 0, "with the control plane killed: {down}");
        assert_eq!(after.failed, 0, "after the restart: {after}");
    })
    .await;
}

/// The control plane's gRPC ports (identity, destination, policy).
const CONTROL_PLANE_PORTS: [u16; 3] = [
    well_known::IDENTITY_PORT,
    well_known::DESTINATION_PORT,
    well_known::POLICY_PORT,
];

/// Drops (or, with `on == false`, stops dropping) every packet between `pod` and the
/// control plane's gRPC ports, both ways, as a partition would: connections hang, nothing is
/// reset.
fn partition(pod: &PodNs, on: bool) {
    let ports = CONTROL_PLANE_PORTS.map(|p| p.to_string()).join(",");
    let gateway = GATEWAY.to_string();
    let action = if on { "-I" } else { "-D" };
    for (chain, addr, port) in [("OUTPUT", "-d", "--dports"), ("INPUT", "-s", "--sports")] {
        pod.exec(
            "iptables",
            &[
                action,
                chain,
                addr,
                &gateway,
                "-p",
                "tcp",
                "-m",
                "multiport",
                port,
                &ports,
                "-j",
                "DROP",
            ],
        );
    }
}

/// Destroys the host's side of every connection to the control plane's gRPC ports (`ss -K`),
/// without a word to the peers (the partition drops the resets).
fn forget_control_plane_connections() {
    let sports = CONTROL_PLANE_PORTS.map(|p| format!("sport = :{p}"));
    let filter = format!("( {} )", sports.join(" or "));
    let out = std::process::Command::new("ss")
        .args(["-K", "-tn", &filter])
        .output()
        .expect("run ss");
    assert!(out.status.success(), "ss -K: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_a_partition_between_proxies_and_the_control_plane() {
    serial("chaos-partition", |client, ns| async move {
        let mut f = Fixture::start(client, &ns, &[("web-a", "web"), ("web-b", "web")]).await;
        let load = f.load().await;
        let pods: Vec<Arc<PodNs>> = ["client", "web-a", "web-b"]
            .iter()
            .map(|name| f.mesh.pod(name).net.clone())
            .collect();
        let fault = Instant::now();
        for pod in &pods {
            partition(pod, true);
        }
        // A pod that replaces the others during the partition stays unknown to the client,
        // which keeps sending to the old ones (still serving).
        f.add_web("web-c", SPARE).await;
        for name in ["web-a", "web-b"] {
            f.relabel(name, SPARE).await;
        }
        f.relabel("web-c", "web").await;
        // Behind the partition the control plane goes away with its host's memory of the
        // connections (as when its node dies), and comes back: the proxies' connections are
        // dead, and nothing but their own keepalive can tell them.
        f.mesh.stop_control_plane();
        forget_control_plane_connections();
        f.mesh.start_control_plane();
        sleep(2 * PHASE).await;
        let cut = report("partition", "cut", load.report(fault));
        assert_eq!(f.served("web-c"), 0, "the partition did not cut discovery");
        for pod in &pods {
            partition(pod, false);
        }
        let healed = Instant::now();
        // Discovery resumes: the new pod gets the traffic.
        f.await_traffic("web-c").await;
        eprintln!(
            "chaos: partition: healed; a new endpoint got traffic {:.2}s after healing",
            healed.elapsed().as_secs_f64()
        );
        let after = report("partition", "healed", load.report(healed));
        load.stop().await;
        assert_eq!(cut.failed, 0, "during the partition: {cut}");
        assert_eq!(after.failed, 0, "after healing: {after}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_moves_away_from_a_hung_endpoint() {
    serial("chaos-hang", |client, ns| async move {
        let f = Fixture::start(client, &ns, &[("web-a", "web"), ("web-b", "web")]).await;
        let load = f.load().await;
        f.await_traffic("web-a").await;
        f.await_traffic("web-b").await;

        // web-b's proxy stops (SIGSTOP): its sockets stay open and the kernel still
        // accepts connections, but nothing answers.
        let hung = &f.mesh.pod("web-b").proxy;
        let fault = Instant::now();
        hung.signal(Signal::SIGSTOP);
        sleep(2 * PHASE).await;
        let during = report("hung endpoint", "hung", load.report(fault));
        let settled = report(
            "hung endpoint",
            "hung, second half",
            load.report(fault + PHASE),
        );
        hung.signal(Signal::SIGCONT);
        let resumed = Instant::now();
        f.await_traffic("web-b").await;
        sleep(PHASE).await;
        let after = report("hung endpoint", "resumed", load.report(resumed));
        load.stop().await;
        assert!(
            during.failed <= 2 * WORKERS,
            "at most the requests already sent to it may fail: {during}"
        );
        assert_eq!(settled.failed, 0, "traffic moved away: {settled}");
        assert_eq!(after.failed, 0, "after it resumed: {after}");
    })
    .await;
}

/// An EndpointSlice of Service `web` that this test manages, listing `endpoints`
/// (`(pod, address)`).
fn churn_slice(ns: &str, endpoints: &[(&str, Ipv4Addr)]) -> serde_json::Value {
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|(pod, addr)| {
            json!({
                "addresses": [addr.to_string()],
                "conditions": { "ready": true },
                "targetRef": { "kind": "Pod", "namespace": ns, "name": pod },
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-churn",
            "labels": {
                "kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "chaos.trellis.dev",
            },
        },
        "addressType": "IPv4",
        "ports": [{ "name": "http", "port": HTTP, "protocol": "TCP" }],
        "endpoints": endpoints,
    })
}

/// Updates per second of the churn.
const CHURN_RATE: u32 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_through_endpoint_churn() {
    serial("chaos-churn", |client, ns| async move {
        // Neither pod is selected by the Service: the test's own EndpointSlice alone says
        // which one is behind it.
        let f = Fixture::start(client, &ns, &[("web-a", SPARE), ("web-b", SPARE)]).await;
        let slices: Api<EndpointSlice> = Api::namespaced(f.mesh.client.clone(), &ns);
        let apply = PatchParams::apply("chaos.trellis.dev").force();
        let a = [("web-a", f.webs["web-a"].0)];
        let b = [("web-b", f.webs["web-b"].0)];
        slices
            .patch("web-churn", &apply, &Patch::Apply(churn_slice(&ns, &a)))
            .await
            .unwrap();
        let load = f.load().await;
        let calm = Instant::now();
        sleep(2 * PHASE).await;
        let calm = report("endpoint churn", "calm", load.report(calm));

        // The endpoint behind the Service flips between web-a and web-b CHURN_RATE times a
        // second.
        let churn = Instant::now();
        let served_before = (f.served("web-a"), f.served("web-b"));
        let mut tick = tokio::time::interval(Duration::from_secs(1) / CHURN_RATE);
        let mut updates = 0u32;
        let mut in_flight = tokio::task::JoinSet::new();
        while churn.elapsed() < 2 * PHASE {
            tick.tick().await;
            let slice = churn_slice(&ns, if updates.is_multiple_of(2) { &b } else { &a });
            let (slices, apply) = (slices.clone(), apply.clone());
            in_flight.spawn(async move {
                slices
                    .patch("web-churn", &apply, &Patch::Apply(slice))
                    .await
                    .map(|_| ())
            });
            updates += 1;
            // A bounded number of updates in flight keeps the pace without piling up.
            while in_flight.len() > 8 {
                in_flight.join_next().await.unwrap().unwrap().unwrap();
            }
        }
        while let Some(done) = in_flight.join_next().await {
            done.unwrap().unwrap();
        }
        let elapsed = churn.elapsed();
        let churned = report("endpoint churn", "churn", load.report(churn));
        let served = (
            f.served("web-a") - served_before.0,
            f.served("web-b") - served_before.1,
        );
        eprintln!(
            "chaos: endpoint churn: {updates} EndpointSlice updates in {:.1}s ({:.0}/s); \
             web-a answered {} requests meanwhile, web-b {}",
            elapsed.as_secs_f64(),
            f64::from(updates) / elapsed.as_secs_f64(),
            served.0,
            served.1,
        );
        load.stop().await;
        assert_eq!(calm.failed, 0, "calm: {calm}");
        assert_eq!(churned.failed, 0, "during the churn: {churned}");
        assert!(
            served.0 > 0 && served.1 > 0,
            "the churn moved no traffic: {served:?}"
        );
        assert!(
            f64::from(updates) / elapsed.as_secs_f64() >= f64::from(CHURN_RATE) * 0.8,
            "the churn fell behind its rate: {updates} in {elapsed:?}"
        );
    })
    .await;
}
