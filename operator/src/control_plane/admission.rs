//! The admission server: serves the webhooks of [`trellis_webhooks`] from the `controller` role.
//!
//! The serving certificate comes from the `trellis-webhook-tls` Secret in the control-plane
//! namespace, read through the API and reloaded on every change (no restart). The injection
//! settings follow the Mesh the controller follows, with the trust bundle of the
//! `trellis-identity-trust-roots` ConfigMap the operator renders (every anchor proxies must
//! trust, more than one during a rotation), whatever the issuer's source. Whether the proxy is
//! a native sidecar follows the apiserver's version, read once at start. The listener is
//! bound first ([`WebhookServer::bind`]) and accepts connections once a certificate, the Mesh
//! and a PEM trust bundle are known, so no pod is injected with a proxy that cannot start;
//! until then it logs and waits.

use std::{net::SocketAddr, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;
use trellis_api::well_known;
use trellis_crds::{
    settings::{MeshSettings, error::Error as SettingsError},
    v1alpha1::mesh::{Mesh, MeshSpec},
};
use trellis_webhooks::{
    State,
    inject::template::{InjectConfig, native_sidecar_supported, trust_anchors_valid},
    tls::CertResolver,
};

use crate::watch_named::named;
use crate::{admin::ReadyFlag, config::ControllerConfig, pki::cert::parse_pem_bundle};

/// Attempts at reading the apiserver version before falling back to a regular sidecar.
pub const VERSION_ATTEMPTS: u32 = 5;
/// Pause between attempts at reading the apiserver version.
pub const VERSION_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests;

/// What the webhook server needs to start.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// TLS listener.
    pub addr: SocketAddr,
    /// The Mesh whose proxy settings the injector uses.
    pub mesh_name: String,
    /// Namespace of the control plane (holds the webhook TLS Secret and the trust roots).
    pub namespace: String,
    /// Repository of the default proxy image, `<repository>/proxy:<spec.version>`.
    pub image_repository: String,
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// Networks the injected proxies treat as in-cluster.
    pub cluster_networks: Vec<ipnet::IpNet>,
}

impl From<&ControllerConfig> for WebhookSettings {
    fn from(config: &ControllerConfig) -> Self {
        Self {
            addr: config.webhook_addr,
            mesh_name: config.mesh_name.clone(),
            namespace: config.control_plane_namespace.clone(),
            image_repository: config.image_repository.clone(),
            cluster_domain: config.cluster_domain.clone(),
            cluster_networks: config.cluster_networks.clone(),
        }
    }
}

/// Why the webhook server stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The listener could not be bound.
    #[error("bind webhook listener {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bound listener has no local address.
    #[error("webhook listener address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// The server failed.
    #[error("webhook server: {0}")]
    Serve(#[from] trellis_webhooks::error::Error),
}

/// The webhook server with its listener bound, not yet serving.
#[derive(Debug)]
pub struct WebhookServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: WebhookSettings,
}

