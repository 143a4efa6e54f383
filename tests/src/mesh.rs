//! A mesh whose pods are network namespaces, for the end-to-end test, the demo and the proxy
//! benchmark.
//!
//! [`MeshNet::start`] runs `trellis-operator all-in-one` as a process against the local
//! cluster, with its gRPC servers on the bridge ([`netns::GATEWAY`]), and applies a Mesh whose
//! control plane lives in `<ns>-cp`. [`MeshNet::add_pod`] creates a Pod in the cluster on a
//! kwok node of our own, whose pod CIDR ([`NODE_POD_CIDR`]) lies inside the bridge's network,
//! so the address kwok gives the pod is the one its network namespace gets, as a CNI plugin
//! would do. The pod carries the containers the injector renders; the namespace gets the
//! init container's `trellis-proxy-init` rules and runs `trellis-proxy` as uid 2102 with the
//! proxy container's environment, references resolved as the kubelet would, its projected
//! token from a TokenRequest, and the control-plane Service names in its `/etc/hosts`.
//!
//! Dropping a `MeshNet` stops every process, deletes the Mesh (its operator still running, so
//! it removes what it made), the node and the control-plane namespace, then the namespaces
//! and links, also when a test panics.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, Namespace, Node, Pod, ServiceAccount,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use trellis_api::well_known;
use trellis_crds::{
    settings::MeshSettings,
    v1alpha1::mesh::{FailurePolicy, Mesh},
};
use trellis_webhooks::inject::{
    annotations::{self, InjectMode},
    template::{self, InjectConfig},
};

use crate::{
    DEFAULT_TIMEOUT, bins, eventually,
    netns::{GATEWAY, Network, NsProcess, PodNs},
};

/// Pod CIDR of the kwok node that holds the mesh's pods: the upper half of 198.18.0.0/24.
pub const NODE_POD_CIDR: &str = "198.18.0.128/25";
/// Field manager of the applied Mesh.
const FIELD_MANAGER: &str = "trellis-netns-mesh";
/// Label that lets this mesh's operator reconcile only its own Mesh.
const MESH_LABEL: &str = "trellis.dev/netns-mesh";
/// Image names in rendered pods; nothing pulls them.
const IMAGE_REPOSITORY: &str = "registry.invalid/trellis";
/// Trust domain of the mesh.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// A mesh in network namespaces; see the module docs.
pub struct MeshNet {
    /// Client of the local cluster.
    pub client: Client,
    /// Namespace of the workloads.
    pub ns: String,
    /// Namespace of the control plane.
    pub cp_ns: String,
    /// Name of the Mesh.
    pub mesh_name: String,
    node: String,
    dir: PathBuf,
    inject: Option<InjectConfig>,
    hosts: Vec<(String, Ipv4Addr)>,
    pods: Vec<MeshPod>,
    control_plane: Option<NsProcess>,
    setup: MeshSetup,
    net: Network,
}

/// Which Mesh a [`MeshNet`] runs and what it removes when dropped.
///
/// Its validating webhook fails open (`validatorFailurePolicy: Ignore`): the control plane
/// runs as a host process the apiserver's webhook calls cannot reach, and a fail-closed
/// webhook would refuse every test's policy objects while the Mesh exists.
#[derive(Clone, Debug)]
pub struct MeshSetup {
    /// Namespace of the workloads (it must exist; it also holds the operator's Lease).
    pub ns: String,
    /// The Mesh to apply.
    pub mesh: Mesh,
    /// The operator's Mesh label selector, so it leaves other Meshes alone.
    pub selector: Option<String>,
    /// Whether dropping the `MeshNet` deletes the control-plane namespace.
    pub remove_control_plane_ns: bool,
}

impl MeshSetup {
    /// A Mesh of the test's own: named `<ns>`, control plane in `<ns>-cp`, reconciled only
    /// by this mesh's operator, everything removed afterwards.
    pub fn isolated(ns: &str) -> Self {
        let mesh = serde_json::from_value(json!({
            "apiVersion": "trellis.dev/v1alpha1",
            "kind": "Mesh",
            "metadata": { "name": ns, "labels": { MESH_LABEL: ns } },
            "spec": {
                "namespace": format!("{ns}-cp"),
                "controlPlane": { "validatorFailurePolicy": "Ignore" },
            },
        }))
        .unwrap();
        Self {
            ns: ns.to_string(),
            mesh,
            selector: Some(format!("{MESH_LABEL}={ns}")),
            remove_control_plane_ns: true,
        }
    }

