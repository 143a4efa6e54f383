//! Policy objects (Server, AuthorizationPolicy, MeshTLSAuthentication, NetworkAuthentication)
//! and namespace annotations, as the policy server reads them.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use k8s_openapi::{api::core::v1::Namespace, apimachinery::pkg::apis::meta::v1::LabelSelector};
use kube::ResourceExt;
use trellis_api::{
    inbound::{
        Authorization, ClientAuthentication, DefaultPolicy, InboundRoute, InboundRule, Meta,
        Network, PortSpec, Protocol, ServerPolicy,
    },
    well_known,
};
use trellis_crds::{
    common::{
        access_policy::AccessPolicy,
        port::Port,
        target_ref::{AuthenticationKind, PolicyTargetKind, PolicyTargetRef},
    },
    v1alpha1::{
        authorization_policy::{AuthorizationPolicy, AuthorizationPolicySpec},
        mesh_tls_authentication::MeshTLSAuthentication,
        network_authentication::NetworkAuthentication,
        server::{ProxyProtocol, Server},
    },
};

use super::{Index, endpoints::PodInfo, routes::AnyRoute};
use crate::control_plane::destination::LookupError;

/// Policy objects by `(namespace, name)`.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    /// Servers.
    pub servers: HashMap<(String, String), Server>,
    /// AuthorizationPolicies.
    pub authorization_policies: HashMap<(String, String), AuthorizationPolicy>,
    /// MeshTLSAuthentications.
    pub mesh_tls_authentications: HashMap<(String, String), MeshTLSAuthentication>,
    /// NetworkAuthentications.
    pub network_authentications: HashMap<(String, String), NetworkAuthentication>,
    /// Namespace name → its annotations.
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
}

