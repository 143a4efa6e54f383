//! Server: a port on a set of pods or external workloads that authorization policy applies to.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use crate::common::{access_policy::AccessPolicy, port::Port, rules::exactly_one_of};

/// How the proxy treats traffic to a Server's port.
///
/// Valid values: `unknown` (detect HTTP, the default), `HTTP/1`, `HTTP/2`, `gRPC`, `opaque`,
/// `TLS`.
#[derive(
    Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default,
)]
pub enum ProxyProtocol {
    /// Detect HTTP/1 and HTTP/2 from the first bytes; anything else is treated as TCP.
    #[default]
    #[serde(rename = "unknown")]
    Unknown,
    /// HTTP/1.x, without protocol detection.
    #[serde(rename = "HTTP/1")]
    Http1,
    /// HTTP/2 (cleartext prior knowledge), without protocol detection.
    #[serde(rename = "HTTP/2")]
    Http2,
    /// gRPC over HTTP/2: metrics and policy understand gRPC status codes.
    #[serde(rename = "gRPC")]
    Grpc,
    /// Opaque TCP: bytes are forwarded (over mTLS between proxies) without detection.
    #[serde(rename = "opaque")]
    Opaque,
    /// TLS that the application terminates itself: forwarded without detection.
    #[serde(rename = "TLS")]
    Tls,
}

fn default_access_policy() -> AccessPolicy {
    AccessPolicy::Deny
}

policy_status_kind! {
    /// A port on the pods (or external workloads) a selector picks, and how the proxy treats it.
    ///
    /// Once a Server exists for a port, only clients an AuthorizationPolicy targeting the
    /// Server (or its namespace) allows may connect, besides those `accessPolicy` admits.
    /// HTTPRoutes and GRPCRoutes may attach to the Server (`parentRefs` kind `Server`): a
    /// request then must match one of them (else 404), and an AuthorizationPolicy targeting
    /// a route admits that route's requests too.
    #[kube(
        group = "policy.trellis.dev",
        kind = "Server",
        shortname = "tsrv",
        doc = "A Server names a port on a set of pods (or external workloads) so that \
               AuthorizationPolicies can govern who may connect to it, and tells the proxy which \
               protocol the port speaks.",
        printcolumn(
            name = "Port",
            type_ = "string",
            json_path = ".spec.port",
            description = "The port, by number or name"
        ),
        printcolumn(
            name = "Protocol",
            type_ = "string",
            json_path = ".spec.proxyProtocol",
            description = "How the proxy treats the port's traffic"
        ),
        printcolumn(
            name = "Access",
            type_ = "string",
            json_path = ".spec.accessPolicy",
            description = "Policy for clients no AuthorizationPolicy allows"
        )
    )]
    accepted_column = "Whether proxies use this Server";
    #[schemars(extend(
        "x-kubernetes-validations" = [exactly_one_of("podSelector", "externalWorkloadSelector")],
    ))]
    pub struct ServerSpec {
        /// Selects the pods, in the Server's namespace, whose port this is. An empty selector
        /// (`{}`) selects every pod in the namespace. Exactly one of podSelector and
        /// externalWorkloadSelector must be set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub pod_selector: Option<LabelSelector>,
        /// Selects the ExternalWorkloads (meshed workloads outside the cluster), in the Server's
        /// namespace, whose port this is. Exactly one of podSelector and externalWorkloadSelector
        /// must be set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub external_workload_selector: Option<LabelSelector>,
        /// The port: a number from 1 to 65535, or the name of a container port of the selected
        /// pods (like `http`).
        pub port: Port,
        /// How the proxy treats traffic to this port. Default `unknown`: detect HTTP/1 and HTTP/2
        /// and treat anything else as TCP. Valid values: `unknown`, `HTTP/1`, `HTTP/2`, `gRPC`,
        /// `opaque`, `TLS`.
        #[serde(default)]
        pub proxy_protocol: ProxyProtocol,
        /// Which clients may connect besides those the AuthorizationPolicies allow (on every
        /// route of the Server): `deny` (the default) admits no one else.
        /// Valid values: `deny`, `audit` (allow, but report what deny would refuse),
        /// `all-authenticated`, `all-unauthenticated`, `cluster-authenticated`,
        /// `cluster-unauthenticated`.
        #[serde(default = "default_access_policy")]
        pub access_policy: AccessPolicy,
    }
}
