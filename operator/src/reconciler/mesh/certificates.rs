//! Certificates of a Mesh: reads, validates, generates and renews the trust anchor, the issuer
//! and the webhook serving certificate (ECDSA P-256, rcgen).
//!
//! Material is operator state: it is read back from the Secrets first and only replaced when
//! a rule says so (missing, unparsable, expired, inside its renewal window, or no longer
//! signed by the current anchor). Material the user references is validated and never
//! written.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    jiff::{SignedDuration, Timestamp},
};
use kube::Api;
use trellis_api::well_known::{
    ISSUER_SECRET, TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY, TRUST_ANCHOR_SECRET, WEBHOOK_TLS_SECRET,
};
use trellis_crds::settings::{IssuerSettings, MeshSettings, TrustAnchorsSettings};

use crate::{
    pki::cert::{
        CertInfo, CertKey, generate_anchor, generate_issuer, generate_webhook, key_matches,
        parse_pem_bundle,
    },
    reconciler::{
        error::Error,
        render::{
            GeneratedSecret, IdentityRefs, secrets::IDENTITY_COMPONENT,
            webhook_configs::WEBHOOKS_COMPONENT,
        },
    },
};

/// Renew the webhook serving certificate this long before it expires.
pub const WEBHOOK_RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(30 * 24);

/// An event-worthy change the identity step made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// CamelCase reason.
    pub reason: &'static str,
    /// What happened, for people.
    pub note: String,
}

/// The outcome of the identity step.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// What rendering needs (including generated Secrets to apply).
    pub refs: IdentityRefs,
    /// Expiry of the anchor that expires first.
    pub anchor_not_after: Option<Timestamp>,
    /// Expiry of the issuer.
    pub issuer_not_after: Option<Timestamp>,
    /// Expiry of the webhook serving certificate.
    pub webhook_not_after: Option<Timestamp>,
    /// Generations and renewals made in this pass.
    pub changes: Vec<Change>,
    /// Warnings that do not stop the rollout (reason, message), like an anchor near expiry.
    pub warning: Option<(&'static str, String)>,
}

fn secret_string(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

async fn get_secret(api: &Api<Secret>, name: &str) -> Result<Option<Secret>, Error> {
    api.get_opt(name)
        .await
        .map_err(Error::kube(format!("get Secret {name}")))
}

/// The certificates of a Mesh, in the order they are ensured: each one after the first is
/// checked against, or signed by, what the one before produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The trust anchor(s) every proxy trusts.
    TrustAnchor,
    /// The issuer that signs workload certificates.
    Issuer,
    /// The admission webhooks' serving certificate and its CA.
    Webhook,
}

impl Kind {
    /// Every certificate, in the order they are ensured.
    pub const ALL: [Self; 3] = [Self::TrustAnchor, Self::Issuer, Self::Webhook];

    /// The Secret that holds the certificate when the operator generates it.
    pub fn secret(self) -> &'static str {
        match self {
            Self::TrustAnchor => TRUST_ANCHOR_SECRET,
            Self::Issuer => ISSUER_SECRET,
            Self::Webhook => WEBHOOK_TLS_SECRET,
        }
    }

    /// The component label of that Secret.
    fn component(self) -> &'static str {
        match self {
            Self::TrustAnchor | Self::Issuer => IDENTITY_COMPONENT,
            Self::Webhook => WEBHOOKS_COMPONENT,
        }
    }

    /// What it is called in messages.
    fn what(self) -> &'static str {
        match self {
            Self::TrustAnchor => "trust anchor",
            Self::Issuer => "issuer",
            Self::Webhook => "webhook certificate",
        }
    }
}

/// A certificate with its key (and its CA, when the Secret holds one), as read from a Secret
/// or just generated.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The certificate and key, PEM.
    pub pair: CertKey,
    /// The PEM under `ca.crt`, if any.
    pub ca: Option<String>,
    /// The first certificate of `pair.cert`.
    pub info: CertInfo,
    /// The first certificate of `ca`.
    pub ca_info: Option<CertInfo>,
}

impl Stored {
    fn new(pair: CertKey, ca: Option<String>) -> Option<Self> {
        let info = first_cert(&pair.cert)?;
        let ca_info = ca.as_deref().and_then(first_cert);
        Some(Self {
            pair,
            ca,
            info,
            ca_info,
        })
    }
}

fn first_cert(pem: &str) -> Option<CertInfo> {
    parse_pem_bundle(pem).ok()?.into_iter().next()
}

