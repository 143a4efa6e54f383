//! Services, EndpointSlices and Pods, and the endpoint sets computed from them.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use k8s_openapi::api::{
    core::v1::{Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::ResourceExt;
use trellis_api::{
    destination::{Endpoint, ProtocolHint},
    well_known,
};

/// Label of an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Parses a port list like `25,587,4000-4100`; bad items are skipped.
pub fn parse_port_ranges(value: &str) -> Vec<(u16, u16)> {
    value
        .split(',')
        .filter_map(|item| {
            let item = item.trim();
            match item.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                    (a <= b).then_some((a, b))
                }
                None => item.parse().ok().map(|p| (p, p)),
            }
        })
        .collect()
}

fn in_ranges(ranges: &[(u16, u16)], port: u16) -> bool {
    ranges.iter().any(|(a, b)| (*a..=*b).contains(&port))
}

/// What the index keeps of a Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    /// ClusterIPs (empty for headless Services).
    pub cluster_ips: Vec<IpAddr>,
    /// Declared ports: port → (name, appProtocol).
    pub ports: BTreeMap<u16, (Option<String>, Option<String>)>,
    /// Opaque ports from the Service annotation.
    pub opaque_ports: Vec<(u16, u16)>,
    /// The retry, timeout and balancer annotations (the defaults of the Service's routes).
    pub annotations: BTreeMap<String, String>,
}

impl ServiceInfo {
    /// Extracts the fields the index needs.
    pub fn from_service(svc: &Service) -> Self {
        let spec = svc.spec.clone().unwrap_or_default();
        let cluster_ips = spec
            .cluster_ips
            .unwrap_or_default()
            .iter()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect::<BTreeSet<IpAddr>>()
            .into_iter()
            .collect();
        let ports = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                let port = u16::try_from(p.port).ok()?;
                Some((port, (p.name, p.app_protocol)))
            })
            .collect();
        let opaque_ports = svc
            .annotations()
            .get(well_known::OPAQUE_PORTS_ANNOTATION)
            .map(|v| parse_port_ranges(v))
            .unwrap_or_default();
        let annotations = svc
            .annotations()
            .iter()
            .filter(|(k, _)| super::routes::annotations::is_route_annotation(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self {
            cluster_ips,
            ports,
            opaque_ports,
            annotations,
        }
    }

    /// Whether `port` is opaque by the Service's annotation.
    pub fn is_opaque(&self, port: u16) -> bool {
        in_ranges(&self.opaque_ports, port)
    }
}

/// One address of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// The address.
    pub ip: IpAddr,
    /// The pod behind it (same namespace).
    pub pod: Option<String>,
    /// The endpoint's hostname.
    pub hostname: Option<String>,
    /// The endpoint's zone.
    pub zone: Option<String>,
}

/// What the index keeps of an EndpointSlice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceInfo {
    /// Port name (empty for unnamed) → port number.
    pub ports: BTreeMap<String, u16>,
    /// Ready endpoints.
    pub endpoints: Vec<SliceEndpoint>,
}

impl SliceInfo {
    /// Extracts ready endpoints and ports of an EndpointSlice.
    pub fn from_slice(slice: &EndpointSlice) -> Self {
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port?).ok()?;
                Some((p.name.clone().unwrap_or_default(), port))
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .flatten()
            .filter(|ep| ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .flat_map(|ep| {
                let pod = ep
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| r.name.clone());
                ep.addresses.iter().filter_map(move |a| {
                    Some(SliceEndpoint {
                        ip: a.parse().ok()?,
                        pod: pod.clone(),
                        hostname: ep.hostname.clone(),
                        zone: ep.zone.clone(),
                    })
                })
            })
            .collect();
        Self { ports, endpoints }
    }
}

