use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;

#[test]
fn issuer_chains_to_the_anchor_and_reports_expiry() {
    let now = Timestamp::now();
    let anchor = generate_anchor("cluster.local", now, SignedDuration::from_hours(1000)).unwrap();
    let issuer = generate_issuer(
        &anchor,
        "cluster.local",
        now,
        SignedDuration::from_hours(100),
    )
    .unwrap();
    let anchor_info = &parse_pem_bundle(&anchor.cert).unwrap()[0];
    let issuer_info = &parse_pem_bundle(&issuer.cert).unwrap()[0];
    assert!(anchor_info.is_ca && issuer_info.is_ca);
    assert_eq!(issuer_info.issuer, anchor_info.subject);
    assert!(key_matches(issuer_info, &issuer.key));
    assert!(!key_matches(issuer_info, &anchor.key));
    let expected = now + SignedDuration::from_hours(100);
    assert!((issuer_info.not_after.as_second() - expected.as_second()).abs() <= 1);
    assert!(!issuer.key.is_empty() && !format!("{issuer:?}").contains("PRIVATE"));
}

#[test]
fn webhook_certificate_is_signed_by_its_ca() {
    let (ca, serving) = generate_webhook("trellis-system", Timestamp::now()).unwrap();
    let ca_info = &parse_pem_bundle(&ca).unwrap()[0];
    let info = &parse_pem_bundle(&serving.cert).unwrap()[0];
    assert_eq!(info.issuer, ca_info.subject);
    assert!(!info.is_ca);
}

#[test]
fn garbage_is_not_a_certificate() {
    assert!(parse_pem_bundle("hello").is_err());
}