impl WebhookServer {
    /// Binds the listener of `settings` (port 0 picks a free port).
    pub async fn bind(settings: WebhookSettings) -> Result<Self, WebhookError> {
        let addr = settings.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| WebhookError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(WebhookError::LocalAddr)?;
        Ok(Self {
            listener,
            local_addr,
            settings,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Follows the TLS Secret, the Mesh and the trust bundle, and serves the webhooks once a
    /// certificate, the Mesh and a trust bundle are known (then `ready_flag` is set), until
    /// `shutdown`; requests in flight then drain.
    pub async fn run(
        self,
        client: Client,
        ready_flag: ReadyFlag,
        shutdown: CancellationToken,
    ) -> Result<(), WebhookError> {
        let Self {
            listener,
            local_addr,
            settings,
        } = self;
        let (ready_tx, mut ready_rx) = watch::channel(None);
        let follow = follow(client, settings, ready_tx, shutdown.clone());
        let serve = async {
            let ready = tokio::select! {
                () = shutdown.cancelled() => None,
                ready = ready_rx.wait_for(Option::is_some) => ready.ok().and_then(|r| (*r).clone()),
            };
            let Some((certs, state)) = ready else {
                return Ok(());
            };
            tracing::info!(%local_addr, "Webhook certificate, Mesh and trust bundle loaded; serving");
            ready_flag.set(true);
            let stop = shutdown.clone();
            trellis_webhooks::tls::serve(listener, certs, state, async move {
                stop.cancelled().await;
            })
            .await
        };
        let ((), served) = tokio::join!(follow, serve);
        served.map_err(Into::into)
    }
}

/// The certificate and state the server starts with, once both are known.
type Ready = Option<(Arc<CertResolver>, State)>;

/// What the followers have seen so far.
struct Followed {
    settings: WebhookSettings,
    client: Client,
    /// Whether the cluster runs native sidecars.
    native_sidecar: bool,
    /// The last valid Mesh settings.
    mesh: Option<MeshSettings>,
    /// The last valid PEM trust bundle; `None` until one is loaded.
    trust_bundle: Option<String>,
    certs: Option<Arc<CertResolver>>,
    /// Created once the Mesh and a trust bundle are known.
    state: Option<State>,
}

impl Followed {
    fn new(settings: WebhookSettings, client: Client, native_sidecar: bool) -> Self {
        Self {
            settings,
            client,
            native_sidecar,
            mesh: None,
            trust_bundle: None,
            certs: None,
            state: None,
        }
    }

    /// The injector's settings for `mesh` and `trust_bundle`.
    fn inject_config(&self, mesh: &MeshSettings, trust_bundle: &str) -> InjectConfig {
        let mut config =
            InjectConfig::from_settings(mesh, &self.settings.image_repository, trust_bundle);
        config.native_sidecar = self.native_sidecar;
        config.cluster_domain = self.settings.cluster_domain.clone();
        if !self.settings.cluster_networks.is_empty() {
            config.cluster_networks = self
                .settings
                .cluster_networks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
        }
        config
    }

    /// Applies the current Mesh and trust bundle to the state, creating it the first time
    /// both are known.
    fn apply_inject_config(&mut self) {
        let (Some(mesh), Some(bundle)) = (&self.mesh, &self.trust_bundle) else {
            return;
        };
        let config = self.inject_config(mesh, bundle);
        match &self.state {
            Some(state) => state.set_inject_config(config),
            None => self.state = Some(State::with_client(config, self.client.clone())),
        }
    }

    fn apply_tls_secret(&mut self, secret: &Secret) {
        let name = well_known::WEBHOOK_TLS_SECRET;
        let (Some(cert), Some(key)) = (
            secret_value(secret, well_known::TLS_CERT_KEY),
            secret_value(secret, well_known::TLS_KEY_KEY),
        ) else {
            tracing::warn!(%name, "Webhook TLS Secret lacks tls.crt or tls.key; keeping the current certificate");
            return;
        };
        let loaded = match &self.certs {
            Some(certs) => certs.reload_pem(cert, key),
            None => CertResolver::from_pem(cert, key).map(|certs| {
                self.certs = Some(Arc::new(certs));
            }),
        };
        if let Err(error) = loaded {
            tracing::warn!(%name, %error, "Webhook certificate not loaded; keeping the current one");
        }
    }

    /// Takes the trust bundle from the trust-roots ConfigMap when it holds PEM certificates;
    /// otherwise keeps the current one (none at first, so nothing is injected yet).
    fn apply_trust_roots(&mut self, config_map: &ConfigMap) {
        let name = well_known::TRUST_ROOTS_CONFIGMAP;
        let key = well_known::TRUST_ROOTS_KEY;
        let Some(bundle) = config_map.data.as_ref().and_then(|data| data.get(key)) else {
            tracing::warn!(%name, %key, "Trust-roots ConfigMap lacks the bundle; keeping the current trust bundle");
            return;
        };
        let anchors = match parse_pem_bundle(bundle) {
            Ok(anchors) if trust_anchors_valid(bundle) => anchors.len(),
            Ok(_) => {
                tracing::warn!(%name, "Trust bundle holds undecodable PEM; keeping the current one");
                return;
            }
            Err(reason) => {
                tracing::warn!(%name, %reason, "Trust bundle not loaded; keeping the current one");
                return;
            }
        };
        if self.trust_bundle.as_deref() != Some(bundle.as_str()) {
            tracing::info!(%name, anchors, "Trust bundle loaded");
            self.trust_bundle = Some(bundle.clone());
            self.apply_inject_config();
        }
    }

    /// Checks `mesh` once and applies it; an invalid spec keeps the current injection
    /// settings and is returned.
    fn apply_mesh(&mut self, mesh: &MeshSpec) -> Result<(), SettingsError> {
        self.mesh = Some(MeshSettings::try_from(mesh)?);
        self.apply_inject_config();
        Ok(())
    }

    fn ready(&self) -> Ready {
        Some((self.certs.clone()?, self.state.clone()?))
    }
}

fn secret_value<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|v| v.0.as_slice())
}

/// Whether the apiserver runs native sidecars, from its version; a regular sidecar (which
/// works on every version) when the version cannot be read.
async fn detect_native_sidecar(client: &Client, shutdown: &CancellationToken) -> bool {
    for attempt in 1..=VERSION_ATTEMPTS {
        match client.apiserver_version().await {
            Ok(info) => {
                let native = native_sidecar_supported(&info.major, &info.minor);
                tracing::info!(version = %info.git_version, native_sidecar = native, "Read the apiserver version");
                return native;
            }
            Err(error) => {
                tracing::debug!(%error, attempt, "Could not read the apiserver version");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(VERSION_RETRY) => {}
        }
    }
    tracing::warn!(
        "Could not read the apiserver version; injecting the proxy as a regular container"
    );
    false
}

/// Follows the webhook TLS Secret, the trust-roots ConfigMap and the Mesh until `shutdown`,
/// publishing the certificate and state on `ready` once all are known.
async fn follow(
    client: Client,
    settings: WebhookSettings,
    ready: watch::Sender<Ready>,
    shutdown: CancellationToken,
) {
    let native_sidecar = detect_native_sidecar(&client, &shutdown).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &settings.namespace);
    let mut tls = std::pin::pin!(named(secrets, well_known::WEBHOOK_TLS_SECRET));
    let mut roots = std::pin::pin!(named(config_maps, well_known::TRUST_ROOTS_CONFIGMAP));
    let mut meshes = std::pin::pin!(named(Api::<Mesh>::all(client.clone()), &settings.mesh_name));
    let namespace = settings.namespace.clone();
    let mesh_name = settings.mesh_name.clone();
    let mut followed = Followed::new(settings, client, native_sidecar);
    tracing::info!(
        %namespace,
        secret = well_known::WEBHOOK_TLS_SECRET,
        config_map = well_known::TRUST_ROOTS_CONFIGMAP,
        mesh = %mesh_name,
        "Webhooks wait for their certificate, the trust bundle and the Mesh"
    );
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            Some(next) = tls.next() => match next {
                Ok(secret) => followed.apply_tls_secret(&secret),
                Err(error) => tracing::warn!(%namespace, %error, "Webhook TLS Secret watch failed"),
            },
            Some(next) = roots.next() => match next {
                Ok(config_map) => followed.apply_trust_roots(&config_map),
                Err(error) => tracing::warn!(%namespace, %error, "Trust-roots ConfigMap watch failed"),
            },
            Some(next) = meshes.next() => match next {
                Ok(mesh) => match followed.apply_mesh(&mesh.spec) {
                    Ok(()) => tracing::info!(mesh = %mesh_name, "Injection settings applied"),
                    Err(error) => tracing::warn!(
                        mesh = %mesh_name,
                        %error,
                        "Mesh spec invalid; keeping the current injection settings"
                    ),
                },
                Err(error) => tracing::warn!(mesh = %mesh_name, %error, "Mesh watch failed"),
            },
            else => return,
        }
        if ready.borrow().is_none()
            && let Some(r) = followed.ready()
        {
            ready.send_replace(Some(r));
        }
    }
}
