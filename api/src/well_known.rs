//! Ports, ids, annotation keys and name formats that several Trellis binaries share.

/// Proxy port that receives redirected outbound traffic.
pub const PROXY_OUTBOUND_PORT: u16 = 4140;
/// Proxy port that receives redirected inbound traffic.
pub const PROXY_INBOUND_PORT: u16 = 4143;
/// Proxy control port (tap).
pub const PROXY_CONTROL_PORT: u16 = 4190;
/// Proxy admin port (`/metrics`, `/ready`, `/live`).
pub const PROXY_ADMIN_PORT: u16 = 4191;
/// Uid the proxy runs as; iptables rules skip its traffic.
pub const PROXY_UID: u32 = 2102;

/// Control-plane identity (Certify) port.
pub const IDENTITY_PORT: u16 = 8080;
/// Control-plane destination port.
pub const DESTINATION_PORT: u16 = 8086;
/// Control-plane policy port.
pub const POLICY_PORT: u16 = 8090;
/// Admission webhook port.
pub const WEBHOOK_PORT: u16 = 8443;
/// Control-plane admin port (`/metrics`, `/live`, `/ready`).
pub const CONTROL_PLANE_ADMIN_PORT: u16 = 9990;

/// Audience of the ServiceAccount tokens that proxies present to Certify.
pub const IDENTITY_TOKEN_AUDIENCE: &str = "identity.trellis.dev";
/// Trust domain used when a Mesh does not set one.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// Namespace of the control plane when a Mesh does not set one.
pub const DEFAULT_CONTROL_PLANE_NAMESPACE: &str = "trellis-system";

/// Annotation (namespace or pod template) that turns proxy injection on or off.
pub const INJECT_ANNOTATION: &str = "trellis.dev/inject";
/// Prefix of the per-workload proxy configuration annotations.
pub const CONFIG_ANNOTATION_PREFIX: &str = "config.trellis.dev/";
/// Prefix of every proxy environment variable.
pub const PROXY_ENV_PREFIX: &str = "TRELLIS_PROXY_";

/// ServiceAccount (and Deployment) name of the control plane's `controller` role.
pub const CONTROLLER_NAME: &str = "trellis-controller";
/// Service in front of the identity server.
pub const IDENTITY_SERVICE: &str = "trellis-identity";
/// Service in front of the destination server.
pub const DESTINATION_SERVICE: &str = "trellis-destination";
/// Service in front of the policy server.
pub const POLICY_SERVICE: &str = "trellis-policy";
/// Service in front of the admission webhooks.
pub const WEBHOOK_SERVICE: &str = "trellis-webhooks";

/// Secret (type `kubernetes.io/tls`) holding the generated trust anchor and its key.
pub const TRUST_ANCHOR_SECRET: &str = "trellis-trust-anchor";
/// Secret (type `kubernetes.io/tls`) holding the issuer: `tls.crt`, `tls.key`, and `ca.crt`
/// with the trust anchors it chains to.
pub const ISSUER_SECRET: &str = "trellis-identity-issuer";
/// ConfigMap with the trust bundle (PEM) that proxies verify peers against.
pub const TRUST_ROOTS_CONFIGMAP: &str = "trellis-identity-trust-roots";
/// Key of the PEM bundle in [`TRUST_ROOTS_CONFIGMAP`].
pub const TRUST_ROOTS_KEY: &str = "ca-bundle.crt";
/// Secret (type `kubernetes.io/tls`) with the webhook server's certificate.
pub const WEBHOOK_TLS_SECRET: &str = "trellis-webhook-tls";
/// Key of a certificate chain in a `kubernetes.io/tls` Secret.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// Key of a private key in a `kubernetes.io/tls` Secret.
pub const TLS_KEY_KEY: &str = "tls.key";
/// Key of the CA certificates in a `kubernetes.io/tls` Secret.
pub const TLS_CA_KEY: &str = "ca.crt";

/// Label the injector puts on meshed pods; its value is the control plane's namespace. It gates
/// the TLS identity and protocol hints the destination server sends for the pod.
pub const CONTROL_PLANE_NS_LABEL: &str = "trellis.dev/control-plane-ns";
/// Annotation the injector puts on meshed pods: the version of the injected proxy.
pub const PROXY_VERSION_ANNOTATION: &str = "trellis.dev/proxy-version";
/// Annotation (pod, Service, namespace) listing opaque ports, e.g. `3306,6379` or `4000-4100`.
pub const OPAQUE_PORTS_ANNOTATION: &str = "config.trellis.dev/opaque-ports";
/// Annotation (pod, namespace) naming the default inbound policy.
pub const DEFAULT_INBOUND_POLICY_ANNOTATION: &str = "config.trellis.dev/default-inbound-policy";
/// Annotation (pod) listing inbound ports the proxy does not intercept.
pub const SKIP_INBOUND_PORTS_ANNOTATION: &str = "config.trellis.dev/skip-inbound-ports";
/// DNS domain of the cluster when none is configured.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Label every object the operator renders carries.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "trellis-operator");
/// Field manager of every server-side apply by the operator.
pub const FIELD_MANAGER: &str = "trellis-operator";

/// The identity name of a ServiceAccount:
/// `<sa>.<ns>.serviceaccount.identity.trellis.<trust-domain>`.
pub fn identity_name(service_account: &str, namespace: &str, trust_domain: &str) -> String {
    format!("{service_account}.{namespace}.serviceaccount.identity.trellis.{trust_domain}")
}

/// The SPIFFE id of a ServiceAccount: `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
pub fn spiffe_id(service_account: &str, namespace: &str, trust_domain: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_name_follows_the_design() {
        assert_eq!(
            identity_name("web", "shop", DEFAULT_TRUST_DOMAIN),
            "web.shop.serviceaccount.identity.trellis.cluster.local"
        );
    }

    #[test]
    fn spiffe_id_follows_the_design() {
        assert_eq!(
            spiffe_id("web", "shop", "example.org"),
            "spiffe://example.org/ns/shop/sa/web"
        );
    }
}
