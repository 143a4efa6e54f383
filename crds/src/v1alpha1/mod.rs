//! Version v1alpha1 of every Trellis kind, one module per kind.

/// Declares the spec struct of a Trellis kind and derives its `CustomResource` with what every
/// kind shares: version `v1alpha1`, `derive = "PartialEq"`, category `trellis`, an `Age`
/// column after the kind's own `printcolumn`s, and camelCase field names.
///
/// The `#[kube(...)]` attribute comes first (after the doc comment) and holds only the
/// kind's own keys, without a trailing comma.
macro_rules! trellis_kind {
    (
        $(#[doc = $doc:tt])*
        #[kube($($kube:tt)*)]
        $(#[$($attr:tt)*])*
        $vis:vis struct $spec:ident $body:tt
    ) => {
        $(#[doc = $doc])*
        #[derive(
            kube::CustomResource,
            schemars::JsonSchema,
            serde::Serialize,
            serde::Deserialize,
            Clone,
            Debug,
            PartialEq
        )]
        #[kube(
            version = "v1alpha1",
            derive = "PartialEq",
            category = "trellis",
            $($kube)*,
            printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
        )]
        #[serde(rename_all = "camelCase")]
        $(#[$($attr)*])*
        $vis struct $spec $body
    };
}

/// Declares a namespaced kind whose status is a
/// [`PolicyStatus`](crate::common::status::PolicyStatus), like `trellis_kind!`, with an
/// `Accepted` column (described by `accepted_column`) before `Age`.
macro_rules! policy_status_kind {
    (
        $(#[doc = $doc:tt])*
        #[kube($($kube:tt)*)]
        accepted_column = $accepted:tt;
        $($rest:tt)*
    ) => {
        trellis_kind! {
            $(#[doc = $doc])*
            #[kube(
                namespaced,
                status = "crate::common::status::PolicyStatus",
                $($kube)*,
                printcolumn(
                    name = "Accepted",
                    type_ = "string",
                    json_path = ".status.conditions[?(@.type==\"Accepted\")].status",
                    description = $accepted
                )
            )]
            $($rest)*
        }
    };
}

pub mod authorization_policy;
pub mod mesh;
pub mod mesh_tls_authentication;
pub mod network_authentication;
pub mod server;
pub mod service_profile;
