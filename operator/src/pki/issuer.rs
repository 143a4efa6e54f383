//! The issuer: loads the CA from its Secret, checks it against the trust anchors, signs leaves,
//! and follows the Secret so a rotated issuer is used without a restart.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::watch_named::named_until;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use parking_lot::RwLock;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, ExtendedKeyUsagePurpose,
    Issuer as RcgenIssuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use trellis_api::{identity::CertifyResponse, well_known};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why issuer material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// A key of the Secret is missing.
    #[error("issuer secret lacks key {0}")]
    MissingKey(&'static str),
    /// PEM that does not parse.
    #[error("{what} is not valid PEM: {reason}")]
    Pem {
        /// Which item.
        what: &'static str,
        /// Parser message.
        reason: String,
    },
    /// A certificate that does not parse.
    #[error("{what} is not a valid X.509 certificate")]
    Certificate {
        /// Which item.
        what: &'static str,
    },
    /// The issuer key is unusable.
    #[error("issuer key: {0}")]
    Key(#[source] rcgen::Error),
    /// The issuer certificate is not a CA, does not match its key, or does not chain.
    #[error("issuer certificate {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[source] rcgen::Error),
}

/// Issuer material in PEM, as the issuer Secret holds it.
#[derive(Clone)]
pub struct IssuerPem {
    /// The issuer certificate (`tls.crt`), possibly followed by its own parents.
    pub cert_chain: String,
    /// The issuer key, PKCS#8 (`tls.key`).
    pub key: String,
    /// The trust anchors (`ca.crt`).
    pub trust_anchors: String,
}

impl std::fmt::Debug for IssuerPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerPem").finish_non_exhaustive()
    }
}

impl IssuerPem {
    /// Reads the `kubernetes.io/tls` issuer Secret.
    pub fn from_secret(secret: &Secret) -> Result<Self, IssuerError> {
        let get = |key: &'static str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                .filter(|v| !v.trim().is_empty())
                .ok_or(IssuerError::MissingKey(key))
        };
        Ok(Self {
            cert_chain: get(well_known::TLS_CERT_KEY)?,
            key: get(well_known::TLS_KEY_KEY)?,
            trust_anchors: get(well_known::TLS_CA_KEY)?,
        })
    }
}

/// Lifetimes of issued leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafLifetime {
    /// How long a leaf is valid.
    pub lifetime: Duration,
    /// Allowance for clocks that differ, on both ends of the validity.
    pub clock_skew: Duration,
}

/// Default lifetime of an issued leaf.
pub const DEFAULT_LEAF_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Default clock-skew allowance of an issued leaf.
pub const DEFAULT_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(20);

/// Mesh settings the identity server follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentitySettings {
    /// Trust domain of identity names.
    pub trust_domain: String,
    /// Lifetime and skew of issued leaves.
    pub leaf: LeafLifetime,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            trust_domain: well_known::DEFAULT_TRUST_DOMAIN.to_string(),
            leaf: LeafLifetime {
                lifetime: DEFAULT_LEAF_LIFETIME,
                clock_skew: DEFAULT_CLOCK_SKEW,
            },
        }
    }
}

/// A loaded issuer, ready to sign.
pub struct Issuer {
    signer: RcgenIssuer<'static, KeyPair>,
    /// Issuer chain in DER, issuer first.
    chain_der: Vec<Vec<u8>>,
    /// Trust anchors in DER.
    anchors_der: Vec<Vec<u8>>,
    /// Earliest expiry of the issuer chain and its anchors.
    not_after: SystemTime,
    serial: AtomicU64,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn pem_certs(what: &'static str, pem: &str) -> Result<Vec<Vec<u8>>, IssuerError> {
    let blocks = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IssuerError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if blocks.is_empty() {
        return Err(IssuerError::Pem {
            what,
            reason: "no CERTIFICATE block".to_string(),
        });
    }
    Ok(blocks)
}

fn x509<'a>(what: &'static str, der: &'a [u8]) -> Result<X509Certificate<'a>, IssuerError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|_| IssuerError::Certificate { what })
}

fn system_time(t: OffsetDateTime) -> SystemTime {
    let secs = t.unix_timestamp();
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH,
    }
}

