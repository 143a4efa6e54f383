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
use trellis_crds::v1alpha1::mesh::{
    DEFAULT_CONFIGMAP_ANCHORS_KEY, DEFAULT_SECRET_ANCHORS_KEY, IssuerSource, MeshSpec,
    TrustAnchorSource,
};

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

/// Reads, validates and, where needed, generates the identity material of a Mesh.
///
/// Errors of kind [`Error::InvalidIdentityMaterial`] mean the user must fix something; the
/// caller then leaves the running mesh untouched.
pub async fn ensure(
    secrets: &Api<Secret>,
    configmaps: &Api<ConfigMap>,
    spec: &MeshSpec,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let ns = spec.namespace.as_str();
    let id = &spec.identity;
    let td = id.trust_domain.as_str();
    let lifetime = |d: &trellis_crds::common::duration::Duration,
                    field: &str|
     -> Result<SignedDuration, Error> {
        let std = d
            .to_std()
            .map_err(|e| Error::InvalidSpec(format!("identity.{field}: {e}")))?;
        SignedDuration::try_from(std)
            .map_err(|e| Error::InvalidSpec(format!("identity.{field}: {e}")))
    };
    let mut out = Outcome::default();

    // Trust anchors.
    let (anchor_bundle, anchor_signer): (String, Option<CertKey>) = match id.trust_anchors.source {
        TrustAnchorSource::Generated => {
            let existing = get_secret(secrets, TRUST_ANCHOR_SECRET)
                .await?
                .and_then(|s| {
                    let cert = secret_string(&s, TLS_CERT_KEY)?;
                    let key = secret_string(&s, TLS_KEY_KEY)?;
                    let info = parse_pem_bundle(&cert).ok()?.into_iter().next()?;
                    (info.is_ca && key_matches(&info, &key))
                        .then_some((CertKey { cert, key }, info))
                });
            let anchor = match existing {
                Some((anchor, info)) if info.not_after > now => anchor,
                Some((_, info)) => {
                    out.changes.push(Change {
                        reason: "TrustAnchorExpired",
                        note: format!(
                            "trust anchor expired at {}; generated a new one: meshed workloads must restart, connections between old and new proxies fail until they do",
                            info.not_after
                        ),
                    });
                    generate_anchor(
                        td,
                        now,
                        lifetime(&id.trust_anchors.lifetime, "trustAnchors.lifetime")?,
                    )?
                }
                None => {
                    out.changes.push(Change {
                        reason: "TrustAnchorGenerated",
                        note: format!(
                            "generated trust anchor in Secret {ns}/{TRUST_ANCHOR_SECRET}"
                        ),
                    });
                    generate_anchor(
                        td,
                        now,
                        lifetime(&id.trust_anchors.lifetime, "trustAnchors.lifetime")?,
                    )?
                }
            };
            out.refs.secrets.push(GeneratedSecret {
                name: TRUST_ANCHOR_SECRET.to_string(),
                component: IDENTITY_COMPONENT.to_string(),
                data: BTreeMap::from([
                    (TLS_CERT_KEY.to_string(), anchor.cert.clone()),
                    (TLS_KEY_KEY.to_string(), anchor.key.clone()),
                ]),
            });
            (anchor.cert.clone(), Some(anchor))
        }
        TrustAnchorSource::ConfigMap => {
            let name = id.trust_anchors.name.clone().unwrap_or_default();
            let key = id
                .trust_anchors
                .key
                .clone()
                .unwrap_or_else(|| DEFAULT_CONFIGMAP_ANCHORS_KEY.to_string());
            let cm = configmaps
                .get_opt(&name)
                .await
                .map_err(Error::kube(format!("get ConfigMap {ns}/{name}")))?
                .ok_or_else(|| {
                    Error::InvalidIdentityMaterial(format!(
                        "identity.trustAnchors: ConfigMap {ns}/{name} does not exist: create it with the PEM trust anchors under key {key}"
                    ))
                })?;
            let pem = cm.data.as_ref().and_then(|d| d.get(&key)).cloned().ok_or_else(|| {
                Error::InvalidIdentityMaterial(format!(
                    "identity.trustAnchors: ConfigMap {ns}/{name} has no key {key}: put the PEM trust anchors there or set identity.trustAnchors.key"
                ))
            })?;
            (pem, None)
        }
        TrustAnchorSource::Secret => {
            let name = id.trust_anchors.name.clone().unwrap_or_default();
            let key = id
                .trust_anchors
                .key
                .clone()
                .unwrap_or_else(|| DEFAULT_SECRET_ANCHORS_KEY.to_string());
            let secret = get_secret(secrets, &name).await?.ok_or_else(|| {
                Error::InvalidIdentityMaterial(format!(
                    "identity.trustAnchors: Secret {ns}/{name} does not exist: create it with the PEM trust anchors under key {key}"
                ))
            })?;
            let pem = secret_string(&secret, &key).ok_or_else(|| {
                Error::InvalidIdentityMaterial(format!(
                    "identity.trustAnchors: Secret {ns}/{name} has no key {key}: put the PEM trust anchors there or set identity.trustAnchors.key"
                ))
            })?;
            let signer = secret_string(&secret, TLS_KEY_KEY).map(|k| CertKey {
                cert: pem.clone(),
                key: k,
            });
            (pem, signer)
        }
    };
    let anchors = parse_pem_bundle(&anchor_bundle).map_err(|e| {
        Error::InvalidIdentityMaterial(format!(
            "identity.trustAnchors: the trust anchors do not parse ({e}): supply PEM CA certificates"
        ))
    })?;
    let valid_anchors: Vec<&CertInfo> = anchors.iter().filter(|a| a.not_after > now).collect();
    if valid_anchors.is_empty() {
        return Err(Error::InvalidIdentityMaterial(
            "identity.trustAnchors: every trust anchor has expired: supply a valid one".to_string(),
        ));
    }
    out.anchor_not_after = valid_anchors.iter().map(|a| a.not_after).min();
    if let Some(not_after) = out.anchor_not_after {
        let window = lifetime(
            &id.rotation.trust_anchor_renew_before,
            "rotation.trustAnchorRenewBefore",
        )?;
        if not_after - window <= now {
            out.warning = Some((
                trellis_crds::v1alpha1::mesh::reasons::TRUST_ANCHOR_EXPIRING,
                format!(
                    "the trust anchor expires at {not_after}: staged anchor rotation is not automated in this release; supply new anchors through identity.trustAnchors before then"
                ),
            ));
        }
    }
    out.refs.trust_bundle = anchor_bundle.clone();

    // Issuer.
    match id.issuer.source {
        IssuerSource::Generated => {
            let anchor = anchor_signer.ok_or_else(|| {
                Error::InvalidIdentityMaterial(format!(
                    "identity.trustAnchors: Secret {ns}/{} has no tls.key, so the operator cannot sign an issuer: add the anchor's key or set identity.issuer.source to Secret",
                    id.trust_anchors.name.clone().unwrap_or_default()
                ))
            })?;
            let anchor_info = parse_pem_bundle(&anchor.cert)
                .ok()
                .and_then(|v| v.into_iter().next())
                .ok_or_else(|| {
                    Error::InvalidIdentityMaterial(
                        "identity.trustAnchors: the signing anchor does not parse".to_string(),
                    )
                })?;
            let renew_before = lifetime(
                &id.rotation.issuer_renew_before,
                "rotation.issuerRenewBefore",
            )?;
            let existing = get_secret(secrets, ISSUER_SECRET).await?.and_then(|s| {
                let cert = secret_string(&s, TLS_CERT_KEY)?;
                let key = secret_string(&s, TLS_KEY_KEY)?;
                let info = parse_pem_bundle(&cert).ok()?.into_iter().next()?;
                Some((CertKey { cert, key }, info))
            });
            let keep = match &existing {
                None => Err("generated issuer in Secret".to_string()),
                Some((ck, info)) => {
                    if !key_matches(info, &ck.key) {
                        Err("replaced issuer whose key did not match its certificate in"
                            .to_string())
                    } else if info.issuer != anchor_info.subject {
                        Err("re-signed issuer with the current trust anchor in".to_string())
                    } else if info.not_after <= now {
                        Err(format!(
                            "renewed issuer that expired at {} in",
                            info.not_after
                        ))
                    } else if id.rotation.automatic && info.not_after - renew_before <= now {
                        Err(format!("renewed issuer expiring at {} in", info.not_after))
                    } else {
                        Ok(())
                    }
                }
            };
            let issuer = match (keep, existing) {
                (Ok(()), Some((ck, _))) => ck,
                (Err(why), _) => {
                    out.changes.push(Change {
                        reason: "IssuerRenewed",
                        note: format!("{why} {ns}/{ISSUER_SECRET}"),
                    });
                    generate_issuer(
                        &anchor,
                        td,
                        now,
                        lifetime(&id.issuer.lifetime, "issuer.lifetime")?,
                    )?
                }
                (Ok(()), None) => generate_issuer(
                    &anchor,
                    td,
                    now,
                    lifetime(&id.issuer.lifetime, "issuer.lifetime")?,
                )?,
            };
            let info = parse_pem_bundle(&issuer.cert)
                .ok()
                .and_then(|v| v.into_iter().next())
                .ok_or_else(|| {
                    Error::InvalidIdentityMaterial("generated issuer does not parse".to_string())
                })?;
            out.issuer_not_after = Some(info.not_after);
            out.refs.issuer_serial = info.serial;
            out.refs.issuer_secret = ISSUER_SECRET.to_string();
            out.refs.secrets.push(GeneratedSecret {
                name: ISSUER_SECRET.to_string(),
                component: IDENTITY_COMPONENT.to_string(),
                data: BTreeMap::from([
                    (TLS_CERT_KEY.to_string(), issuer.cert),
                    (TLS_KEY_KEY.to_string(), issuer.key),
                    (TLS_CA_KEY.to_string(), anchor_bundle.clone()),
                ]),
            });
        }
        IssuerSource::Secret => {
            let name = id.issuer.secret_name.clone().unwrap_or_default();
            let fix = "create a kubernetes.io/tls Secret with tls.crt and tls.key of a CA signed by the trust anchors";
            let secret = get_secret(secrets, &name).await?.ok_or_else(|| {
                Error::InvalidIdentityMaterial(format!(
                    "identity.issuer.secretName: Secret {ns}/{name} does not exist: {fix}"
                ))
            })?;
            let cert = secret_string(&secret, TLS_CERT_KEY).ok_or_else(|| {
                Error::InvalidIdentityMaterial(format!(
                    "identity.issuer.secretName: Secret {ns}/{name} has no tls.crt: {fix}"
                ))
            })?;
            let key = secret_string(&secret, TLS_KEY_KEY).ok_or_else(|| {
                Error::InvalidIdentityMaterial(format!(
                    "identity.issuer.secretName: Secret {ns}/{name} has no tls.key: {fix}"
                ))
            })?;
            let info = parse_pem_bundle(&cert)
                .map_err(|e| Error::InvalidIdentityMaterial(format!("identity.issuer.secretName: tls.crt in Secret {ns}/{name} does not parse ({e}): {fix}")))?
                .into_iter()
                .next()
                .ok_or_else(|| Error::InvalidIdentityMaterial(format!("identity.issuer.secretName: Secret {ns}/{name} holds no certificate: {fix}")))?;
            if info.not_after <= now {
                return Err(Error::InvalidIdentityMaterial(format!(
                    "identity.issuer.secretName: the issuer in Secret {ns}/{name} expired at {}: renew it (or point secretName at a valid one)",
                    info.not_after
                )));
            }
            if !info.is_ca {
                return Err(Error::InvalidIdentityMaterial(format!(
                    "identity.issuer.secretName: the certificate in Secret {ns}/{name} is not a CA: issue it with basicConstraints CA:true"
                )));
            }
            if !key_matches(&info, &key) {
                return Err(Error::InvalidIdentityMaterial(format!(
                    "identity.issuer.secretName: tls.key in Secret {ns}/{name} is not the key of tls.crt: put the matching key there"
                )));
            }
            if !anchors.iter().any(|a| a.subject == info.issuer) {
                return Err(Error::InvalidIdentityMaterial(format!(
                    "identity.issuer.secretName: the issuer in Secret {ns}/{name} is not signed by any trust anchor: sign it with one of identity.trustAnchors"
                )));
            }
            out.issuer_not_after = Some(info.not_after);
            out.refs.issuer_serial = info.serial;
            out.refs.issuer_secret = name;
        }
    }

    // Webhook serving certificate.
    let existing = get_secret(secrets, WEBHOOK_TLS_SECRET)
        .await?
        .and_then(|s| {
            let ca = secret_string(&s, TLS_CA_KEY)?;
            let cert = secret_string(&s, TLS_CERT_KEY)?;
            let key = secret_string(&s, TLS_KEY_KEY)?;
            let info = parse_pem_bundle(&cert).ok()?.into_iter().next()?;
            let ca_info = parse_pem_bundle(&ca).ok()?.into_iter().next()?;
            (key_matches(&info, &key)
                && info.issuer == ca_info.subject
                && info.not_after - WEBHOOK_RENEW_BEFORE > now)
                .then_some((ca, CertKey { cert, key }, info))
        });
    let (ca, serving, info) = match existing {
        Some(found) => found,
        None => {
            let (ca, serving) = generate_webhook(ns, now)?;
            let info = parse_pem_bundle(&serving.cert)
                .ok()
                .and_then(|v| v.into_iter().next())
                .ok_or_else(|| {
                    Error::InvalidIdentityMaterial(
                        "generated webhook certificate does not parse".to_string(),
                    )
                })?;
            out.changes.push(Change {
                reason: "WebhookCertificateIssued",
                note: format!(
                    "issued webhook serving certificate in Secret {ns}/{WEBHOOK_TLS_SECRET}"
                ),
            });
            (ca, serving, info)
        }
    };
    out.webhook_not_after = Some(info.not_after);
    out.refs.webhook_serial = info.serial;
    out.refs.webhook_ca_bundle = ca.clone();
    out.refs.secrets.push(GeneratedSecret {
        name: WEBHOOK_TLS_SECRET.to_string(),
        component: WEBHOOKS_COMPONENT.to_string(),
        data: BTreeMap::from([
            (TLS_CA_KEY.to_string(), ca),
            (TLS_CERT_KEY.to_string(), serving.cert),
            (TLS_KEY_KEY.to_string(), serving.key),
        ]),
    });
    Ok(out)
}
