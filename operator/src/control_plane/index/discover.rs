//! The index as the destination and policy servers see it: impls of their discovery traits.

use tokio::sync::watch;
use trellis_api::destination::{Context, Profile, Target};

use super::{Index, SharedIndex, profiles, routes::annotations::Annotations};
use crate::control_plane::destination::{
    DiscoverEndpoints, EndpointSet, LookupError, NAMESPACE_LABEL,
};

impl DiscoverEndpoints for SharedIndex {
    fn cluster_domain(&self) -> String {
        self.read().settings.cluster_domain.clone()
    }

    fn watch_endpoints(
        &self,
        target: &Target,
    ) -> Result<watch::Receiver<EndpointSet>, LookupError> {
        let key = match target {
            Target::Service {
                namespace,
                name,
                port,
            } => (namespace.clone(), name.clone(), *port, None),
            Target::Pod {
                namespace,
                service,
                hostname,
                port,
            } => (
                namespace.clone(),
                service.clone(),
                *port,
                Some(hostname.clone()),
            ),
            Target::Addr(addr) => {
                return Err(LookupError::Invalid(format!(
                    "{addr} is an address; Get resolves Service names"
                )));
            }
        };
        let mut index = self.write();
        if !index
            .endpoints
            .services
            .contains_key(&(key.0.clone(), key.1.clone()))
        {
            return Err(LookupError::NotFound(format!(
                "Service {}/{}",
                key.0, key.1
            )));
        }
        Ok(index.watch_endpoints(key))
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.read().changes()
    }

    fn profile(&self, target: &Target, context: &Context) -> Profile {
        self.read().profile(target, context)
    }
}

impl Index {
    fn service_profile(&self, ns: &str, name: &str, port: u16, context: &Context) -> Profile {
        let fqn = format!("{name}.{ns}.svc.{}", self.settings.cluster_domain);
        let client_ns = context.namespace.as_deref().filter(|c| *c != ns);
        let found = client_ns
            .and_then(|c| self.profiles.get(&(c.to_string(), fqn.clone())))
            .or_else(|| self.profiles.get(&(ns.to_string(), fqn.clone())));
        let mut profile = match found {
            Some(sp) => profiles::from_spec(fqn, &sp.spec),
            None => Profile::default_for(fqn),
        };
        profile.opaque_protocol = self.is_opaque_service_port(ns, name, port);
        profile
    }

    fn is_opaque_service_port(&self, ns: &str, name: &str, port: u16) -> bool {
        let svc = self
            .endpoints
            .services
            .get(&(ns.to_string(), name.to_string()));
        if let Some(svc) = svc {
            if svc.is_opaque(port) {
                return true;
            }
            if let Some((_, Some(proto))) = svc.ports.get(&port)
                && (proto == "linkerd.io/opaque" || proto == "linkerd.io/tcp")
            {
                return true;
            }
        }
        self.namespace_opaque(ns, port)
    }

    fn namespace_opaque(&self, ns: &str, port: u16) -> bool {
        self.policy
            .namespaces
            .get(ns)
            .and_then(|a| a.get(trellis_api::well_known::OPAQUE_PORTS_ANNOTATION))
            .is_some_and(|v| {
                super::endpoints::parse_port_ranges(v)
                    .iter()
                    .any(|(a, b)| (*a..=*b).contains(&port))
            })
    }

    fn endpoint_profile(&self, ns: &str, pod: &str, addr: std::net::SocketAddr) -> Profile {
        let info = self.endpoints.pods.get(&(ns.to_string(), pod.to_string()));
        let mut profile = Profile::default_for(String::new());
        if let Some(info) = info {
            let opaque = info.is_opaque(addr.port()) || self.namespace_opaque(ns, addr.port());
            let mut ep = info.endpoint(ns, addr, opaque, &self.settings.trust_domain);
            // `Get` gives the namespace in the set's labels; a profile's endpoint has no set,
            // so it carries the namespace itself (as Linkerd's does).
            ep.labels.insert(NAMESPACE_LABEL.into(), ns.to_string());
            profile.opaque_protocol = opaque;
            profile.endpoint = Some(ep);
        }
        profile
    }

    /// The profile of `target` for a client in `context` (never "not found").
    pub fn profile(&self, target: &Target, context: &Context) -> Profile {
        match target {
            Target::Service {
                namespace,
                name,
                port,
            } => self.service_profile(namespace, name, *port, context),
            Target::Pod {
                namespace,
                service,
                hostname,
                port,
            } => {
                let set = self.endpoints.pod_endpoint(
                    namespace,
                    service,
                    hostname,
                    *port,
                    &self.settings.trust_domain,
                );
                let mut profile = Profile::default_for(String::new());
                profile.endpoint = set.and_then(|s| s.values().next().cloned());
                profile
            }
            Target::Addr(addr) => {
                if let Some((ns, name)) = self.endpoints.service_by_ip(addr.ip()) {
                    let (ns, name) = (ns.to_string(), name.to_string());
                    return self.service_profile(&ns, &name, addr.port(), context);
                }
                if let Some((ns, pod, _)) = self.endpoints.pod_by_ip(addr.ip()) {
                    let (ns, pod) = (ns.to_string(), pod.to_string());
                    return self.endpoint_profile(&ns, &pod, *addr);
                }
                Profile::default_for(String::new())
            }
        }
    }
}

