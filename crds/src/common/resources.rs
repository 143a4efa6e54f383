//! CPU and memory requests and limits for the containers Trellis runs.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::core::Rule;
use schemars::Schema;
use serde::{Deserialize, Serialize};
use serde_json::json;

const QUANTITY_RULE: &str =
    "isQuantity(string(self)) && quantity(string(self)).compareTo(quantity('0')) >= 0";

/// A schema transform for a quantity field: at most 32 characters, well formed and not
/// negative. `what` ends the message, like `memory such as 64Mi or 1Gi`.
fn non_negative_quantity(what: &'static str) -> impl Fn(&mut Schema) {
    move |schema| {
        let rule = Rule::new(QUANTITY_RULE)
            .message(format!("must be a non-negative quantity of {what}").as_str());
        schema.insert("maxLength".into(), 32.into());
        schema.insert("x-kubernetes-validations".into(), json!([rule]));
    }
}

/// The CEL rule that, when both are set and well formed, `requests.<resource>` is at most
/// `limits.<resource>`.
fn request_within_limit(resource: &str) -> Rule {
    let (request, limit) = (
        format!("string(self.requests.{resource})"),
        format!("string(self.limits.{resource})"),
    );
    Rule::new(format!(
        "!has(self.requests) || !has(self.limits) || !has(self.requests.{resource}) \
         || !has(self.limits.{resource}) || !isQuantity({request}) || !isQuantity({limit}) \
         || quantity({request}).compareTo(quantity({limit})) <= 0"
    ))
    .message(
        format!(
            "requests.{resource} must not exceed limits.{resource}: lower the request or raise \
             the limit"
        )
        .as_str(),
    )
    .field_path(format!(".requests.{resource}"))
}

/// Amounts of CPU and memory.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU in cores, as a Kubernetes quantity: `100m` (a tenth of a core), `0.5`, `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = non_negative_quantity("CPU such as 100m, 0.5 or 2"))]
    pub cpu: Option<Quantity>,
    /// Memory in bytes, as a Kubernetes quantity: `64Mi`, `1Gi`, `500M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = non_negative_quantity("memory such as 64Mi or 1Gi"))]
    pub memory: Option<Quantity>,
}

/// CPU and memory a container asks for (requests) and may not exceed (limits).
/// A request must not be larger than the limit for the same resource.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [request_within_limit("cpu"), request_within_limit("memory")],
))]
pub struct ComputeResources {
    /// Resources the scheduler reserves for the container. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceAmounts>,
    /// Resources the container may not exceed. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
}

#[cfg(test)]
mod tests;
