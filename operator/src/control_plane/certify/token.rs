//! ServiceAccount token verification: TokenReview behind the [`TokenVerifier`] trait.

use std::future::Future;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, Client, api::PostParams};
use trellis_api::{destination::is_dns_label, well_known};

/// The ServiceAccount a token proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountRef {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// Name of the ServiceAccount.
    pub name: String,
}

impl ServiceAccountRef {
    /// Parses `system:serviceaccount:<ns>:<sa>` (four parts, DNS-1123 labels).
    pub fn from_username(username: &str) -> Result<Self, TokenError> {
        let bad = || TokenError::NotServiceAccount(username.to_string());
        match username.split(':').collect::<Vec<_>>().as_slice() {
            ["system", "serviceaccount", ns, sa] if is_dns_label(ns) && is_subdomain(sa) => {
                Ok(Self {
                    namespace: (*ns).to_string(),
                    name: (*sa).to_string(),
                })
            }
            _ => Err(bad()),
        }
    }

    /// The identity name of this ServiceAccount in `trust_domain`.
    pub fn identity_name(&self, trust_domain: &str) -> String {
        well_known::identity_name(&self.name, &self.namespace, trust_domain)
    }
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not valid UTF-8 text.
    #[error("token is not UTF-8 text")]
    NotText,
    /// The TokenReview itself failed.
    #[error("token review failed: {0}")]
    Review(#[source] kube::Error),
    /// The apiserver did not authenticate the token.
    #[error("token not authenticated: {0}")]
    NotAuthenticated(String),
    /// The token authenticates something other than a ServiceAccount.
    #[error("token user {0:?} is not system:serviceaccount:<namespace>:<name>")]
    NotServiceAccount(String),
}

/// Turns a bearer token into the ServiceAccount it proves.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` (audience [`well_known::IDENTITY_TOKEN_AUDIENCE`]).
    fn verify(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<ServiceAccountRef, TokenError>> + Send;
}

/// Verifies tokens with a TokenReview at the apiserver.
#[derive(Clone)]
pub struct TokenReviewVerifier {
    api: Api<TokenReview>,
}

impl std::fmt::Debug for TokenReviewVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewVerifier")
            .finish_non_exhaustive()
    }
}

impl TokenReviewVerifier {
    /// A verifier that reviews tokens through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            api: Api::all(client),
        }
    }

    async fn review(&self, token: &str, audiences: Vec<String>) -> Result<TokenReview, TokenError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: Some(audiences),
            },
            ..TokenReview::default()
        };
        self.api
            .create(&PostParams::default(), &review)
            .await
            .map_err(TokenError::Review)
    }
}

impl TokenVerifier for TokenReviewVerifier {
    async fn verify(&self, token: &str) -> Result<ServiceAccountRef, TokenError> {
        // Always the mesh audience: a pod's ordinary apiserver token (no audience, or
        // another one) must never buy a mesh certificate.
        let audiences = vec![well_known::IDENTITY_TOKEN_AUDIENCE.to_string()];
        let status = self
            .review(token, audiences)
            .await?
            .status
            .unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(TokenError::NotAuthenticated(
                status
                    .error
                    .unwrap_or_else(|| "the apiserver rejected it".to_string()),
            ));
        }
        let username = status.user.and_then(|u| u.username).unwrap_or_default();
        ServiceAccountRef::from_username(&username)
    }
}