impl Issuer {
    /// Loads and checks issuer material: the issuer is a CA, matches its key, is currently
    /// valid and is signed by one of the trust anchors.
    pub fn load(pem: &IssuerPem) -> Result<Self, IssuerError> {
        let chain_der = pem_certs("tls.crt", &pem.cert_chain)?;
        let anchors_der = pem_certs("ca.crt", &pem.trust_anchors)?;
        let key = KeyPair::from_pem(&pem.key).map_err(IssuerError::Key)?;
        let issuer_der = chain_der
            .first()
            .ok_or(IssuerError::Certificate { what: "tls.crt" })?;
        let cert = x509("tls.crt", issuer_der)?;
        if !cert.is_ca() {
            return Err(IssuerError::Invalid(
                "is not a CA (basicConstraints CA:false)".into(),
            ));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(IssuerError::Invalid("does not match tls.key".into()));
        }
        let now = OffsetDateTime::now_utc();
        let mut not_after = cert.validity().not_after.to_datetime();
        if cert.validity().not_before.to_datetime() > now || not_after < now {
            return Err(IssuerError::Invalid("is not valid now".into()));
        }
        let anchors = anchors_der
            .iter()
            .map(|der| x509("ca.crt", der))
            .collect::<Result<Vec<_>, _>>()?;
        // The issuer must chain to an anchor, directly or through the rest of tls.crt.
        let parents = chain_der
            .iter()
            .skip(1)
            .map(|der| x509("tls.crt", der))
            .collect::<Result<Vec<_>, _>>()?;
        let mut current = cert;
        let mut chained = false;
        for _ in 0..=parents.len() {
            if let Some(anchor) = anchors.iter().find(|a| {
                a.subject() == current.issuer()
                    && current.verify_signature(Some(a.public_key())).is_ok()
            }) {
                not_after = not_after.min(anchor.validity().not_after.to_datetime());
                chained = true;
                break;
            }
            let Some(parent) = parents.iter().find(|p| {
                p.subject() == current.issuer()
                    && current.verify_signature(Some(p.public_key())).is_ok()
            }) else {
                break;
            };
            not_after = not_after.min(parent.validity().not_after.to_datetime());
            current = parent.clone();
        }
        if !chained {
            return Err(IssuerError::Invalid(
                "does not chain to the trust anchors in ca.crt".into(),
            ));
        }
        let signer =
            RcgenIssuer::from_ca_cert_pem(&pem.cert_chain, key).map_err(IssuerError::Key)?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
            .unwrap_or(1);
        Ok(Self {
            signer,
            chain_der,
            anchors_der,
            not_after: system_time(not_after),
            serial: AtomicU64::new(seed),
        })
    }

    /// Issuer chain in DER, issuer first.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain_der
    }

    /// Trust anchors in DER.
    pub fn anchors_der(&self) -> &[Vec<u8>] {
        &self.anchors_der
    }

    /// Whether the issuer has expired.
    pub fn expired(&self) -> bool {
        self.not_after <= SystemTime::now()
    }

    /// Signs a leaf for `identity` with the key of `csr` (already checked); the subject and
    /// every extension are the issuer's.
    pub fn sign(
        &self,
        csr: CertificateSigningRequestParams,
        identity: &str,
        lifetime: &LeafLifetime,
    ) -> Result<CertifyResponse, IssuerError> {
        let now = OffsetDateTime::now_utc();
        let issuer_not_after = OffsetDateTime::from(self.not_after);
        let not_after = (now + lifetime.lifetime + lifetime.clock_skew).min(issuer_not_after);
        let mut params = CertificateParams::default();
        // The subject is ours, never the CSR's: only the identity, as common name.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, identity);
        params.subject_alt_names = vec![SanType::DnsName(
            identity.to_string().try_into().map_err(IssuerError::Sign)?,
        )];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.serial_number = Some(SerialNumber::from(
            self.serial.fetch_add(1, Ordering::Relaxed),
        ));
        params.not_before = now - lifetime.clock_skew;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let request = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let leaf = request.signed_by(&self.signer).map_err(IssuerError::Sign)?;
        Ok(CertifyResponse {
            leaf_der: leaf.der().to_vec(),
            intermediates_der: self.chain_der.clone(),
            valid_until: system_time(not_after),
        })
    }
}

/// The current issuer, swapped when its Secret changes. Clones share the slot.
#[derive(Clone, Debug, Default)]
pub struct SharedIssuer(Arc<RwLock<Option<Arc<Issuer>>>>);

impl SharedIssuer {
    /// A slot holding `issuer`.
    pub fn new(issuer: Issuer) -> Self {
        Self(Arc::new(RwLock::new(Some(Arc::new(issuer)))))
    }

    /// The current issuer, if one is loaded.
    pub fn get(&self) -> Option<Arc<Issuer>> {
        self.0.read().clone()
    }

    /// Loads `pem` and makes it current; on failure the previous issuer stays.
    pub fn update(&self, pem: &IssuerPem) -> Result<(), IssuerError> {
        let issuer = Issuer::load(pem)?;
        *self.0.write() = Some(Arc::new(issuer));
        Ok(())
    }

    /// Follows the issuer Secret `name` in `namespace` until `shutdown`, loading every version.
    ///
    /// A version that fails the checks is skipped (logged) and the previous issuer stays.
    pub async fn follow_secret(
        self,
        client: Client,
        namespace: String,
        name: String,
        shutdown: CancellationToken,
    ) {
        let api: Api<Secret> = Api::namespaced(client, &namespace);
        let mut secrets = std::pin::pin!(named_until(api, &name, shutdown));
        while let Some(next) = secrets.next().await {
            match next {
                Err(e) => {
                    tracing::warn!(error = %e, %namespace, %name, "Issuer Secret watch failed")
                }
                Ok(secret) => match IssuerPem::from_secret(&secret)
                    .and_then(|pem| self.update(&pem))
                {
                    Ok(()) => tracing::info!(%namespace, %name, "IssuerUpdated"),
                    Err(e) => tracing::warn!(error = %e, %namespace, %name, "IssuerUpdateSkipped"),
                },
            }
        }
    }
}