/// What the index keeps of a Pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// ServiceAccount name.
    pub service_account: String,
    /// Whether the pod is meshed (it carries [`well_known::CONTROL_PLANE_NS_LABEL`]), and the
    /// control plane namespace.
    pub control_plane_ns: Option<String>,
    /// Pod IPs.
    pub ips: Vec<IpAddr>,
    /// Metric labels of the pod (`pod`, owner kind, `pod_template_hash`, `serviceaccount`).
    pub metric_labels: BTreeMap<String, String>,
    /// Labels of the pod (for policy selectors).
    pub labels: BTreeMap<String, String>,
    /// Annotations relevant to discovery and policy.
    pub annotations: BTreeMap<String, String>,
    /// Opaque ports from the pod annotation.
    pub opaque_ports: Vec<(u16, u16)>,
    /// Skipped inbound ports from the pod annotation.
    pub skip_inbound_ports: Vec<(u16, u16)>,
    /// Container ports: number → name.
    pub container_ports: BTreeMap<u16, Option<String>>,
    /// Ports the kubelet probes (HTTP, TCP or gRPC probes of the containers).
    pub probe_ports: BTreeSet<u16>,
    /// The paths of the HTTP probes, by port.
    pub probe_paths: BTreeMap<u16, BTreeSet<String>>,
    /// The node's address, where the kubelet's probes come from.
    pub host_ip: Option<IpAddr>,
}

impl PodInfo {
    /// Extracts the fields the index needs; one field after the other, so it is long but
    /// flat.
    pub fn from_pod(pod: &Pod) -> Self {
        let name = pod.name_any();
        let spec = pod.spec.clone().unwrap_or_default();
        let service_account = spec
            .service_account_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let labels: BTreeMap<String, String> = pod.labels().clone();
        let annotations: BTreeMap<String, String> = pod.annotations().clone();
        let mut metric_labels = BTreeMap::from([
            ("pod".to_string(), name.clone()),
            ("serviceaccount".to_string(), service_account.clone()),
        ]);
        let hash = labels.get("pod-template-hash").cloned();
        if let Some(hash) = &hash {
            metric_labels.insert("pod_template_hash".into(), hash.clone());
        }
        if let Some(owner) = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
        {
            let (kind, name) = match owner.kind.as_str() {
                "ReplicaSet" => match &hash {
                    Some(h) => (
                        "deployment",
                        owner
                            .name
                            .strip_suffix(&format!("-{h}"))
                            .unwrap_or(&owner.name)
                            .to_string(),
                    ),
                    None => ("replicaset", owner.name.clone()),
                },
                "StatefulSet" => ("statefulset", owner.name.clone()),
                "DaemonSet" => ("daemonset", owner.name.clone()),
                "Job" => ("k8s_job", owner.name.clone()),
                other => {
                    let kind = other.to_ascii_lowercase();
                    metric_labels.insert(kind, owner.name.clone());
                    ("", String::new())
                }
            };
            if !kind.is_empty() {
                metric_labels.insert(kind.to_string(), name);
            }
        }
        let control_plane_ns = labels.get(well_known::CONTROL_PLANE_NS_LABEL).cloned();
        if let Some(ns) = &control_plane_ns {
            metric_labels.insert("control_plane_ns".into(), ns.clone());
        }
        let status = pod.status.clone().unwrap_or_default();
        let ips = status
            .pod_ips
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.ip)
            .chain(status.pod_ip)
            .filter_map(|ip| ip.parse().ok())
            .collect::<BTreeSet<IpAddr>>()
            .into_iter()
            .collect();
        let opaque_ports = annotations
            .get(well_known::OPAQUE_PORTS_ANNOTATION)
            .map(|v| parse_port_ranges(v))
            .unwrap_or_default();
        let skip_inbound_ports = annotations
            .get(well_known::SKIP_INBOUND_PORTS_ANNOTATION)
            .map(|v| parse_port_ranges(v))
            .unwrap_or_default();
        let container_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| Some((u16::try_from(p.container_port).ok()?, p.name.clone())))
            .collect();
        let probe_ports = probe_ports(&spec, &container_ports);
        let probe_paths = probe_paths(&spec, &container_ports);
        let host_ip = status.host_ip.as_deref().and_then(|ip| ip.parse().ok());
        Self {
            service_account,
            control_plane_ns,
            ips,
            metric_labels,
            labels,
            annotations,
            opaque_ports,
            skip_inbound_ports,
            container_ports,
            probe_ports,
            probe_paths,
            host_ip,
        }
    }

    /// This pod's endpoint at `addr` (in `namespace`), as `Get` and `GetProfile` both give
    /// it: the pod's metric labels, and when it is meshed (and does not skip the port) its
    /// identity with an `h2` hint, or opaque transport when `opaque`.
    pub fn endpoint(
        &self,
        namespace: &str,
        addr: SocketAddr,
        opaque: bool,
        trust_domain: &str,
    ) -> Endpoint {
        let mut endpoint = if self.control_plane_ns.is_some() && !self.skips(addr.port()) {
            let identity =
                well_known::identity_name(&self.service_account, namespace, trust_domain);
            Endpoint::plain(addr).meshed(identity, opaque)
        } else {
            unknown_endpoint(addr, opaque)
        };
        endpoint.labels.clone_from(&self.metric_labels);
        endpoint
    }

    /// Whether the kubelet probes `port`.
    pub fn is_probed(&self, port: u16) -> bool {
        self.probe_ports.contains(&port)
    }

    /// Whether `port` is opaque by the pod's annotation.
    pub fn is_opaque(&self, port: u16) -> bool {
        in_ranges(&self.opaque_ports, port)
    }

    /// Whether the proxy skips `port` inbound.
    pub fn skips(&self, port: u16) -> bool {
        in_ranges(&self.skip_inbound_ports, port)
    }
}