/// What to do with a certificate the operator generates.
#[derive(Debug)]
pub enum Verdict {
    /// The stored certificate is good: keep it.
    Keep(Box<Stored>),
    /// Generate a new one, and report this change.
    Replace(Change),
}

/// One pass over the certificates of a Mesh: what earlier certificates left for later ones,
/// and the outcome so far.
struct Pass<'a> {
    settings: &'a MeshSettings,
    now: Timestamp,
    /// The valid trust anchors, once known.
    anchors: Vec<CertInfo>,
    /// The PEM trust bundle, once known.
    anchor_bundle: String,
    /// The anchor that can sign an issuer (its key is known), once known.
    signer: Option<CertKey>,
    out: Outcome,
}

/// Reads, validates and, where needed, generates the identity material of a Mesh: for each
/// [`Kind`], either the material the user references (validated, never written), or the
/// operator's own Secret, kept or replaced by [`Pass::verdict`].
///
/// Errors of kind [`Error::InvalidIdentityMaterial`] mean the user must fix something; the
/// caller then leaves the running mesh untouched.
pub async fn ensure(
    secrets: &Api<Secret>,
    configmaps: &Api<ConfigMap>,
    settings: &MeshSettings,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let mut pass = Pass::new(settings, now);
    for kind in Kind::ALL {
        let generated = match kind {
            Kind::TrustAnchor => matches!(
                settings.identity.trust_anchors,
                TrustAnchorsSettings::Generated { .. }
            ),
            Kind::Issuer => matches!(settings.identity.issuer, IssuerSettings::Generated { .. }),
            Kind::Webhook => true,
        };
        if !generated {
            pass.referenced(kind, secrets, configmaps).await?;
            continue;
        }
        pass.check(kind)?;
        let stored = read_stored(secrets, kind.secret()).await?;
        let stored = match pass.verdict(kind, stored)? {
            Verdict::Keep(stored) => *stored,
            Verdict::Replace(change) => {
                pass.out.changes.push(change);
                pass.generate(kind)?
            }
        };
        pass.record(kind, stored)?;
    }
    Ok(pass.out)
}

/// Reads a certificate, its key and its optional CA from Secret `name`; `None` when the
/// Secret, the certificate or the key is missing or the certificate does not parse.
async fn read_stored(secrets: &Api<Secret>, name: &str) -> Result<Option<Stored>, Error> {
    Ok(get_secret(secrets, name).await?.and_then(|s| {
        let pair = CertKey {
            cert: secret_string(&s, TLS_CERT_KEY)?,
            key: secret_string(&s, TLS_KEY_KEY)?,
        };
        Stored::new(pair, secret_string(&s, TLS_CA_KEY))
    }))
}

impl<'a> Pass<'a> {
    fn new(settings: &'a MeshSettings, now: Timestamp) -> Self {
        Self {
            settings,
            now,
            anchors: Vec::new(),
            anchor_bundle: String::new(),
            signer: None,
            out: Outcome::default(),
        }
    }

    fn ns(&self) -> &str {
        &self.settings.namespace
    }

    /// A checked duration of `spec.identity.<field>` as a signed one (the settings bound
    /// it, so this fails only for a spec that bypassed them).
    fn lifetime(&self, d: std::time::Duration, field: &str) -> Result<SignedDuration, Error> {
        SignedDuration::try_from(d)
            .map_err(|e| Error::InvalidSpec(format!("spec.identity.{field}: {e}")))
    }

    /// The name of the user's trust-anchor ConfigMap or Secret (empty when generated).
    fn anchors_name(&self) -> &str {
        match &self.settings.identity.trust_anchors {
            TrustAnchorsSettings::ConfigMap { name, .. }
            | TrustAnchorsSettings::Secret { name, .. } => name,
            TrustAnchorsSettings::Generated { .. } => "",
        }
    }

    /// The anchor that signs a generated issuer, with its parsed certificate.
    fn signer(&self) -> Result<(&CertKey, CertInfo), Error> {
        let anchor = self.signer.as_ref().ok_or_else(|| {
            Error::InvalidIdentityMaterial(format!(
                "identity.trustAnchors: Secret {}/{} has no tls.key, so the operator cannot sign an issuer: add the anchor's key or set identity.issuer.source to Secret",
                self.ns(),
                self.anchors_name()
            ))
        })?;
        let info = first_cert(&anchor.cert).ok_or_else(|| {
            Error::InvalidIdentityMaterial(
                "identity.trustAnchors: the signing anchor does not parse".to_string(),
            )
        })?;
        Ok((anchor, info))
    }

