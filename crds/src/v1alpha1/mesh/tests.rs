use super::*;

#[test]
fn an_empty_spec_is_the_default_mesh() {
    let spec: MeshSpec = serde_json::from_str("{}").unwrap();
    assert_eq!(spec, MeshSpec::default());
    assert_eq!(spec.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(spec.namespace, DEFAULT_NAMESPACE);
    assert_eq!(spec.identity.trust_domain, DEFAULT_TRUST_DOMAIN);
    assert_eq!(
        spec.identity.trust_anchors.source,
        TrustAnchorSource::Generated
    );
    assert_eq!(spec.proxy.opaque_ports.len(), DEFAULT_OPAQUE_PORTS.len());
}

#[test]
fn defaults_round_trip_through_json() {
    let spec = MeshSpec::default();
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(serde_json::from_value::<MeshSpec>(json).unwrap(), spec);
}

#[test]
fn default_durations_parse_and_are_ordered() {
    let identity = Identity::default();
    let lifetime = |d: &Duration| d.to_std().unwrap();
    assert!(lifetime(&identity.issuer.lifetime) < lifetime(&identity.trust_anchors.lifetime));
    assert!(
        lifetime(&identity.workload_certificate_lifetime) < lifetime(&identity.issuer.lifetime)
    );
    assert!(
        lifetime(&identity.clock_skew_allowance)
            < lifetime(&identity.workload_certificate_lifetime)
    );
    assert!(lifetime(&identity.rotation.issuer_renew_before) < lifetime(&identity.issuer.lifetime));
    assert!(
        lifetime(&identity.rotation.trust_anchor_renew_before)
            < lifetime(&identity.trust_anchors.lifetime)
    );
}

#[test]
fn the_schema_carries_the_defaults() {
    let crd = <Mesh as kube::CustomResourceExt>::crd();
    let json = serde_json::to_value(&crd).unwrap();
    let spec = &json["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let props = &spec["properties"];
    assert_eq!(props["version"]["default"], env!("CARGO_PKG_VERSION"));
    assert_eq!(props["namespace"]["default"], DEFAULT_NAMESPACE);
    assert_eq!(
        props["identity"]["default"]["trustDomain"],
        DEFAULT_TRUST_DOMAIN
    );
    assert_eq!(
        props["identity"]["properties"]["clockSkewAllowance"]["default"],
        "20s"
    );
    assert_eq!(
        props["namespace"]["x-kubernetes-validations"][0]["rule"],
        "self == oldSelf"
    );
}

#[test]
fn http_url_names_its_example() {
    let rule = serde_json::to_value(http_url("http://collector:4317")).unwrap();
    assert_eq!(
        rule,
        serde_json::json!({
            "rule": "isURL(self) && url(self).getScheme() in ['http', 'https']",
            "message": "must be an http or https URL, like http://collector:4317",
        })
    );
}