/// The endpoints of one Service port; `None` when the Service does not exist.
pub type EndpointSet = Option<Arc<BTreeMap<SocketAddr, Endpoint>>>;

/// Services, slices and pods, keyed by namespace.
#[derive(Debug, Default)]
pub struct EndpointsIndex {
    /// `(namespace, name)` → Service.
    pub services: HashMap<(String, String), ServiceInfo>,
    /// `(namespace, service)` → slice name → slice.
    pub slices: HashMap<(String, String), HashMap<String, SliceInfo>>,
    /// `(namespace, name)` → Pod.
    pub pods: HashMap<(String, String), PodInfo>,
}

impl EndpointsIndex {
    /// The endpoint set of `namespace/service:port`, for a mesh whose identity names use
    /// `trust_domain`.
    pub fn endpoints(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
        trust_domain: &str,
    ) -> EndpointSet {
        let key = (namespace.to_string(), service.to_string());
        let svc = self.services.get(&key)?;
        let port_name = svc.ports.get(&port).and_then(|(name, _)| name.clone());
        let mut set = BTreeMap::new();
        for slice in self.slices.get(&key).into_iter().flat_map(|s| s.values()) {
            let target_port = match (&port_name, svc.ports.contains_key(&port)) {
                (_, false) => Some(port),
                (Some(name), true) => slice.ports.get(name).copied(),
                (None, true) => slice.ports.get("").copied(),
            };
            let Some(target_port) = target_port else {
                continue;
            };
            for ep in &slice.endpoints {
                let addr = SocketAddr::new(ep.ip, target_port);
                let pod = ep
                    .pod
                    .as_ref()
                    .and_then(|p| self.pods.get(&(namespace.to_string(), p.clone())));
                let opaque = svc.is_opaque(port) || pod.is_some_and(|p| p.is_opaque(target_port));
                let mut endpoint = match pod {
                    Some(pod) => pod.endpoint(namespace, addr, opaque, trust_domain),
                    None => unknown_endpoint(addr, opaque),
                };
                if let Some(zone) = &ep.zone {
                    endpoint.labels.insert("zone".into(), zone.clone());
                }
                set.insert(addr, endpoint);
            }
        }
        Some(Arc::new(set))
    }