    /// Checks what generating or renewing `kind` needs from the spec and the certificates
    /// before it, before its Secret is read: the issuer needs a signing anchor and a valid
    /// renewal window.
    fn check(&self, kind: Kind) -> Result<(), Error> {
        if kind == Kind::Issuer {
            self.signer()?;
            self.issuer_renew_before()?;
        }
        Ok(())
    }

    fn issuer_renew_before(&self) -> Result<SignedDuration, Error> {
        self.lifetime(
            self.settings.identity.rotation.issuer_renew_before,
            "rotation.issuerRenewBefore",
        )
    }

    /// Keeps `stored`, or says why it must be replaced (see [`Pass::renewal`]).
    fn verdict(&self, kind: Kind, stored: Option<Stored>) -> Result<Verdict, Error> {
        let Some(stored) = stored else {
            return Ok(Verdict::Replace(self.missing(kind)));
        };
        Ok(match self.renewal(kind, &stored)? {
            Some(change) => Verdict::Replace(change),
            None => Verdict::Keep(Box::new(stored)),
        })
    }

    /// The change reported when the operator's Secret of `kind` is missing or unusable.
    fn missing(&self, kind: Kind) -> Change {
        let (ns, secret) = (self.ns(), kind.secret());
        match kind {
            Kind::TrustAnchor => Change {
                reason: "TrustAnchorGenerated",
                note: format!("generated trust anchor in Secret {ns}/{secret}"),
            },
            Kind::Issuer => Change {
                reason: "IssuerRenewed",
                note: format!("generated issuer in Secret {ns}/{secret}"),
            },
            Kind::Webhook => Change {
                reason: "WebhookCertificateIssued",
                note: format!("issued webhook serving certificate in Secret {ns}/{secret}"),
            },
        }
    }

    /// Why a stored certificate must be replaced, or `None` to keep it: it does not match
    /// its key, is not signed by what signs it now, has expired, or is inside its renewal
    /// window. An unusable anchor or webhook certificate counts as missing.
    fn renewal(&self, kind: Kind, stored: &Stored) -> Result<Option<Change>, Error> {
        let (info, now) = (&stored.info, self.now);
        let key_matches = key_matches(info, &stored.pair.key);
        let change = match kind {
            Kind::TrustAnchor if !(info.is_ca && key_matches) => Some(self.missing(kind)),
            Kind::TrustAnchor => (info.not_after <= now).then(|| Change {
                reason: "TrustAnchorExpired",
                note: format!(
                    "trust anchor expired at {}; generated a new one: meshed workloads must restart, connections between old and new proxies fail until they do",
                    info.not_after
                ),
            }),
            Kind::Issuer => {
                let (_, anchor) = self.signer()?;
                let renew_before = self.issuer_renew_before()?;
                let automatic = self.settings.identity.rotation.automatic;
                let why = if !key_matches {
                    Some("replaced issuer whose key did not match its certificate in".to_string())
                } else if info.issuer != anchor.subject {
                    Some("re-signed issuer with the current trust anchor in".to_string())
                } else if info.not_after <= now {
                    Some(format!("renewed issuer that expired at {} in", info.not_after))
                } else if automatic && info.not_after - renew_before <= now {
                    Some(format!("renewed issuer expiring at {} in", info.not_after))
                } else {
                    None
                };
                why.map(|why| Change {
                    reason: "IssuerRenewed",
                    note: format!("{why} {}/{}", self.ns(), kind.secret()),
                })
            }
            Kind::Webhook => {
                let signed = stored
                    .ca_info
                    .as_ref()
                    .is_some_and(|ca| info.issuer == ca.subject);
                let fresh = info.not_after - WEBHOOK_RENEW_BEFORE > now;
                (!(key_matches && signed && fresh)).then(|| self.missing(kind))
            }
        };
        Ok(change)
    }

