//! The Certify server (identity): `Certify` checks a proxy's token and CSR and signs its certificate.
//!
//! Order of checks (see the proxy API contract, section 6): issuer loaded, request fields
//! present and CSR parses, CSR shape, TokenReview, ServiceAccount username, derived identity.
//! Nothing is signed unless every check passes.

#[cfg(test)]
mod tests;
pub mod token;

use std::{num::NonZeroU32, sync::Arc};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use trellis_api::{
    identity::CertifyRequest,
    linkerd2_proxy_api::identity::{self as proto, identity_server},
    well_known,
};

pub use self::token::{ServiceAccountRef, TokenError, TokenReviewVerifier, TokenVerifier};
use crate::{
    control_plane::tls,
    pki::{
        csr::{self, CsrError},
        issuer::{IdentitySettings, IssuerError, SharedIssuer},
    },
};

/// Why a Certify request failed.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    /// No usable issuer.
    #[error("no issuer is loaded yet; check the {secret} Secret", secret = well_known::ISSUER_SECRET)]
    NoIssuer,
    /// The issuer has expired.
    #[error("the issuer certificate has expired; rotate the {secret} Secret", secret = well_known::ISSUER_SECRET)]
    IssuerExpired,
    /// A field is missing.
    #[error("invalid request: {0}")]
    Request(#[from] trellis_api::error::InvalidMessage),
    /// The CSR is malformed or has the wrong shape.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The token is refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The token proves another identity.
    #[error("identity mismatch: the token proves {proven}, the request asks for {requested}")]
    IdentityMismatch {
        /// The identity of the token's ServiceAccount.
        proven: String,
        /// The identity in the request.
        requested: String,
    },
    /// The identity asked for more certificates than its rate limit allows.
    #[error(
        "too many certificate requests for {identity}: at most {} at once and {} a second; retry later",
        limit.burst,
        limit.per_second
    )]
    RateLimited {
        /// The proven identity.
        identity: String,
        /// The limit it hit.
        limit: RateLimit,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[source] IssuerError),
}

impl CertifyError {
    /// A fixed label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NoIssuer | Self::IssuerExpired => "no_issuer",
            Self::Request(_) => "invalid_request",
            Self::Csr(CsrError::Malformed(_)) => "malformed_csr",
            Self::Csr(CsrError::Shape { .. }) => "csr_mismatch",
            Self::Token(TokenError::Review(_) | TokenError::NotText) => "token_review",
            Self::Token(_) => "token_refused",
            Self::IdentityMismatch { .. } => "identity_mismatch",
            Self::RateLimited { .. } => "rate_limited",
            Self::Sign(_) => "sign",
        }
    }
}

impl From<CertifyError> for Status {
    fn from(e: CertifyError) -> Self {
        let message = e.to_string();
        match e {
            CertifyError::NoIssuer | CertifyError::IssuerExpired => Status::unavailable(message),
            CertifyError::Request(_)
            | CertifyError::Csr(CsrError::Malformed(_))
            | CertifyError::Token(TokenError::Review(_) | TokenError::NotText) => {
                Status::invalid_argument(message)
            }
            CertifyError::Csr(CsrError::Shape { .. })
            | CertifyError::Token(_)
            | CertifyError::IdentityMismatch { .. } => Status::failed_precondition(message),
            CertifyError::RateLimited { .. } => Status::resource_exhausted(message),
            CertifyError::Sign(_) => Status::internal(message),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    reason: &'static str,
}

/// Identity server metrics.
#[derive(Clone, Debug, Default)]
pub struct IdentityMetrics {
    issued: Counter,
    errors: Family<ErrorLabels, Counter>,
}

impl IdentityMetrics {
    /// Metrics registered in `registry` under `identity_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("identity");
        sub.register(
            "certificates_issued",
            "Leaf certificates issued",
            metrics.issued.clone(),
        );
        sub.register(
            "certify_errors",
            "Certify requests refused, by reason",
            metrics.errors.clone(),
        );
        metrics
    }
}

/// Largest Certify request accepted, in bytes: a token and a CSR take a few KiB.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// How many certificates one identity may get: a burst (a rollout of many replicas that share
/// a ServiceAccount), then a steady rate. It bounds the signing work one client can cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed at once.
    pub burst: u32,
    /// Requests allowed per second once the burst is spent.
    pub per_second: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            burst: 50,
            per_second: 5,
        }
    }
}