    /// The quick-start Mesh, `config/samples/mesh.yaml`, with workloads in `ns`; its
    /// control-plane namespace belongs to the install manifests and is kept.
    pub fn sample(ns: &str) -> Self {
        let path = crate::cluster::repo_root().join("config/samples/mesh.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut mesh: Mesh = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a Mesh: {e}", path.display()));
        mesh.spec.control_plane.validator_failure_policy = FailurePolicy::Ignore;
        Self {
            ns: ns.to_string(),
            mesh,
            selector: None,
            remove_control_plane_ns: false,
        }
    }
}

impl std::fmt::Debug for MeshNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshNet")
            .field("ns", &self.ns)
            .field("cp_ns", &self.cp_ns)
            .field("pods", &self.pods)
            .finish_non_exhaustive()
    }
}

/// One meshed pod: its namespace and its proxy process.
#[derive(Debug)]
pub struct MeshPod {
    /// The network namespace.
    pub net: Arc<PodNs>,
    /// The proxy process.
    pub proxy: NsProcess,
    /// The pod's identity name.
    pub identity: String,
}

impl MeshNet {
    /// [`MeshNet::start_with`] a Mesh of the test's own ([`MeshSetup::isolated`]).
    pub async fn start(client: Client, ns: &str) -> Self {
        Self::start_with(client, MeshSetup::isolated(ns)).await
    }