    /// Generates a new certificate of `kind`.
    fn generate(&self, kind: Kind) -> Result<Stored, Error> {
        let id = &self.settings.identity;
        let td = id.trust_domain.as_str();
        let (pair, ca) = match kind {
            Kind::TrustAnchor => {
                let lifetime = match id.trust_anchors {
                    TrustAnchorsSettings::Generated { lifetime } => lifetime,
                    _ => std::time::Duration::ZERO,
                };
                let lifetime = self.lifetime(lifetime, "trustAnchors.lifetime")?;
                (generate_anchor(td, self.now, lifetime)?, None)
            }
            Kind::Issuer => {
                let lifetime = match id.issuer {
                    IssuerSettings::Generated { lifetime } => lifetime,
                    IssuerSettings::Secret { .. } => std::time::Duration::ZERO,
                };
                let lifetime = self.lifetime(lifetime, "issuer.lifetime")?;
                let (anchor, _) = self.signer()?;
                (generate_issuer(anchor, td, self.now, lifetime)?, None)
            }
            Kind::Webhook => {
                let (ca, pair) = generate_webhook(self.ns(), self.now)?;
                (pair, Some(ca))
            }
        };
        Stored::new(pair, ca).ok_or_else(|| {
            Error::InvalidIdentityMaterial(format!("generated {} does not parse", kind.what()))
        })
    }

    /// Records a certificate the operator owns: its Secret to apply, and what rendering and
    /// status need from it.
    fn record(&mut self, kind: Kind, stored: Stored) -> Result<(), Error> {
        let Stored { pair, ca, info, .. } = stored;
        let mut data = BTreeMap::from([
            (TLS_CERT_KEY.to_string(), pair.cert.clone()),
            (TLS_KEY_KEY.to_string(), pair.key.clone()),
        ]);
        match kind {
            Kind::TrustAnchor => {
                self.accept_anchors(pair.cert.clone(), Some(pair))?;
            }
            Kind::Issuer => {
                data.insert(TLS_CA_KEY.to_string(), self.anchor_bundle.clone());
                self.out.issuer_not_after = Some(info.not_after);
                self.out.refs.issuer_serial = info.serial;
                self.out.refs.issuer_secret = ISSUER_SECRET.to_string();
            }
            Kind::Webhook => {
                let ca = ca.unwrap_or_default();
                data.insert(TLS_CA_KEY.to_string(), ca.clone());
                self.out.webhook_not_after = Some(info.not_after);
                self.out.refs.webhook_serial = info.serial;
                self.out.refs.webhook_ca_bundle = ca;
            }
        }
        self.out.refs.secrets.push(GeneratedSecret {
            name: kind.secret().to_string(),
            component: kind.component().to_string(),
            data,
        });
        Ok(())
    }
    /// Takes the trust bundle: every anchor must parse and one must still be valid; warns
    /// when the first to expire is inside its renewal window.
    fn accept_anchors(&mut self, bundle: String, signer: Option<CertKey>) -> Result<(), Error> {
        let now = self.now;
        let anchors = parse_pem_bundle(&bundle).map_err(|e| {
            Error::InvalidIdentityMaterial(format!(
                "identity.trustAnchors: the trust anchors do not parse ({e}): supply PEM CA certificates"
            ))
        })?;
        let first_expiry = anchors
            .iter()
            .map(|a| a.not_after)
            .filter(|not_after| *not_after > now)
            .min();
        let Some(not_after) = first_expiry else {
            return Err(Error::InvalidIdentityMaterial(
                "identity.trustAnchors: every trust anchor has expired: supply a valid one"
                    .to_string(),
            ));
        };
        let window = self.lifetime(
            self.settings.identity.rotation.trust_anchor_renew_before,
            "rotation.trustAnchorRenewBefore",
        )?;
        if not_after - window <= now {
            self.out.warning = Some((
                trellis_crds::v1alpha1::mesh::reasons::TRUST_ANCHOR_EXPIRING,
                format!(
                    "the trust anchor expires at {not_after}: staged anchor rotation is not automated in this release; supply new anchors through identity.trustAnchors before then"
                ),
            ));
        }
        self.out.anchor_not_after = Some(not_after);
        self.out.refs.trust_bundle = bundle.clone();
        self.anchors = anchors;
        self.anchor_bundle = bundle;
        self.signer = signer;
        Ok(())
    }

    /// Takes material the user references instead of the operator's own Secret.
    async fn referenced(
        &mut self,
        kind: Kind,
        secrets: &Api<Secret>,
        configmaps: &Api<ConfigMap>,
    ) -> Result<(), Error> {
        match kind {
            Kind::TrustAnchor => {
                let (bundle, signer) = self.referenced_anchors(secrets, configmaps).await?;
                self.accept_anchors(bundle, signer)
            }
            Kind::Issuer => self.referenced_issuer(secrets).await,
            // The webhook certificate is always the operator's own.
            Kind::Webhook => Ok(()),
        }
    }