    /// The endpoint of a pod hostname (or name) behind `namespace/service:port`.
    pub fn pod_endpoint(
        &self,
        namespace: &str,
        service: &str,
        hostname: &str,
        port: u16,
        trust_domain: &str,
    ) -> EndpointSet {
        let all = self.endpoints(namespace, service, port, trust_domain)?;
        let key = (namespace.to_string(), service.to_string());
        let ips: BTreeSet<IpAddr> = self
            .slices
            .get(&key)
            .into_iter()
            .flat_map(|s| s.values())
            .flat_map(|s| s.endpoints.iter())
            .filter(|ep| {
                ep.hostname.as_deref() == Some(hostname) || ep.pod.as_deref() == Some(hostname)
            })
            .map(|ep| ep.ip)
            .collect();
        Some(Arc::new(
            all.iter()
                .filter(|(addr, _)| ips.contains(&addr.ip()))
                .map(|(a, e)| (*a, e.clone()))
                .collect(),
        ))
    }

    /// The Service with ClusterIP `ip`.
    pub fn service_by_ip(&self, ip: IpAddr) -> Option<(&str, &str)> {
        self.services
            .iter()
            .find(|(_, svc)| svc.cluster_ips.contains(&ip))
            .map(|((ns, name), _)| (ns.as_str(), name.as_str()))
    }

    /// The pod with IP `ip`.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<(&str, &str, &PodInfo)> {
        self.pods
            .iter()
            .find(|(_, pod)| pod.ips.contains(&ip))
            .map(|((ns, name), pod)| (ns.as_str(), name.as_str(), pod))
    }
}

/// An endpoint with no pod (or an unmeshed one): no identity, opaque hint when `opaque`.
fn unknown_endpoint(addr: SocketAddr, opaque: bool) -> Endpoint {
    let mut endpoint = Endpoint::plain(addr);
    if opaque {
        endpoint.hint = ProtocolHint::Opaque;
    }
    endpoint
}

/// `port` as a number, named ports resolved through `container_ports`.
fn resolve_port(
    port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    container_ports: &BTreeMap<u16, Option<String>>,
) -> Option<u16> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container_ports
            .iter()
            .find(|(_, n)| n.as_deref() == Some(name.as_str()))
            .map(|(p, _)| *p),
    }
}

/// Every probe of `spec`'s containers.
fn probes(
    spec: &k8s_openapi::api::core::v1::PodSpec,
) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Probe> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| [&c.readiness_probe, &c.liveness_probe, &c.startup_probe])
        .flatten()
}

/// The paths of `spec`'s HTTP probes, by port (`/` when a probe names none).
fn probe_paths(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    container_ports: &BTreeMap<u16, Option<String>>,
) -> BTreeMap<u16, BTreeSet<String>> {
    let mut paths: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    for http in probes(spec).filter_map(|p| p.http_get.as_ref()) {
        if let Some(port) = resolve_port(&http.port, container_ports) {
            let path = http.path.clone().unwrap_or_else(|| "/".to_string());
            paths.entry(port).or_default().insert(path);
        }
    }
    paths
}

/// The ports the kubelet probes in `spec` (named ports resolved through `container_ports`).
fn probe_ports(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    container_ports: &BTreeMap<u16, Option<String>>,
) -> BTreeSet<u16> {
    let resolve = |port| resolve_port(port, container_ports);
    probes(spec)
        .filter_map(|probe| {
            if let Some(http) = &probe.http_get {
                resolve(&http.port)
            } else if let Some(tcp) = &probe.tcp_socket {
                resolve(&tcp.port)
            } else {
                probe.grpc.as_ref().and_then(|g| u16::try_from(g.port).ok())
            }
        })
        .collect()
}