impl PolicyIndex {
    pub(super) fn known(&self, kind: &str) -> Vec<(String, String)> {
        match kind {
            "Server" => self.servers.keys().cloned().collect(),
            "AuthorizationPolicy" => self.authorization_policies.keys().cloned().collect(),
            "MeshTLSAuthentication" => self.mesh_tls_authentications.keys().cloned().collect(),
            "NetworkAuthentication" => self.network_authentications.keys().cloned().collect(),
            "Namespace" => self
                .namespaces
                .keys()
                .map(|n| (String::new(), n.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn key<K: ResourceExt>(obj: &K) -> (String, String) {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The objects of `map` in namespace `ns`, with their names.
fn in_namespace<'a, T>(
    map: &'a HashMap<(String, String), T>,
    ns: &'a str,
) -> impl Iterator<Item = (&'a str, &'a T)> {
    map.iter()
        .filter(move |((ons, _), _)| ons == ns)
        .map(|((_, name), obj)| (name.as_str(), obj))
}

fn nskey(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

/// A policy kind, kept by `(namespace, name)` in its own map of [`PolicyIndex`].
pub trait PolicyObject: ResourceExt + Clone {
    /// The kind's name.
    const KIND: &'static str;
    /// The map that holds this kind.
    fn objects(policy: &mut PolicyIndex) -> &mut HashMap<(String, String), Self>;
}

macro_rules! policy_objects {
    ($($kind:ident => $field:ident;)*) => {$(
        impl PolicyObject for $kind {
            const KIND: &'static str = stringify!($kind);
            fn objects(policy: &mut PolicyIndex) -> &mut HashMap<(String, String), Self> {
                &mut policy.$field
            }
        }
    )*};
}

policy_objects! {
    Server => servers;
    AuthorizationPolicy => authorization_policies;
    MeshTLSAuthentication => mesh_tls_authentications;
    NetworkAuthentication => network_authentications;
}

impl Index {
    /// Adds or updates a policy object.
    pub fn apply_policy<K: PolicyObject>(&mut self, obj: &K) {
        K::objects(&mut self.policy).insert(key(obj), obj.clone());
        self.status_input_changed();
        self.policy_changed();
    }

    /// Removes a policy object.
    pub fn delete_policy<K: PolicyObject>(&mut self, ns: &str, name: &str) {
        K::objects(&mut self.policy).remove(&nskey(ns, name));
        self.status_input_changed();
        self.policy_changed();
    }

    /// Adds or updates a Namespace's annotations.
    pub fn apply_namespace(&mut self, obj: &Namespace) {
        let annotations = obj.annotations().clone();
        if self.policy.namespaces.get(&obj.name_any()) == Some(&annotations) {
            return;
        }
        self.policy.namespaces.insert(obj.name_any(), annotations);
        self.policy_changed();
    }

    /// Removes a Namespace.
    pub fn delete_namespace(&mut self, name: &str) {
        self.policy.namespaces.remove(name);
        self.policy_changed();
    }
}

/// The group of the policy kinds.
const POLICY_GROUP: &str = "policy.trellis.dev";

fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

fn port_matches(port: &Port, pod: &PodInfo, number: u16) -> bool {
    match port {
        Port::Number(n) => i32::from(number) == *n,
        Port::Name(name) => pod
            .container_ports
            .get(&number)
            .is_some_and(|n| n.as_deref() == Some(name.as_str())),
    }
}

/// The proxy API's default policy for a Trellis access policy.
pub fn access_default(policy: AccessPolicy) -> DefaultPolicy {
    match policy {
        AccessPolicy::Deny => DefaultPolicy::Deny,
        AccessPolicy::Audit => DefaultPolicy::Audit,
        AccessPolicy::AllAuthenticated => DefaultPolicy::AllAuthenticated,
        AccessPolicy::AllUnauthenticated => DefaultPolicy::AllUnauthenticated,
        AccessPolicy::ClusterAuthenticated => DefaultPolicy::ClusterAuthenticated,
        AccessPolicy::ClusterUnauthenticated => DefaultPolicy::ClusterUnauthenticated,
    }
}

/// Name of the authorization that lets the kubelet probe a port whatever the policy.
pub const PROBE_AUTHORIZATION: &str = "probe";

/// Adds the kubelet's authorization to `policy` when the kubelet probes `port`: its probes
/// come unauthenticated from the node's address, and a port that refuses them takes the pod
/// out of its Service (Linkerd authorizes probes by default too). Only the node's address is
/// allowed, and only on probed ports.
fn with_probes(mut policy: ServerPolicy, pod: &PodInfo, port: u16) -> ServerPolicy {
    let Some(host) = pod.host_ip.filter(|_| pod.is_probed(port)) else {
        return policy;
    };
    let node = ipnet::IpNet::from(host);
    let already = policy.authorizations.iter().any(|a| {
        a.authentication == ClientAuthentication::Unauthenticated
            && a.networks
                .iter()
                .any(|n| n.net.contains(&node) && !n.except.iter().any(|e| e.contains(&host)))
    });
    if !already {
        policy.authorizations.push(Authorization {
            meta: Meta::Default(PROBE_AUTHORIZATION.to_string()),
            networks: vec![Network {
                net: node,
                except: Vec::new(),
            }],
            authentication: ClientAuthentication::Unauthenticated,
        });
    }
    // A Server with routes answers 404 off them: its HTTP probe paths get a route of their
    // own, so adding a route never takes the pod out of its Service.
    if !policy.routes.is_empty()
        && let Some(paths) = pod.probe_paths.get(&port)
    {
        policy.routes.push(probe_route(paths));
    }
    policy
}

/// The route of a port's HTTP probe paths (`GET`, exact paths), admitted by the server's
/// probe authorization.
fn probe_route(paths: &std::collections::BTreeSet<String>) -> InboundRoute {
    use trellis_api::route::{PathMatch, RequestMatch, RouteKind, RouteRef};
    InboundRoute {
        meta: RouteRef::Default(PROBE_AUTHORIZATION.to_string()),
        kind: RouteKind::Http,
        hosts: Vec::new(),
        rules: vec![InboundRule {
            matches: paths
                .iter()
                .map(|path| RequestMatch {
                    path: Some(PathMatch::Exact(path.clone())),
                    method: Some(http::Method::GET),
                    ..RequestMatch::default()
                })
                .collect(),
            filters: Vec::new(),
        }],
        authorizations: Vec::new(),
    }
}

/// Whether `target` names `route` (same kind and name; the namespace is the policy's).
pub(super) fn targets_route(target: &PolicyTargetRef, route: AnyRoute<'_>) -> bool {
    let kind = match target.kind {
        PolicyTargetKind::HTTPRoute => "HTTPRoute",
        PolicyTargetKind::GRPCRoute => "GRPCRoute",
        PolicyTargetKind::Server | PolicyTargetKind::Namespace => return false,
    };
    kind == route.kind() && target.name == route.name()
}

/// Sorts authorizations by the policy that grants them, so answers are stable.
fn sort_authorizations(authorizations: &mut [Authorization]) {
    authorizations.sort_by(|a, b| format!("{:?}", a.meta).cmp(&format!("{:?}", b.meta)));
}

fn parse_net(cidr: &str) -> Option<ipnet::IpNet> {
    cidr.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| cidr.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

impl Index {
    /// The inbound policy of `spec`'s port: the Server that selects it (first by name), with
    /// the authorizations of the policies that target it or its namespace, then those of its
    /// `accessPolicy`, and its routes with their own authorizations; else the default policy
    /// (pod annotation, then namespace, then Mesh).
    pub fn inbound_policy(&self, spec: &PortSpec) -> Result<ServerPolicy, LookupError> {
        let ns = &spec.workload.namespace;
        let pod = self
            .endpoints
            .pods
            .get(&(ns.clone(), spec.workload.pod.clone()))
            .ok_or_else(|| LookupError::NotFound(format!("pod {ns}/{}", spec.workload.pod)))?;
        let networks = &self.settings.cluster_networks;
        let mut servers: Vec<_> = in_namespace(&self.policy.servers, ns)
            .filter(|(_, s)| {
                let selected = s.spec.pod_selector.as_ref();
                selected.is_some_and(|sel| selects(sel, &pod.labels))
                    && port_matches(&s.spec.port, pod, spec.port)
            })
            .collect();
        servers.sort_by_key(|(name, _)| *name);
        let Some(&(name, server)) = servers.first() else {
            let default = self.default_policy(ns, pod);
            let opaque = pod.is_opaque(spec.port) || self.namespace_opaque_port(ns, spec.port);
            return Ok(with_probes(
                default.server(networks, opaque),
                pod,
                spec.port,
            ));
        };
        let protocol = match server.spec.proxy_protocol {
            ProxyProtocol::Unknown => Protocol::Detect {
                timeout: trellis_api::inbound::DEFAULT_DETECT_TIMEOUT,
            },
            ProxyProtocol::Http1 => Protocol::Http1,
            ProxyProtocol::Http2 => Protocol::Http2,
            ProxyProtocol::Grpc => Protocol::Grpc,
            ProxyProtocol::Opaque => Protocol::Opaque,
            ProxyProtocol::Tls => Protocol::Tls,
        };
        let mut authorizations: Vec<Authorization> =
            in_namespace(&self.policy.authorization_policies, ns)
                .filter(|(_, p)| match p.spec.target_ref.kind {
                    PolicyTargetKind::Server => p.spec.target_ref.name == name,
                    PolicyTargetKind::Namespace => p.spec.target_ref.name == *ns,
                    PolicyTargetKind::HTTPRoute | PolicyTargetKind::GRPCRoute => false,
                })
                .filter_map(|(pname, p)| self.authorization(ns, pname, &p.spec))
                .collect();
        sort_authorizations(&mut authorizations);
        // The access policy admits what no AuthorizationPolicy does (listed after them, so
        // metrics credit a policy when both admit).
        authorizations.extend(access_default(server.spec.access_policy).authorizations(networks));
        Ok(with_probes(
            ServerPolicy {
                meta: Meta::Resource {
                    group: POLICY_GROUP.to_string(),
                    kind: "server".to_string(),
                    name: name.to_string(),
                },
                protocol,
                authorizations,
                routes: self.server_routes(ns, name),
            },
            pod,
            spec.port,
        ))
    }

    /// The authorizations of the AuthorizationPolicies that target `route` (in `ns`).
    pub(super) fn route_authorizations(&self, ns: &str, route: AnyRoute<'_>) -> Vec<Authorization> {
        let mut authorizations: Vec<Authorization> =
            in_namespace(&self.policy.authorization_policies, ns)
                .filter(|(_, p)| targets_route(&p.spec.target_ref, route))
                .filter_map(|(pname, p)| self.authorization(ns, pname, &p.spec))
                .collect();
        sort_authorizations(&mut authorizations);
        authorizations
    }

    fn namespace_opaque_port(&self, ns: &str, port: u16) -> bool {
        self.policy
            .namespaces
            .get(ns)
            .and_then(|a| a.get(well_known::OPAQUE_PORTS_ANNOTATION))
            .is_some_and(|v| {
                super::endpoints::parse_port_ranges(v)
                    .iter()
                    .any(|(a, b)| (*a..=*b).contains(&port))
            })
    }

    fn default_policy(&self, ns: &str, pod: &PodInfo) -> DefaultPolicy {
        pod.annotations
            .get(well_known::DEFAULT_INBOUND_POLICY_ANNOTATION)
            .and_then(|v| DefaultPolicy::parse(v))
            .or_else(|| {
                self.policy
                    .namespaces
                    .get(ns)
                    .and_then(|a| a.get(well_known::DEFAULT_INBOUND_POLICY_ANNOTATION))
                    .and_then(|v| DefaultPolicy::parse(v))
            })
            .unwrap_or(self.settings.default_inbound_policy)
    }

    /// The authorization an AuthorizationPolicy grants, if all its references resolve.
    fn authorization(
        &self,
        ns: &str,
        name: &str,
        spec: &AuthorizationPolicySpec,
    ) -> Option<Authorization> {
        let td = &self.settings.trust_domain;
        let mut networks = None;
        let mut authentication = ClientAuthentication::Unauthenticated;
        for r in &spec.required_authentication_refs {
            let rns = r.namespace.clone().unwrap_or_else(|| ns.to_string());
            match r.kind {
                AuthenticationKind::ServiceAccount => {
                    authentication = ClientAuthentication::MeshTls {
                        identities: vec![well_known::identity_name(&r.name, &rns, td)],
                        suffixes: Vec::new(),
                    };
                }
                AuthenticationKind::MeshTLSAuthentication => {
                    let authn = self
                        .policy
                        .mesh_tls_authentications
                        .get(&(rns.clone(), r.name.clone()))?;
                    authentication = mesh_tls(&authn.spec, &rns, td);
                }
                AuthenticationKind::NetworkAuthentication => {
                    let authn = self
                        .policy
                        .network_authentications
                        .get(&(rns.clone(), r.name.clone()))?;
                    networks = Some(
                        authn
                            .spec
                            .networks
                            .iter()
                            .filter_map(|n| {
                                Some(Network {
                                    net: parse_net(n.cidr.as_str())?,
                                    except: n
                                        .except
                                        .iter()
                                        .filter_map(|e| parse_net(e.as_str()))
                                        .collect(),
                                })
                            })
                            .collect::<Vec<_>>(),
                    );
                }
            }
        }
        let networks = match networks {
            Some(n) if !n.is_empty() => n,
            Some(_) => return None,
            None => Network::all(),
        };
        Some(Authorization {
            meta: Meta::Resource {
                group: POLICY_GROUP.to_string(),
                kind: "authorizationpolicy".to_string(),
                name: name.to_string(),
            },
            networks,
            authentication,
        })
    }
}

/// The client authentication a MeshTLSAuthentication describes.
fn mesh_tls(
    spec: &trellis_crds::v1alpha1::mesh_tls_authentication::MeshTLSAuthenticationSpec,
    ns: &str,
    td: &str,
) -> ClientAuthentication {
    use trellis_crds::common::target_ref::IdentityKind;
    let mut identities = Vec::new();
    let mut suffixes = Vec::new();
    for id in spec.identities.iter().flatten() {
        if id == "*" {
            suffixes.push(Vec::new());
        } else if let Some(rest) = id.strip_prefix("*.") {
            suffixes.push(rest.split('.').map(str::to_string).collect());
        } else if let Some(path) = id.strip_prefix("spiffe://") {
            // spiffe://<td>/ns/<ns>/sa/<sa> → the DNS form proxies report.
            match path.split('/').collect::<Vec<_>>().as_slice() {
                [td, "ns", ns, "sa", sa] => identities.push(well_known::identity_name(sa, ns, td)),
                _ => identities.push(id.clone()),
            }
        } else {
            identities.push(id.clone());
        }
    }
    for r in spec.identity_refs.iter().flatten() {
        match r.kind {
            IdentityKind::ServiceAccount => {
                let rns = r.namespace.clone().unwrap_or_else(|| ns.to_string());
                identities.push(well_known::identity_name(&r.name, &rns, td));
            }
            IdentityKind::Namespace => suffixes.push(
                format!("{}.serviceaccount.identity.trellis.{td}", r.name)
                    .split('.')
                    .map(str::to_string)
                    .collect(),
            ),
        }
    }
    ClientAuthentication::MeshTls {
        identities,
        suffixes,
    }
}

#[cfg(test)]
mod tests;