    /// The trust bundle from the user's ConfigMap or Secret, with the anchor's key when the
    /// Secret has one (then the operator can still sign a generated issuer).
    async fn referenced_anchors(
        &self,
        secrets: &Api<Secret>,
        configmaps: &Api<ConfigMap>,
    ) -> Result<(String, Option<CertKey>), Error> {
        let ns = self.ns();
        let (kind, name, key) = match &self.settings.identity.trust_anchors {
            TrustAnchorsSettings::Secret { name, key } => ("Secret", name, key),
            TrustAnchorsSettings::ConfigMap { name, key } => ("ConfigMap", name, key),
            // Not referenced: ensure() generates it instead.
            TrustAnchorsSettings::Generated { .. } => return Ok((String::new(), None)),
        };
        let absent = || {
            Error::InvalidIdentityMaterial(format!(
                "identity.trustAnchors: {kind} {ns}/{name} does not exist: create it with the PEM trust anchors under key {key}"
            ))
        };
        let no_key = || {
            Error::InvalidIdentityMaterial(format!(
                "identity.trustAnchors: {kind} {ns}/{name} has no key {key}: put the PEM trust anchors there or set identity.trustAnchors.key"
            ))
        };
        if kind == "Secret" {
            let secret = get_secret(secrets, name).await?.ok_or_else(absent)?;
            let pem = secret_string(&secret, key).ok_or_else(no_key)?;
            let signer = secret_string(&secret, TLS_KEY_KEY).map(|key| CertKey {
                cert: pem.clone(),
                key,
            });
            return Ok((pem, signer));
        }
        let cm = configmaps
            .get_opt(name)
            .await
            .map_err(Error::kube(format!("get ConfigMap {ns}/{name}")))?
            .ok_or_else(absent)?;
        let pem = cm.data.as_ref().and_then(|d| d.get(key)).cloned();
        Ok((pem.ok_or_else(no_key)?, None))
    }

    /// Validates the issuer in the user's Secret: a CA with its key, signed by a trust
    /// anchor and not expired. It is never written.
    async fn referenced_issuer(&mut self, secrets: &Api<Secret>) -> Result<(), Error> {
        let ns = self.ns().to_string();
        let name = match &self.settings.identity.issuer {
            IssuerSettings::Secret { name } => name.clone(),
            // Not referenced: ensure() generates it instead.
            IssuerSettings::Generated { .. } => return Ok(()),
        };
        let fix = "create a kubernetes.io/tls Secret with tls.crt and tls.key of a CA signed by the trust anchors";
        let invalid = |problem: String| {
            Error::InvalidIdentityMaterial(format!("identity.issuer.secretName: {problem}"))
        };
        let secret = get_secret(secrets, &name)
            .await?
            .ok_or_else(|| invalid(format!("Secret {ns}/{name} does not exist: {fix}")))?;
        let cert = secret_string(&secret, TLS_CERT_KEY)
            .ok_or_else(|| invalid(format!("Secret {ns}/{name} has no tls.crt: {fix}")))?;
        let key = secret_string(&secret, TLS_KEY_KEY)
            .ok_or_else(|| invalid(format!("Secret {ns}/{name} has no tls.key: {fix}")))?;
        let info = parse_pem_bundle(&cert)
            .map_err(|e| {
                invalid(format!(
                    "tls.crt in Secret {ns}/{name} does not parse ({e}): {fix}"
                ))
            })?
            .into_iter()
            .next()
            .ok_or_else(|| invalid(format!("Secret {ns}/{name} holds no certificate: {fix}")))?;
        if info.not_after <= self.now {
            return Err(invalid(format!(
                "the issuer in Secret {ns}/{name} expired at {}: renew it (or point secretName at a valid one)",
                info.not_after
            )));
        }
        if !info.is_ca {
            return Err(invalid(format!(
                "the certificate in Secret {ns}/{name} is not a CA: issue it with basicConstraints CA:true"
            )));
        }
        if !key_matches(&info, &key) {
            return Err(invalid(format!(
                "tls.key in Secret {ns}/{name} is not the key of tls.crt: put the matching key there"
            )));
        }
        if !self.anchors.iter().any(|a| a.subject == info.issuer) {
            return Err(invalid(format!(
                "the issuer in Secret {ns}/{name} is not signed by any trust anchor: sign it with one of identity.trustAnchors"
            )));
        }
        self.out.issuer_not_after = Some(info.not_after);
        self.out.refs.issuer_serial = info.serial;
        self.out.refs.issuer_secret = name;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    use trellis_crds::v1alpha1::mesh::MeshSpec;

    use super::*;

    fn defaults() -> MeshSettings {
        MeshSettings::try_from(&MeshSpec::default()).unwrap()
    }

    fn pass(settings: &MeshSettings, now: Timestamp) -> Pass<'_> {
        Pass::new(settings, now)
    }