    /// Installs the CRDs, creates the bridge, starts the control plane as a process, applies
    /// `setup`'s Mesh and waits until it is Ready and its trust roots are published.
    pub async fn start_with(client: Client, setup: MeshSetup) -> Self {
        crate::k8s::install_crds(&client).await;
        let net = Network::create();
        let ns = setup.ns.clone();
        let dir = std::env::temp_dir().join(format!("trellis-mesh-{ns}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cp_ns = setup.mesh.spec.namespace.clone();
        let mesh_name = setup
            .mesh
            .metadata
            .name
            .clone()
            .expect("the Mesh has a name");
        let mut mesh = Self {
            client: client.clone(),
            ns,
            cp_ns: cp_ns.clone(),
            mesh_name,
            node: format!("trellis-netns-{}", std::process::id()),
            dir,
            inject: None,
            hosts: Vec::new(),
            pods: Vec::new(),
            control_plane: None,
            setup: setup.clone(),
            net,
        };
        mesh.start_control_plane();
        let meshes: Api<Mesh> = Api::all(client.clone());
        meshes
            .patch(
                &mesh.mesh_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&setup.mesh),
            )
            .await
            .unwrap();
        let ready = eventually(
            &format!(
                "Mesh {} Ready (log {})",
                mesh.mesh_name,
                mesh.log("control-plane").display()
            ),
            Duration::from_secs(120),
            || async {
                let m = meshes
                    .get(&mesh.mesh_name)
                    .await
                    .map_err(|e| e.to_string())?;
                let ready = m
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .is_some_and(|c| c.status == "True");
                if ready {
                    Ok(m)
                } else {
                    Err(format!("{:?}", m.status))
                }
            },
        )
        .await;
        let roots: Api<ConfigMap> = Api::namespaced(client.clone(), &cp_ns);
        let anchors = roots
            .get(well_known::TRUST_ROOTS_CONFIGMAP)
            .await
            .unwrap()
            .data
            .and_then(|d| d.get(well_known::TRUST_ROOTS_KEY).cloned())
            .expect("trust roots in the ConfigMap");
        mesh.inject = Some(InjectConfig::from_settings(
            &MeshSettings::try_from(&ready.spec).expect("the Mesh spec is valid"),
            IMAGE_REPOSITORY,
            &anchors,
        ));
        for service in [
            well_known::IDENTITY_SERVICE,
            well_known::DESTINATION_SERVICE,
            well_known::POLICY_SERVICE,
        ] {
            mesh.hosts
                .push((format!("{service}.{cp_ns}.svc.cluster.local"), GATEWAY));
        }
        mesh.create_node().await;
        mesh
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Starts (or restarts) `trellis-operator all-in-one` with its gRPC servers on the bridge.
    pub fn start_control_plane(&mut self) {
        let mut cmd = std::process::Command::new(bins::path("trellis-operator"));
        let addr = |port: u16| SocketAddr::from((GATEWAY, port)).to_string();
        cmd.arg("all-in-one")
            .env("KUBECONFIG", crate::cluster::kubeconfig_path())
            .env(
                "TRELLIS_OPERATOR_LOG",
                crate::cluster::env("TRELLIS_NETNS_OPERATOR_LOG").unwrap_or_else(|| "info".into()),
            )
            .env("TRELLIS_OPERATOR_ADMIN_ADDR", "127.0.0.1:0")
            .env("TRELLIS_OPERATOR_WEBHOOK_ADDR", "127.0.0.1:0")
            .env(
                "TRELLIS_OPERATOR_IDENTITY_ADDR",
                addr(well_known::IDENTITY_PORT),
            )
            .env(
                "TRELLIS_OPERATOR_DESTINATION_ADDR",
                addr(well_known::DESTINATION_PORT),
            )
            .env(
                "TRELLIS_OPERATOR_POLICY_ADDR",
                addr(well_known::POLICY_PORT),
            )
            .env("TRELLIS_OPERATOR_MESH_NAME", &self.mesh_name)
            .env("TRELLIS_OPERATOR_CONTROL_PLANE_NAMESPACE", &self.cp_ns)
            .env("TRELLIS_OPERATOR_LEASE_NAMESPACE", &self.ns)
            .env("TRELLIS_OPERATOR_LEASE_NAME", "trellis-netns-mesh")
            .env("TRELLIS_OPERATOR_REPLICA_NAME", "netns")
            .env("TRELLIS_OPERATOR_IMAGE_REPOSITORY", IMAGE_REPOSITORY);
        if let Some(selector) = &self.setup.selector {
            cmd.env("TRELLIS_OPERATOR_MESH_SELECTOR", selector);
        }
        let log = self.log("control-plane");
        self.control_plane = Some(NsProcess::spawn("trellis-operator", cmd, &log));
    }

    /// Stops the control plane (SIGKILL): proxies must keep serving what they know.
    pub fn stop_control_plane(&mut self) {
        if let Some(mut cp) = self.control_plane.take() {
            cp.kill();
        }
    }

    async fn create_node(&self) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({
            "metadata": {
                "name": self.node,
                "annotations": { "kwok.x-k8s.io/node": "fake" },
                "labels": { "kubernetes.io/hostname": self.node, "type": "kwok" },
            },
            // Tainted so the scheduler keeps other tests' pods off it: they would get an
            // address of the mesh's bridge. The mesh's own pods name the node directly.
            "spec": {
                "podCIDR": NODE_POD_CIDR,
                "podCIDRs": [NODE_POD_CIDR],
                "taints": [{ "key": "trellis.dev/mesh-net", "value": self.node, "effect": "NoSchedule" }],
            },
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }

    /// Adds `name -> addr` to the hosts of every pod, present and future.
    pub fn add_host(&mut self, name: &str, addr: Ipv4Addr) {
        for pod in &self.pods {
            pod.net.add_host(name, addr);
        }
        self.hosts.push((name.to_string(), addr));
    }

    /// Creates a ClusterIP Service `name` selecting `app=<name>` on `ports` and makes its DNS
    /// names resolve in every pod; returns its cluster IP.
    pub async fn add_service(&mut self, name: &str, ports: &[(&str, u16)]) -> Ipv4Addr {
        self.add_service_selecting(name, name, ports).await
    }

    /// As [`Self::add_service`], for a Service selecting `app=<app>`.
    pub async fn add_service_selecting(
        &mut self,
        name: &str,
        app: &str,
        ports: &[(&str, u16)],
    ) -> Ipv4Addr {
        let ports: Vec<_> = ports
            .iter()
            .map(|(port_name, port)| json!({ "name": port_name, "port": port, "targetPort": port }))
            .collect();
        let yaml = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name, "namespace": self.ns },
            "spec": { "selector": { "app": app }, "ports": ports },
        });
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(self.client.clone(), &self.ns);
        let svc = services
            .create(
                &PostParams::default(),
                &serde_json::from_value(yaml).unwrap(),
            )
            .await
            .unwrap();
        let ip: Ipv4Addr = svc
            .spec
            .and_then(|s| s.cluster_ip)
            .and_then(|ip| ip.parse().ok())
            .expect("a cluster IP");
        for host in [
            format!("{name}.{}.svc.cluster.local", self.ns),
            format!("{name}.{}", self.ns),
        ] {
            self.add_host(&host, ip);
        }
        ip
    }