impl RateLimit {
    fn limiter(self) -> DefaultKeyedRateLimiter<String> {
        let per_second = NonZeroU32::new(self.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
    }
}

/// The `Certify` service.
#[derive(Debug)]
pub struct IdentityService<V> {
    issuer: SharedIssuer,
    verifier: V,
    settings: watch::Receiver<IdentitySettings>,
    metrics: IdentityMetrics,
    limit: RateLimit,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl<V: TokenVerifier> IdentityService<V> {
    /// A service signing with `issuer` after checking tokens with `verifier`.
    pub fn new(
        issuer: SharedIssuer,
        verifier: V,
        settings: watch::Receiver<IdentitySettings>,
        metrics: IdentityMetrics,
    ) -> Self {
        Self {
            issuer,
            verifier,
            settings,
            metrics,
            limit: RateLimit::default(),
            limiter: RateLimit::default().limiter(),
        }
    }

    /// This service with `limit` per identity instead of the default.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.limit = limit;
        self.limiter = limit.limiter();
        self
    }

    /// This service as a tonic service, refusing requests over [`MAX_REQUEST_BYTES`].
    pub fn into_server(self) -> identity_server::IdentityServer<Self> {
        identity_server::IdentityServer::new(self).max_decoding_message_size(MAX_REQUEST_BYTES)
    }

    /// Runs every check and signs.
    pub async fn certify(
        &self,
        req: proto::CertifyRequest,
    ) -> Result<trellis_api::identity::CertifyResponse, CertifyError> {
        let issuer = self.issuer.get().ok_or(CertifyError::NoIssuer)?;
        let req = CertifyRequest::try_from(req)?;
        let csr = csr::parse(&req.csr_der)?;
        if issuer.expired() {
            return Err(CertifyError::IssuerExpired);
        }
        csr::check(&csr, &req.identity)?;
        let token = std::str::from_utf8(&req.token).map_err(|_| TokenError::NotText)?;
        let account = self.verifier.verify(token.trim()).await?;
        let settings = self.settings.borrow().clone();
        let proven = account.identity_name(&settings.trust_domain);
        if proven != req.identity {
            return Err(CertifyError::IdentityMismatch {
                proven,
                requested: req.identity,
            });
        }
        if self.limiter.check_key(&proven).is_err() {
            return Err(CertifyError::RateLimited {
                identity: proven,
                limit: self.limit,
            });
        }
        issuer
            .sign(csr, &req.identity, &settings.leaf)
            .map_err(CertifyError::Sign)
    }
}

#[tonic::async_trait]
impl<V: TokenVerifier> identity_server::Identity for IdentityService<V> {
    async fn certify(
        &self,
        request: Request<proto::CertifyRequest>,
    ) -> Result<Response<proto::CertifyResponse>, Status> {
        let identity = request.get_ref().identity.clone();
        match IdentityService::certify(self, request.into_inner()).await {
            Ok(rsp) => {
                self.metrics.issued.inc();
                tracing::debug!(%identity, "IssuedLeafCertificate");
                Ok(Response::new(rsp.into()))
            }
            Err(e) => {
                self.metrics
                    .errors
                    .get_or_create(&ErrorLabels {
                        reason: e.metric_label(),
                    })
                    .inc();
                tracing::info!(%identity, error = %e, "Certify refused");
                Err(e.into())
            }
        }
    }
}

/// Shared for `Arc`-wrapped verifiers.
impl<V: TokenVerifier> TokenVerifier for Arc<V> {
    fn verify(
        &self,
        token: &str,
    ) -> impl std::future::Future<Output = Result<ServiceAccountRef, TokenError>> + Send {
        V::verify(self, token)
    }
}

/// Serves `service` on `listener` until `shutdown`. Over TLS the server authenticates only
/// itself: its clients have no certificate yet.
pub async fn serve<V: TokenVerifier>(
    listener: tokio::net::TcpListener,
    service: IdentityService<V>,
    transport: tls::Transport,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), tls::ServeError> {
    use tonic::server::NamedService;
    let router = tonic::transport::Server::builder().add_service(service.into_server());
    let names = [identity_server::IdentityServer::<IdentityService<V>>::NAME];
    tls::serve_router(
        router,
        &names,
        listener,
        transport,
        tls::ClientAuth::None,
        shutdown,
    )
    .await
}
