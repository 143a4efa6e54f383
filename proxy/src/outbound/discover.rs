//! Outbound discovery: `GetProfile` names a target's Service, `Destination.Get` streams its
//! endpoints; each target's endpoint set is watched and kept when the controller fails.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::{Code, transport::Channel};
use trellis_api::linkerd2_proxy_api::destination::{
    self as wire, GetDestination, destination_client::DestinationClient,
};

use crate::{drain::Drain, tls};

/// How long a lookup waits for the controller's first answer before falling back to the
/// original destination.
pub const PROFILE_TIMEOUT: Duration = Duration::from_secs(3);
/// First retry delay after a failed stream.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// One endpoint from discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Address.
    pub addr: SocketAddr,
    /// The peer proxy's identity; `None` means plaintext.
    pub identity: Option<String>,
    /// Whether HTTP/1 may be carried over HTTP/2 to this endpoint.
    pub h2: bool,
    /// Whether the endpoint's port is opaque.
    pub opaque: bool,
    /// The peer's inbound port, when opaque traffic must carry a transport header.
    pub opaque_transport: Option<u16>,
    /// Metric labels (exported as `dst_<key>`).
    pub labels: BTreeMap<String, String>,
}

impl Endpoint {
    /// Converts a wire endpoint, merging the set's labels; `None` without a valid address.
    pub fn from_wire(
        addr: wire::WeightedAddr,
        set_labels: &HashMap<String, String>,
    ) -> Option<Self> {
        use wire::{protocol_hint::Protocol, tls_identity::Strategy};
        let sock = SocketAddr::try_from(addr.addr?).ok()?;
        let identity = addr.tls_identity.and_then(|t| match t.strategy? {
            Strategy::DnsLikeIdentity(d) => Some(d.name),
            Strategy::UriLikeIdentity(u) => t.server_name.map(|s| s.name).or(Some(u.uri)),
        });
        let (protocol, opaque_transport) = match addr.protocol_hint {
            Some(h) => (
                h.protocol,
                h.opaque_transport
                    .and_then(|t| u16::try_from(t.inbound_port).ok())
                    .filter(|p| *p != 0),
            ),
            None => (None, None),
        };
        let mut labels: BTreeMap<String, String> = set_labels.clone().into_iter().collect();
        labels.extend(addr.metric_labels);
        Some(Self {
            addr: sock,
            identity: identity.filter(|i| !i.is_empty()),
            h2: matches!(protocol, Some(Protocol::H2(_))),
            opaque: matches!(protocol, Some(Protocol::Opaque(_))),
            opaque_transport,
            labels,
        })
    }
}

/// What discovery says about an original destination.
#[derive(Clone, Debug)]
pub enum Resolution {
    /// Not meshed or not known: go to the original destination.
    Forward,
    /// A Service: balance over its endpoints (`name:port` is the logical name).
    Balance {
        /// `<svc>.<ns>.svc.<domain>:<port>`.
        name: String,
        /// The current endpoint set, keyed by address.
        endpoints: watch::Receiver<Arc<BTreeMap<SocketAddr, Endpoint>>>,
        /// The profile marks the target opaque.
        opaque: bool,
    },
    /// One known endpoint (a pod IP).
    Endpoint(Endpoint),
}

/// Resolves original destinations through a destination controller, caching each target.
#[derive(Debug)]
pub struct Resolver {
    client: DestinationClient<Channel>,
    context: String,
    creds: Option<Arc<tls::Store>>,
    cache: Mutex<HashMap<SocketAddr, Resolution>>,
    drain: Drain,
}

impl Resolver {
    /// A resolver over `client`; `creds` (for mTLS) is awaited before the first call.
    pub fn new(
        client: DestinationClient<Channel>,
        context: String,
        creds: Option<Arc<tls::Store>>,
        drain: Drain,
    ) -> Self {
        Self {
            client,
            context,
            creds,
            cache: Mutex::default(),
            drain,
        }
    }

    /// Resolves `target`, from the cache when it was seen before.
    pub async fn resolve(&self, target: SocketAddr) -> Resolution {
        if let Some(res) = self.cache.lock().get(&target) {
            return res.clone();
        }
        let res = match tokio::time::timeout(PROFILE_TIMEOUT, self.lookup(target)).await {
            Ok(Ok(res)) => res,
            Ok(Err(status)) => {
                // Transient: not cached, so the next connection asks again.
                tracing::info!(%target, %status, "Discovery unavailable; forwarding to the original destination");
                return Resolution::Forward;
            }
            Err(_) => {
                tracing::info!(%target, "Discovery timed out; forwarding to the original destination");
                return Resolution::Forward;
            }
        };
        self.cache.lock().insert(target, res.clone());
        res
    }

