//! Proxy identity: an in-process key and CSR, certified by the identity controller with the
//! pod's ServiceAccount token, and refreshed at 70% of each certificate's lifetime.

pub mod config;

use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};
use trellis_api::linkerd2_proxy_api::identity::{CertifyRequest, identity_client::IdentityClient};

use self::config::IdentityConfig;
use crate::{admin::Readiness, tls};

/// File name of the private key in the identity directory.
pub const KEY_FILE: &str = "key.p8";
/// File name of the CSR in the identity directory.
pub const CSR_FILE: &str = "csr.der";
/// Share of a certificate's remaining lifetime after which it is refreshed.
pub const REFRESH_RATIO: f64 = 0.7;

/// Identity failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The identity directory could not be used.
    #[error("identity directory {path}: {action} failed")]
    Dir {
        /// The path.
        path: String,
        /// What was attempted.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Key or CSR generation failed.
    #[error("generating the key and CSR for {name}")]
    Generate {
        /// The identity.
        name: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// The token could not be read or was empty.
    #[error("service account token {path}: {reason}")]
    Token {
        /// The path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The Certify call failed.
    #[error("certify: {0}")]
    Certify(#[source] tonic::Status),
    /// The response carried no expiry.
    #[error("certify response has no valid_until")]
    NoExpiry,
    /// The issued certificate did not verify or load.
    #[error("issued certificate rejected")]
    Rejected(#[source] tls::Error),
}

/// A key and CSR, as kept in the identity directory.
#[derive(Debug)]
pub struct KeyAndCsr {
    /// PKCS#8 DER private key.
    pub key: PrivatePkcs8KeyDer<'static>,
    /// DER CSR.
    pub csr: Vec<u8>,
}

/// Reads `key.p8` and `csr.der` from `dir`, or creates them (ECDSA P-256; CN and the only
/// DNS SAN are `name`; the key file has mode 0600).
pub fn load_or_create(dir: &Path, name: &str) -> Result<KeyAndCsr, Error> {
    let key_path = dir.join(KEY_FILE);
    let csr_path = dir.join(CSR_FILE);
    let err = |action, source| Error::Dir {
        path: dir.display().to_string(),
        action,
        source,
    };
    if key_path.exists() && csr_path.exists() {
        let key = std::fs::read(&key_path).map_err(|e| err("read key.p8", e))?;
        let csr = std::fs::read(&csr_path).map_err(|e| err("read csr.der", e))?;
        return Ok(KeyAndCsr {
            key: PrivatePkcs8KeyDer::from(key),
            csr,
        });
    }
    let generate = |source| Error::Generate {
        name: name.to_string(),
        source,
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(generate)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let csr = params.serialize_request(&key).map_err(generate)?;
    let key_der = key.serialize_der();
    std::fs::create_dir_all(dir).map_err(|e| err("create", e))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)
        .and_then(|mut f| f.write_all(&key_der))
        .map_err(|e| err("write key.p8", e))?;
    std::fs::write(&csr_path, csr.der()).map_err(|e| err("write csr.der", e))?;
    Ok(KeyAndCsr {
        key: PrivatePkcs8KeyDer::from(key_der),
        csr: csr.der().to_vec(),
    })
}

/// When to refresh: 70% of the remaining lifetime, clamped to `[min, max]`.
pub fn refresh_in(
    valid_until: SystemTime,
    now: SystemTime,
    min: Duration,
    max: Duration,
) -> Duration {
    let remaining = valid_until.duration_since(now).unwrap_or_default();
    remaining.mul_f64(REFRESH_RATIO).clamp(min, max)
}

/// Obtains and refreshes the proxy's certificate.
#[derive(Debug)]
pub struct Identity {
    config: IdentityConfig,
    roots: Arc<RootCertStore>,
    store: Arc<tls::Store>,
    readiness: Readiness,
    key_csr: KeyAndCsr,
}

impl Identity {
    /// Prepares the key and CSR; certification starts with [`Identity::run`].
    pub fn new(
        config: IdentityConfig,
        roots: Arc<RootCertStore>,
        store: Arc<tls::Store>,
        readiness: Readiness,
    ) -> Result<Self, Error> {
        let key_csr = load_or_create(&config.dir, &config.local_name)?;
        Ok(Self {
            config,
            roots,
            store,
            readiness,
            key_csr,
        })
    }

    /// Certifies forever: after a success, again at 70% of the lifetime; after a failure,
    /// after the minimum refresh interval. The proxy turns ready after the first success.
    pub async fn run(self, mut client: IdentityClient<tonic::transport::Channel>) {
        loop {
            let wait = match self.certify(&mut client).await {
                Ok(valid_until) => {
                    self.readiness.set_ready();
                    let wait = refresh_in(
                        valid_until,
                        SystemTime::now(),
                        self.config.min_refresh,
                        self.config.max_refresh,
                    );
                    tracing::info!(identity = %self.config.local_name, refresh_in = ?wait, "Certified identity");
                    wait
                }
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), retry_in = ?self.config.min_refresh, "Failed to certify identity");
                    self.config.min_refresh
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One Certify round: returns the new certificate's expiry once it is installed.
    pub async fn certify(
        &self,
        client: &mut IdentityClient<tonic::transport::Channel>,
    ) -> Result<SystemTime, Error> {
        let path = self.config.token_file.display().to_string();
        let token = tokio::fs::read(&self.config.token_file)
            .await
            .map_err(|e| Error::Token {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if token.is_empty() {
            return Err(Error::Token {
                path,
                reason: "empty".into(),
            });
        }
        let rsp = client
            .certify(CertifyRequest {
                identity: self.config.local_name.clone(),
                token,
                certificate_signing_request: self.key_csr.csr.clone(),
            })
            .await
            .map_err(Error::Certify)?
            .into_inner();
        let valid_until = rsp.valid_until.ok_or(Error::NoExpiry)?;
        let valid_until = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(valid_until.seconds).unwrap_or(0));
        let mut chain = vec![CertificateDer::from(rsp.leaf_certificate)];
        chain.extend(
            rsp.intermediate_certificates
                .into_iter()
                .map(CertificateDer::from),
        );
        tls::verify::check_leaf(&self.roots, &chain, &self.config.local_name)
            .map_err(Error::Rejected)?;
        self.store
            .set(chain, PrivateKeyDer::Pkcs8(self.key_csr.key.clone_key()))
            .map_err(Error::Rejected)?;
        Ok(valid_until)
    }
}

/// Displays an error and its sources on one line.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
