//! End to end: the mesh in network namespaces (see `trellis_tests::mesh`).
//!
//! Three pods, each a network namespace with the injector's `trellis-proxy-init` rules and a
//! `trellis-proxy` running as uid 2102: `web` (HTTP on 80, gRPC on 8080, a TCP echo on 7000),
//! `client` and `intruder`. The control plane is `trellis-operator all-in-one` against the
//! local cluster. A Server and an AuthorizationPolicy admit only `client`'s identity on
//! `web`'s HTTP port. Apps talk to the Service by name, unaware of the proxies.
//!
//! Needs root, iproute2, iptables, curl and the local cluster (`tests/cluster/cluster up`).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use trellis_tests::{
    DEFAULT_TIMEOUT, eventually,
    k8s::{apply_yaml, with_temp_ns},
    mesh::MeshNet,
    netns::PodNs,
    proxy::{http2_send, serve_echo, serve_http_app},
};

const HTTP: u16 = 80;
const GRPC: u16 = 8080;
const ECHO: u16 = 7000;

/// Runs curl in `pod` against `url`; returns the status code and the body.
async fn curl(pod: &PodNs, url: &str) -> (u16, String) {
    let out = tokio::process::Command::new("ip")
        .args(["netns", "exec", pod.ns(), "curl", "-sS", "--max-time", "10"])
        .args(["-w", "\n%{http_code}", url])
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    (code.parse().unwrap_or(0), format!("{body}{stderr}"))
}

/// One sample of `metric` whose labels hold every `label=value` in `labels`.
fn sample<'a>(metrics: &'a str, metric: &str, labels: &[&str]) -> Option<&'a str> {
    metrics.lines().find(|line| {
        line.starts_with(&format!("{metric}{{")) && labels.iter().all(|l| line.contains(l))
    })
}

fn value(sample: &str) -> f64 {
    sample.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Asserts that the proxy of pod `pod` counted `metric` with every label in `labels` at
/// least once.
async fn assert_counted(mesh: &MeshNet, pod: &str, metric: &str, labels: &[&str]) {
    let metrics = mesh.metrics(pod).await;
    let line = sample(&metrics, metric, labels)
        .unwrap_or_else(|| panic!("no {metric} with {labels:?} from {pod} in:\n{metrics}"));
    assert!(value(line) >= 1.0, "{line}");
}

async fn grpc_health(pod: Arc<PodNs>, addr: SocketAddr) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let pod = pod.clone();
            async move { pod.connect(addr).await.map(TokioIo::new) }
        }))
        .await
        .unwrap();
    let rsp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    rsp.into_inner().status()
}