    /// Looks `target` up; `Err` for transient failures.
    async fn lookup(&self, target: SocketAddr) -> Result<Resolution, tonic::Status> {
        if let Some(creds) = &self.creds {
            creds.certified().await;
        }
        let mut client = self.client.clone();
        let req = GetDestination {
            scheme: String::new(),
            path: target.to_string(),
            context_token: self.context.clone(),
        };
        let profile = match client.get_profile(req).await {
            Ok(rsp) => rsp.into_inner().message().await,
            Err(status) => Err(status),
        };
        let profile = match profile {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Resolution::Forward),
            Err(status)
                if matches!(
                    status.code(),
                    Code::InvalidArgument | Code::FailedPrecondition
                ) =>
            {
                tracing::debug!(%target, %status, "No profile; forwarding to the original destination");
                return Ok(Resolution::Forward);
            }
            Err(status) => return Err(status),
        };
        if let Some(ep) = profile
            .endpoint
            .and_then(|e| Endpoint::from_wire(e, &HashMap::new()))
        {
            return Ok(Resolution::Endpoint(ep));
        }
        let fqn = profile.fully_qualified_name.trim_end_matches('.');
        if fqn.is_empty() {
            return Ok(Resolution::Forward);
        }
        let name = format!("{fqn}:{}", target.port());
        let (tx, rx) = watch::channel(Arc::new(BTreeMap::new()));
        let task = watch_endpoints(client, name.clone(), self.context.clone(), tx);
        let drain = self.drain.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = task => {}
                () = drain.signaled() => {}
            }
        });
        Ok(Resolution::Balance {
            name,
            endpoints: rx,
            opaque: profile.opaque_protocol,
        })
    }
}

/// Follows `Destination.Get` for `path`, resubscribing with backoff and keeping the last
/// set while the controller is unreachable.
async fn watch_endpoints(
    mut client: DestinationClient<Channel>,
    path: String,
    context_token: String,
    tx: watch::Sender<Arc<BTreeMap<SocketAddr, Endpoint>>>,
) {
    use wire::update::Update;
    let mut backoff = BACKOFF_MIN;
    loop {
        let req = GetDestination {
            scheme: String::new(),
            path: path.clone(),
            context_token: context_token.clone(),
        };
        let status =
            match client.get(req).await {
                Err(status) => status,
                Ok(rsp) => {
                    let mut stream = rsp.into_inner();
                    // A resubscription starts from an empty set, applied at its first `add`.
                    let mut fresh = true;
                    loop {
                        match stream.message().await {
                            Ok(Some(update)) => {
                                backoff = BACKOFF_MIN;
                                let mut set = if fresh {
                                    BTreeMap::new()
                                } else {
                                    (**tx.borrow()).clone()
                                };
                                fresh = false;
                                match update.update {
                                    Some(Update::Add(add)) => {
                                        for ep in add.addrs.into_iter().filter_map(|a| {
                                            Endpoint::from_wire(a, &add.metric_labels)
                                        }) {
                                            set.insert(ep.addr, ep);
                                        }
                                    }
                                    Some(Update::Remove(rm)) => {
                                        for addr in rm.addrs {
                                            if let Ok(a) = SocketAddr::try_from(addr) {
                                                set.remove(&a);
                                            }
                                        }
                                    }
                                    Some(Update::NoEndpoints(_)) => set.clear(),
                                    None => continue,
                                }
                                tracing::debug!(%path, endpoints = set.len(), "Endpoints updated");
                                tx.send_replace(Arc::new(set));
                            }
                            Ok(None) => break tonic::Status::ok("stream ended"),
                            Err(status) => break status,
                        }
                    }
                }
            };
        if matches!(
            status.code(),
            Code::InvalidArgument | Code::FailedPrecondition
        ) {
            tracing::warn!(%path, %status, "Endpoint watch rejected");
            return;
        }
        tracing::debug!(%path, %status, ?backoff, "Endpoint watch ended; resubscribing");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