impl crate::control_plane::policy::DiscoverPolicy for SharedIndex {
    fn changes(&self) -> watch::Receiver<u64> {
        self.read().changes()
    }

    fn inbound(
        &self,
        spec: &trellis_api::inbound::PortSpec,
    ) -> Result<trellis_api::inbound::ServerPolicy, LookupError> {
        self.read().inbound_policy(spec)
    }

    fn outbound(
        &self,
        spec: &trellis_api::outbound::TrafficSpec,
    ) -> Result<trellis_api::outbound::OutboundPolicy, LookupError> {
        self.read().outbound_policy(spec)
    }
}

impl Index {
    /// The outbound policy of a Service port (by ClusterIP or by name).
    pub fn outbound_policy(
        &self,
        spec: &trellis_api::outbound::TrafficSpec,
    ) -> Result<trellis_api::outbound::OutboundPolicy, LookupError> {
        use trellis_api::outbound::{AppProtocol, OutboundPolicy, ServiceRef, TrafficTarget};
        let domain = &self.settings.cluster_domain;
        let (ns, name, port) = match &spec.target {
            TrafficTarget::Addr(addr) => {
                let (ns, name) = self.endpoints.service_by_ip(addr.ip()).ok_or_else(|| {
                    LookupError::NotFound(format!("{addr} is not a Service address"))
                })?;
                (ns.to_string(), name.to_string(), addr.port())
            }
            TrafficTarget::Authority(authority) => {
                match Target::parse(authority, domain)
                    .map_err(|e| LookupError::Invalid(e.to_string()))?
                {
                    Target::Service {
                        namespace,
                        name,
                        port,
                    } => (namespace, name, port),
                    _ => {
                        return Err(LookupError::Invalid(format!(
                            "{authority} must be <svc>.<ns>.svc.{domain}[:port]"
                        )));
                    }
                }
            }
        };
        let svc = self
            .endpoints
            .services
            .get(&(ns.clone(), name.clone()))
            .ok_or_else(|| LookupError::NotFound(format!("Service {ns}/{name}")))?;
        let protocol = if self.is_opaque_service_port(&ns, &name, port) {
            AppProtocol::Opaque
        } else {
            match svc.ports.get(&port).and_then(|(_, p)| p.as_deref()) {
                Some("http") => AppProtocol::Http1,
                Some("kubernetes.io/h2c") => AppProtocol::Http2,
                _ => AppProtocol::Detect,
            }
        };
        let service = ServiceRef {
            namespace: ns.clone(),
            name: name.clone(),
            port,
        };
        let mut policy = OutboundPolicy::service_default(
            service.clone(),
            format!("{name}.{ns}.svc.{domain}:{port}"),
            protocol,
        );
        let annotations = Annotations::new(&svc.annotations, None);
        let client_ns = spec.source.as_ref().map(|w| w.namespace.as_str());
        match self.service_routes(&service, client_ns) {
            Some(routes) => policy.routes = routes,
            None => default_route_annotations(&mut policy, &annotations),
        }
        match annotations.failure_accrual() {
            Ok(accrual) => policy.failure_accrual = accrual,
            Err(error) => {
                tracing::warn!(%ns, svc = %name, %error, "Failure accrual annotation ignored");
            }
        }
        Ok(policy)
    }
}

/// Applies a Service's retry and timeout annotations to its default route (as Linkerd does);
/// invalid ones are logged and ignored.
fn default_route_annotations(
    policy: &mut trellis_api::outbound::OutboundPolicy,
    annotations: &Annotations<'_>,
) {
    let svc = &policy.service;
    let (timeouts, retry) = match (
        annotations.timeouts(),
        annotations.retry(trellis_api::route::RouteKind::Http),
    ) {
        (Ok(t), Ok(r)) => (t, r),
        (t, r) => {
            for error in t.err().into_iter().chain(r.err()) {
                tracing::warn!(ns = %svc.namespace, svc = %svc.name, %error, "Route annotation ignored");
            }
            return;
        }
    };
    for rule in policy.routes.iter_mut().flat_map(|r| r.rules.iter_mut()) {
        rule.timeouts = timeouts;
        rule.retry = retry.clone();
    }
}