/// Sends `line` from `pod` to the TCP echo server at `addr` and asserts it comes back.
async fn assert_echoes(pod: &Arc<PodNs>, addr: SocketAddr, line: &[u8]) {
    let mut stream = pod.connect(addr).await.unwrap();
    stream.write_all(line).await.unwrap();
    let mut buf = vec![0; line.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
        .await
        .expect("echo answered in time")
        .unwrap();
    assert_eq!(buf, line, "echo from {addr}");
}

async fn h2_get(pod: &Arc<PodNs>, addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let stream = pod.connect(addr).await.unwrap();
    let req = http::Request::get(format!("http://{host}{path}"))
        .body(String::new())
        .unwrap();
    let rsp = http2_send(stream, req).await;
    (rsp.status().as_u16(), rsp.into_body())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_carries_http_grpc_and_tcp_over_mtls_and_enforces_policy() {
    with_temp_ns("netns-mesh", |client, ns| async move {
        let mut mesh = MeshNet::start(client.clone(), &ns).await;
        let svc_ip = mesh
            .add_service("web", &[("http", HTTP), ("grpc", GRPC), ("echo", ECHO)])
            .await;
        let web_identity = format!("web.{ns}.serviceaccount.identity.trellis.cluster.local");
        let client_identity = format!("client.{ns}.serviceaccount.identity.trellis.cluster.local");
        apply_yaml(
            &client,
            Some(&ns),
            &trellis_tests::k8s::web_http_policy_yaml(&client_identity, Some("HTTP/1")),
        )
        .await
        .unwrap();

        let web = mesh
            .add_pod(
                "web",
                "web",
                "web",
                &[("http", HTTP), ("grpc", GRPC), ("echo", ECHO)],
            )
            .await;
        let seen = serve_http_app(web.listen(HTTP), "web");
        let (_reporter, health) = tonic_health::server::health_reporter();
        let grpc_listener = web.listen(GRPC);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                    grpc_listener,
                )),
        );
        serve_echo(web.listen(ECHO), b"");
        let cli = mesh.add_pod("client", "client", "client", &[]).await;
        let intruder = mesh.add_pod("intruder", "intruder", "intruder", &[]).await;
        let web_url = |path: &str| format!("http://web.{ns}.svc.cluster.local{path}");
        let url = web_url("/hello");

        // Plain HTTP/1 to the Service name, carried over mTLS. The first requests may race
        // the Service's EndpointSlice and the policy reaching the proxies.
        let body = eventually("client reaches web by name", DEFAULT_TIMEOUT, || async {
            match curl(&cli, &url).await {
                (200, body) => Ok(body),
                other => Err(other),
            }
        })
        .await;
        assert!(body.contains("path=/hello app=web"), "{body}");
        assert!(
            body.contains(&format!("client-id={client_identity}")),
            "the server proxy must tell the app the client's identity: {body}"
        );
        assert_counted(
            &mesh,
            "web",
            "request_total",
            &[
                r#"direction="inbound""#,
                r#"tls="true""#,
                &format!(r#"client_id="{client_identity}""#),
            ],
        )
        .await;
        assert_counted(
            &mesh,
            "client",
            "request_total",
            &[
                r#"direction="outbound""#,
                r#"tls="true""#,
                &format!(r#"server_id="{web_identity}""#),
                r#"dst_service="web""#,
            ],
        )
        .await;

        // HTTP/2 (h2c from the app), gRPC and opaque TCP, all through the Service address.
        let (code, body) = h2_get(&cli, (svc_ip, HTTP).into(), "web", "/h2").await;
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("version=HTTP/2.0"), "{body}");
        assert_eq!(
            grpc_health(cli.clone(), (svc_ip, GRPC).into()).await,
            ServingStatus::Serving
        );
        assert_echoes(&cli, (svc_ip, ECHO).into(), b"ping over tcp\n").await;

        // An identity the policy does not name gets 403; the app never sees the request.
        let (code, body) = curl(&intruder, &web_url("/forbidden")).await;
        assert_eq!(code, 403, "{body}");
        assert!(
            !seen.lock().iter().any(|p| p == "/forbidden"),
            "the app saw a denied request: {:?}",
            seen.lock()
        );
        let intruder_identity =
            format!("intruder.{ns}.serviceaccount.identity.trellis.cluster.local");
        let metrics = mesh.metrics("web").await;
        sample(
            &metrics,
            "inbound_http_authz_deny_total",
            &[
                r#"tls="true""#,
                &format!(r#"client_id="{intruder_identity}""#),
                r#"srv_name="web-http""#,
            ],
        )
        .unwrap_or_else(|| panic!("the denial is not in the server proxy's metrics:\n{metrics}"));

        // The control plane goes away: traffic that flows keeps flowing, over new
        // connections too.
        mesh.stop_control_plane();
        for i in 0..5 {
            let (code, body) = curl(&cli, &web_url(&format!("/after-{i}"))).await;
            assert_eq!(
                code, 200,
                "request {i} after the control plane stopped: {body}"
            );
        }
        assert_echoes(&cli, (svc_ip, ECHO).into(), b"still here\n").await;
        let (code, _) = curl(&intruder, &web_url("/again")).await;
        assert_eq!(code, 403, "policy stays enforced without the control plane");
        assert!(seen.lock().iter().any(|p| p == "/after-4"));

        // The control plane comes back: the proxies reconnect and follow a policy change
        // made meanwhile (the intruder is now listed).
        apply_yaml(
            &client,
            Some(&ns),
            &format!(
                r#"
apiVersion: policy.trellis.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: web-clients}}
spec:
  identities: ["{client_identity}", "{intruder_identity}"]
"#
            ),
        )
        .await
        .unwrap();
        mesh.start_control_plane();
        let url = web_url("/welcome");
        eventually(
            "the reconnected proxy admits the newly listed identity",
            DEFAULT_TIMEOUT,
            || async {
                match curl(&intruder, &url).await {
                    (200, body) => Ok(body),
                    other => Err(other),
                }
            },
        )
        .await;
        assert!(seen.lock().iter().any(|p| p == "/welcome"));
        drop(mesh);
    })
    .await;
}