    /// Creates pod `name` (label `app=<app>`, ServiceAccount `sa`, container `ports`) on the
    /// mesh's node, waits for kwok to run it, then builds its network namespace and starts
    /// its proxy; returns once the proxy is ready.
    pub async fn add_pod(
        &mut self,
        name: &str,
        app: &str,
        sa: &str,
        ports: &[(&str, u16)],
    ) -> Arc<PodNs> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.ns);
        if accounts.get_opt(sa).await.unwrap().is_none() {
            let obj: ServiceAccount =
                serde_json::from_value(json!({ "metadata": { "name": sa } })).unwrap();
            accounts.create(&PostParams::default(), &obj).await.unwrap();
        }
        let pod = self.rendered_pod(name, app, sa, ports);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let created = pods.create(&PostParams::default(), &pod).await.unwrap();
        let running = eventually(
            &format!("pod {name} running with an IP from {NODE_POD_CIDR}"),
            DEFAULT_TIMEOUT,
            || async {
                let p = pods.get(name).await.map_err(|e| e.to_string())?;
                p.status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                    .map(|ip| (p.clone(), ip))
                    .ok_or_else(|| format!("{:?}", p.status))
            },
        )
        .await;
        let (running, addr) = running;
        let net = self.net.add_pod(name, addr);
        for (host, ip) in &self.hosts {
            net.add_host(host, *ip);
        }
        let spec = running.spec.clone().unwrap();
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == template::PROXY_INIT_CONTAINER)
            .expect("the proxy-init container");
        let init_args: Vec<&str> = init.args.iter().flatten().map(String::as_str).collect();
        net.install_redirect(&bins::path("trellis-proxy-init"), &init_args);

        let proxy = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == template::PROXY_CONTAINER)
            .expect("the proxy container");
        let token = self.token(&created, sa).await;
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let token_path = dir.join("token");
        std::fs::write(&token_path, token).unwrap();
        let identity_dir = dir.join("identity");
        std::fs::create_dir_all(&identity_dir).unwrap();
        chown_proxy(&identity_dir);
        let env = container_env(
            &running,
            proxy,
            &[
                (
                    "TRELLIS_PROXY_IDENTITY_TOKEN_FILE",
                    token_path.display().to_string(),
                ),
                (
                    "TRELLIS_PROXY_IDENTITY_DIR",
                    identity_dir.display().to_string(),
                ),
                ("TRELLIS_PROXY_LOG", proxy_log_level()),
            ],
        );
        let mut cmd = net.command(&bins::proxy(), Some(well_known::PROXY_UID));
        cmd.env_clear().envs(env);
        let log = self.log(&format!("proxy-{name}"));
        let process = NsProcess::spawn(&format!("proxy {name}"), cmd, &log);
        let identity = well_known::identity_name(sa, &self.ns, TRUST_DOMAIN);
        self.pods.push(MeshPod {
            net: net.clone(),
            proxy: process,
            identity,
        });
        let admin = SocketAddr::from((addr, well_known::PROXY_ADMIN_PORT));
        eventually(
            &format!("proxy {name} ready (log {})", log.display()),
            DEFAULT_TIMEOUT,
            || async {
                admin_get(admin, "/ready")
                    .await
                    .filter(|(code, _)| *code == 200)
                    .ok_or("not ready")
            },
        )
        .await;
        net
    }

    /// Adds a network namespace `name` with address `addr` on the mesh's bridge and nothing
    /// else: no Pod in the cluster, no redirect rules, no proxy. The benchmark's unmeshed
    /// `direct-veth` baseline takes the same path as the mesh's pods. `addr` must lie in
    /// 198.18.0.0/24 outside [`NODE_POD_CIDR`], where kwok gives out the meshed pods' IPs.
    pub fn add_plain_pod(&mut self, name: &str, addr: Ipv4Addr) -> Arc<PodNs> {
        let node_cidr: ipnet::Ipv4Net = NODE_POD_CIDR.parse().unwrap();
        let [a, b, c, d] = addr.octets();
        assert!(
            [a, b, c] == [198, 18, 0] && addr != GATEWAY && d != 0 && !node_cidr.contains(&addr),
            "{addr} is not a free address of 198.18.0.0/24 outside {NODE_POD_CIDR}"
        );
        self.net.add_pod(name, addr)
    }

    /// The pod as the injector renders it: the app container plus the proxy (a native
    /// sidecar) and proxy-init containers, on the mesh's node.
    fn rendered_pod(&self, name: &str, app: &str, sa: &str, ports: &[(&str, u16)]) -> Pod {
        let ports: Vec<_> = ports
            .iter()
            .map(|(port_name, port)| json!({ "name": port_name, "containerPort": port }))
            .collect();
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": { "app": app, well_known::CONTROL_PLANE_NS_LABEL: self.cp_ns },
                "annotations": { well_known::INJECT_ANNOTATION: "enabled" },
            },
            "spec": {
                "nodeName": self.node,
                "serviceAccountName": sa,
                "containers": [{ "name": "app", "image": "registry.invalid/app", "ports": ports }],
            },
        }))
        .unwrap();
        let inject = self.inject.as_ref().expect("the Mesh is ready");
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let (settings, warnings) = annotations::settings(
            inject,
            &annotations::merged_config(&annotations, &BTreeMap::new()),
            InjectMode::Enabled,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let init = template::proxy_init_container(&settings);
        let proxy = template::proxy_container(inject, &settings, &pod);
        let spec = pod.spec.as_mut().unwrap();
        spec.init_containers = Some(vec![init, proxy]);
        spec.volumes = Some(template::volumes());
        pod
    }

    /// A token for `sa` with the identity audience, bound to `pod`, as the projected volume
    /// would hold.
    async fn token(&self, pod: &Pod, sa: &str) -> String {
        let pod_ref = k8s_openapi::api::authentication::v1::BoundObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Pod".to_string()),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
        };
        crate::k8s::identity_token(&self.client, &self.ns, sa, 3600, Some(pod_ref)).await
    }

    /// The pod named `name`.
    pub fn pod(&self, name: &str) -> &MeshPod {
        self.pods
            .iter()
            .find(|p| p.net.name() == name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }

    /// The proxy's `/metrics` text of pod `name`.
    pub async fn metrics(&self, name: &str) -> String {
        let admin = SocketAddr::from((self.pod(name).net.addr(), well_known::PROXY_ADMIN_PORT));
        admin_get(admin, "/metrics").await.expect("metrics").1
    }

    /// Where the logs of the control plane and proxies are written.
    pub fn log_dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes the Mesh and waits until its operator has finished it (removed what it made
    /// and its finalizer); panics after [`DEFAULT_TIMEOUT`].
    pub async fn delete_mesh(&self) {
        let meshes: Api<Mesh> = Api::all(self.client.clone());
        meshes
            .delete(&self.mesh_name, &DeleteParams::default())
            .await
            .unwrap();
        eventually(
            &format!(
                "the operator finishes deleting Mesh {} (log {})",
                self.mesh_name,
                self.log("control-plane").display()
            ),
            DEFAULT_TIMEOUT,
            || async {
                match meshes.get_opt(&self.mesh_name).await {
                    Ok(None) => Ok(()),
                    Ok(Some(mesh)) => Err(format!("finalizers {:?}", mesh.metadata.finalizers)),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
    }

    /// Deletes the Mesh (while its operator still runs), the node and the control-plane
    /// namespace; used by `Drop`.
    async fn remove_from_cluster(
        client: Client,
        mesh: String,
        node: String,
        cp_ns: Option<String>,
    ) {
        let meshes: Api<Mesh> = Api::all(client.clone());
        let _ = meshes.delete(&mesh, &DeleteParams::default()).await;
        for _ in 0..100 {
            if meshes.get_opt(&mesh).await.ok().flatten().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if meshes.get_opt(&mesh).await.ok().flatten().is_some() {
            tracing::warn!(%mesh, "The operator did not finish the Mesh; removing its finalizer");
            let patch = json!({ "metadata": { "finalizers": null } });
            let _ = meshes
                .patch(&mesh, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
        let _ = Api::<Node>::all(client.clone())
            .delete(&node, &DeleteParams::default())
            .await;
        if let Some(cp_ns) = cp_ns {
            let _ = Api::<Namespace>::all(client)
                .delete(&cp_ns, &DeleteParams::background())
                .await;
        }
    }
}

impl Drop for MeshNet {
    fn drop(&mut self) {
        for pod in &mut self.pods {
            pod.proxy.kill();
        }
        let (mesh, node) = (self.mesh_name.clone(), self.node.clone());
        let cp_ns = self
            .setup
            .remove_control_plane_ns
            .then(|| self.cp_ns.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = crate::cluster::client().await;
                Self::remove_from_cluster(client, mesh, node, cp_ns).await;
            });
        });
        let _ = cleanup.join();
        self.stop_control_plane();
    }
}

/// The proxies' log filter: `$TRELLIS_NETNS_PROXY_LOG`, else warnings only.
fn proxy_log_level() -> String {
    crate::cluster::env("TRELLIS_NETNS_PROXY_LOG").unwrap_or_else(|| "warn".to_string())
}

/// Gives the proxy's uid the directory it writes its key into.
fn chown_proxy(dir: &Path) {
    let uid = Some(nix::unistd::Uid::from_raw(well_known::PROXY_UID));
    let gid = Some(nix::unistd::Gid::from_raw(well_known::PROXY_UID));
    nix::unistd::chown(dir, uid, gid).unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
}

/// The container's environment as the kubelet would give it: field references read from
/// `pod`, `$(VAR)` expanded from earlier variables, and `overrides` (the volume paths)
/// replacing values.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    overrides: &[(&str, String)],
) -> Vec<(String, String)> {
    let field = |path: &str| -> String {
        let spec = pod.spec.as_ref();
        match path {
            "metadata.name" => pod.metadata.name.clone(),
            "metadata.namespace" => pod.metadata.namespace.clone(),
            "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
            "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
            "status.podIP" => pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
            other => panic!("field reference {other} is not supported here"),
        }
        .unwrap_or_default()
    };
    let mut env: Vec<(String, String)> = Vec::new();
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let value = match (value, value_from) {
            (Some(v), _) => expand(v, &env),
            (None, Some(from)) => field(
                &from
                    .field_ref
                    .as_ref()
                    .expect("only field references are rendered")
                    .field_path,
            ),
            (None, None) => String::new(),
        };
        env.push((name.clone(), value));
    }
    for (name, value) in overrides {
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.clone(),
            None => env.push(((*name).to_string(), value.clone())),
        }
    }
    env
}

/// Expands `$(NAME)` references to variables defined in `env`, as the kubelet does.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = value.to_string();
    for (name, v) in env {
        out = out.replace(&format!("$({name})"), v);
    }
    out
}

/// `GET path` on a proxy's admin port from the root namespace: status and body.
pub async fn admin_get(admin: SocketAddr, path: &str) -> Option<(u16, String)> {
    let stream = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(admin),
    )
    .await
    .ok()?
    .ok()?;
    let req = http::Request::get(path)
        .header("host", admin.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .ok()?;
    let exchange = async {
        use http_body_util::BodyExt as _;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        let rsp = send.send_request(req).await.ok()?;
        let status = rsp.status().as_u16();
        let body = rsp.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}