    fn reason(verdict: Verdict) -> Option<&'static str> {
        match verdict {
            Verdict::Keep(_) => None,
            Verdict::Replace(change) => Some(change.reason),
        }
    }

    #[test]
    fn each_certificate_is_generated_when_missing_then_kept() {
        let spec = defaults();
        let now = Timestamp::now();
        let mut pass = pass(&spec, now);
        let expected = [
            "TrustAnchorGenerated",
            "IssuerRenewed",
            "WebhookCertificateIssued",
        ];
        for (kind, expected) in Kind::ALL.into_iter().zip(expected) {
            pass.check(kind).unwrap();
            assert_eq!(reason(pass.verdict(kind, None).unwrap()), Some(expected));
            let stored = pass.generate(kind).unwrap();
            assert_eq!(
                reason(pass.verdict(kind, Some(stored.clone())).unwrap()),
                None,
                "a fresh {kind:?} is kept"
            );
            pass.record(kind, stored).unwrap();
        }
        let secrets: Vec<&str> = pass
            .out
            .refs
            .secrets
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(secrets, Kind::ALL.map(Kind::secret));
        assert_eq!(pass.out.refs.issuer_secret, ISSUER_SECRET);
        assert!(pass.out.anchor_not_after.is_some() && pass.out.webhook_not_after.is_some());
        let issuer = &pass.out.refs.secrets[1];
        assert_eq!(issuer.data[TLS_CA_KEY], pass.out.refs.trust_bundle);
    }

    #[test]
    fn renewal_rules_replace_what_no_longer_holds() {
        let spec = defaults();
        let now = Timestamp::now();
        let mut pass = pass(&spec, now);
        // Another trust domain, so another anchor subject.
        let old = generate_anchor("old.example", now, SignedDuration::from_hours(100)).unwrap();
        let old_issuer =
            generate_issuer(&old, "old.example", now, SignedDuration::from_hours(10)).unwrap();
        let expired = generate_anchor(
            "cluster.local",
            now - SignedDuration::from_hours(2),
            SignedDuration::from_hours(1),
        )
        .unwrap();
        let expired = Stored::new(expired, None).unwrap();
        assert_eq!(
            reason(pass.verdict(Kind::TrustAnchor, Some(expired)).unwrap()),
            Some("TrustAnchorExpired")
        );
        let anchor = pass.generate(Kind::TrustAnchor).unwrap();
        pass.record(Kind::TrustAnchor, anchor).unwrap();
        // An issuer signed by another anchor is re-signed; one without its key replaced.
        let resign = pass
            .verdict(Kind::Issuer, Stored::new(old_issuer.clone(), None))
            .unwrap();
        assert!(matches!(&resign, Verdict::Replace(c) if c.note.starts_with("re-signed issuer")));
        let mismatched = CertKey {
            cert: old_issuer.cert,
            key: old.key,
        };
        let replace = pass
            .verdict(Kind::Issuer, Stored::new(mismatched, None))
            .unwrap();
        assert!(matches!(&replace, Verdict::Replace(c) if c.note.starts_with("replaced issuer")));
        // A webhook certificate without its CA is issued again.
        let webhook = pass.generate(Kind::Webhook).unwrap();
        let without_ca = Stored::new(webhook.pair, None).unwrap();
        assert_eq!(
            reason(pass.verdict(Kind::Webhook, Some(without_ca)).unwrap()),
            Some("WebhookCertificateIssued")
        );
    }

    #[test]
    fn a_generated_issuer_needs_an_anchor_key() {
        let spec = defaults();
        let pass = pass(&spec, Timestamp::now());
        let error = pass.check(Kind::Issuer).unwrap_err();
        assert!(matches!(error, Error::InvalidIdentityMaterial(m) if m.contains("has no tls.key")));
    }
}
