//! The pods of every configuration (`benchmarking.md` §4), all on one bridge.
//!
//! - `direct`: oha and nginx in the unmeshed server namespace, over loopback.
//! - `direct-veth`: oha in an unmeshed client namespace, nginx in the unmeshed server
//!   namespace: the mesh's path without redirect rules or proxies.
//! - `trellis`: oha in the meshed `client` pod, nginx in the meshed `web` pod, both behind
//!   their proxies, which talk mTLS.

use std::{net::Ipv4Addr, path::Path, process::Command, sync::Arc};

use kube::Client;
use trellis_tests::{
    DEFAULT_TIMEOUT, cluster, eventually, gateway, k8s,
    mesh::MeshNet,
    netns::{NsProcess, PodNs},
};

use crate::{
    config::{Config, Dial, Setup},
    nginx,
};

/// HTTPRoutes on the `trellis-routes` Service.
pub(crate) const ROUTES: usize = 50;

/// Address of the unmeshed client namespace.
const PLAIN_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
/// Address of the unmeshed server namespace.
const PLAIN_SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);

/// A process whose CPU time and memory the bench follows.
#[derive(Clone, Debug)]
pub(crate) struct Watched {
    /// `nginx`, `client proxy` or `server proxy`.
    pub(crate) role: &'static str,
    pub(crate) pid: u32,
}

/// Where one configuration's load comes from and goes to.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) setup: Setup,
    /// The namespace oha runs in.
    pub(crate) client: Arc<PodNs>,
    pub(crate) url: String,
    /// nginx first, then the proxies, if any.
    pub(crate) processes: Vec<Watched>,
}

/// Every configuration's pods and processes; dropping it removes them.
pub(crate) struct Topology {
    pub(crate) targets: Vec<Target>,
    /// Identity of the meshed client pod.
    pub(crate) client_identity: String,
    /// Identity of the meshed server pod.
    pub(crate) server_identity: String,
    // Fields drop in order: nginx before the mesh takes its namespaces away.
    _nginx: Vec<NsProcess>,
    pub(crate) mesh: MeshNet,
}

impl Topology {
    pub(crate) fn target(&self, setup: Setup) -> &Target {
        self.targets
            .iter()
            .find(|t| t.setup == setup)
            .expect("every configured setup has a target")
    }
}

/// Starts the mesh, the unmeshed namespaces, both nginx instances and both proxies, and
/// pins nginx and the proxies to the server CPU.
pub(crate) async fn build(client: Client, ns: &str, config: &Config, dir: &Path) -> Topology {
    let routed = config.setups.contains(&Setup::TrellisRoutes);
    if routed {
        gateway::install_crds(&client).await;
    }
    let mut mesh = MeshNet::start(client.clone(), ns).await;
    let plain_server = mesh.add_plain_pod("srv", PLAIN_SERVER);
    let plain_client = mesh.add_plain_pod("cli", PLAIN_CLIENT);
    let plain_nginx = nginx::start(&plain_server, &dir.join("nginx-plain")).await;

    let svc_ip = mesh.add_service("web", &[("http", nginx::PORT)]).await;
    let routes_ip = if routed {
        let ip = mesh
            .add_service_selecting("web-routes", "web", &[("http", nginx::PORT)])
            .await;
        add_routes(&client, ns).await;
        Some(ip)
    } else {
        None
    };
    let web = mesh
        .add_pod("web", "web", "web", &[("http", nginx::PORT)])
        .await;
    let mesh_nginx = nginx::start(&web, &dir.join("nginx-mesh")).await;
    let meshed_client = mesh.add_pod("client", "client", "client", &[]).await;
    let client_proxy = mesh.pod("client").proxy.pid();
    let server_proxy = mesh.pod("web").proxy.pid();
    for pid in [client_proxy, server_proxy] {
        pin_all_threads(pid, nginx::SERVER_CPU);
    }

    let url = |addr: Ipv4Addr| format!("http://{addr}:{}/", nginx::PORT);
    let trellis_addr = match config.dial {
        Dial::PodIp => web.addr(),
        Dial::Service => svc_ip,
    };
    let targets = config
        .setups
        .iter()
        .map(|&setup| match setup {
            Setup::Direct => Target {
                setup,
                client: plain_server.clone(),
                url: url(Ipv4Addr::LOCALHOST),
                processes: vec![nginx_watched(&plain_nginx)],
            },
            Setup::DirectVeth => Target {
                setup,
                client: plain_client.clone(),
                url: url(PLAIN_SERVER),
                processes: vec![nginx_watched(&plain_nginx)],
            },
            Setup::Trellis | Setup::TrellisRoutes => Target {
                setup,
                client: meshed_client.clone(),
                url: url(match (setup, routes_ip) {
                    (Setup::TrellisRoutes, Some(ip)) => ip,
                    _ => trellis_addr,
                }),
                processes: vec![
                    nginx_watched(&mesh_nginx),
                    Watched {
                        role: "client proxy",
                        pid: client_proxy,
                    },
                    Watched {
                        role: "server proxy",
                        pid: server_proxy,
                    },
                ],
            },
        })
        .collect();
    Topology {
        targets,
        client_identity: mesh.pod("client").identity.clone(),
        server_identity: mesh.pod("web").identity.clone(),
        _nginx: vec![plain_nginx, mesh_nginx],
        mesh,
    }
}

/// [`ROUTES`] HTTPRoutes on `web-routes`: `/r<i>` prefixes and a catch-all, which the
/// bench's `GET /` matches; waits until the controller has accepted the last one.
async fn add_routes(client: &Client, ns: &str) {
    let route = |i: usize, prefix: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r{i}}}\n\
             spec:\n  parentRefs: [{{group: core, kind: Service, name: web-routes, port: {}}}]\n  \
             rules: [{{matches: [{{path: {{type: PathPrefix, value: '{prefix}'}}}}]}}]\n",
            nginx::PORT
        )
    };
    let yaml: Vec<String> = (0..ROUTES - 1)
        .map(|i| route(i, &format!("/r{i}")))
        .chain([route(ROUTES - 1, "/")])
        .collect();
    k8s::apply_yaml(client, Some(ns), &yaml.join("---\n"))
        .await
        .expect("apply the bench's routes");
    let last = format!("r{}", ROUTES - 1);
    eventually(
        "the controller to accept the bench's routes",
        DEFAULT_TIMEOUT,
        || async {
            let (ok, out, err) = cluster::kubectl(&[
                "-n",
                ns,
                "get",
                "httproute.gateway.networking.k8s.io",
                &last,
                "-o",
                "jsonpath={.status.parents[0].conditions[?(@.type==\"Accepted\")].status}",
            ])
            .await;
            if ok && out.trim() == "True" {
                Ok(())
            } else {
                Err(format!("{out}{err}"))
            }
        },
    )
    .await;
}

fn nginx_watched(process: &NsProcess) -> Watched {
    Watched {
        role: "nginx",
        pid: process.pid(),
    }
}

/// Restricts every thread of `pid` (and the threads they start later) to `cpu`.
pub(crate) fn pin_all_threads(pid: u32, cpu: &str) {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &pid.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run taskset: {e}"));
    assert!(
        out.status.success(),
        "taskset -a -p -c {cpu} {pid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
