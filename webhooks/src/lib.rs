//! Trellis admission webhooks, as a library the operator mounts on the webhook port.
//!
//! [`router`] answers AdmissionReviews: `POST /inject` is the mutating proxy injector
//! ([`inject`]) and `POST /validate` the validating webhook for the policy kinds
//! ([`validate`]). [`tls::serve`] serves it over TLS with a hot-reloadable certificate.
//! Start reading at [`inject::admit`]. Reads of other objects go through the traits in
//! [`lookup`], so tests can use fakes. This crate may depend on `trellis-api` and
//! `trellis-crds`, never on `trellis-operator` or `trellis-proxy`.

pub mod error;
pub mod inject;
pub mod lookup;
pub mod review;
pub mod tls;
pub mod validate;

#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    response::{IntoResponse, Response},
    routing::post,
};
use http::header;
use parking_lot::RwLock;
pub use trellis_api::well_known::WEBHOOK_PORT;

use crate::{
    error::Error,
    inject::template::InjectConfig,
    lookup::{KubeLookup, NamespaceLookup, PolicyLookup},
};

/// Path of the mutating (proxy injection) webhook.
pub const INJECT_PATH: &str = "/inject";
/// Path of the validating webhook.
pub const VALIDATE_PATH: &str = "/validate";

/// What the webhooks share: the current injection settings and the lookups.
#[derive(Clone)]
pub struct State {
    inject: Arc<RwLock<Arc<InjectConfig>>>,
    namespaces: Arc<dyn NamespaceLookup>,
    policies: Arc<dyn PolicyLookup>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("inject", &self.inject.read())
            .finish_non_exhaustive()
    }
}

impl State {
    /// State with `config` and the given lookups.
    pub fn new(
        config: InjectConfig,
        namespaces: Arc<dyn NamespaceLookup>,
        policies: Arc<dyn PolicyLookup>,
    ) -> Self {
        Self {
            inject: Arc::new(RwLock::new(Arc::new(config))),
            namespaces,
            policies,
        }
    }

    /// State whose lookups read from the apiserver through `client`.
    pub fn with_client(config: InjectConfig, client: kube::Client) -> Self {
        let lookup = Arc::new(KubeLookup::new(client));
        Self::new(config, lookup.clone(), lookup)
    }

    /// The injection settings in use.
    pub fn inject_config(&self) -> Arc<InjectConfig> {
        self.inject.read().clone()
    }

    /// Replaces the injection settings (a Mesh or trust bundle change); requests that
    /// arrive afterwards use them.
    pub fn set_inject_config(&self, config: InjectConfig) {
        *self.inject.write() = Arc::new(config);
    }
}

/// The webhook routes: `POST /inject` and `POST /validate`.
pub fn router(state: State) -> Router {
    Router::new()
        .route(INJECT_PATH, post(inject_handler))
        .route(VALIDATE_PATH, post(validate_handler))
        .with_state(state)
}

async fn inject_handler(
    axum::extract::State(state): axum::extract::State<State>,
    body: Bytes,
) -> Response {
    respond(inject::handle(&state, &body).await)
}

async fn validate_handler(
    axum::extract::State(state): axum::extract::State<State>,
    body: Bytes,
) -> Response {
    respond(validate::handle(&state, &body).await)
}

fn respond(result: Result<Vec<u8>, Error>) -> Response {
    match result {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => error.into_response(),
    }
}
