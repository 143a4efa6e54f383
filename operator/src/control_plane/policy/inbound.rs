//! `InboundServerPolicies`: the policy of one port of a workload.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use trellis_api::{
    inbound::PortSpec,
    linkerd2_proxy_api::inbound::{self as proto, inbound_server_policies_server as server},
};

use super::{DiscoverPolicy, PolicyMetrics, watch_stream};
use crate::control_plane::stream::BoxStream;

/// The inbound policy service.
#[derive(Debug)]
pub struct InboundPolicyService<D> {
    discover: Arc<D>,
    metrics: PolicyMetrics,
}

impl<D: DiscoverPolicy> InboundPolicyService<D> {
    /// A service answering from `discover`.
    pub fn new(discover: Arc<D>, metrics: PolicyMetrics) -> Self {
        Self { discover, metrics }
    }

    /// This service as a tonic service.
    pub fn into_server(self) -> server::InboundServerPoliciesServer<Self> {
        server::InboundServerPoliciesServer::new(self)
    }

    fn lookup(&self, spec: proto::PortSpec) -> Result<(PortSpec, proto::Server), Status> {
        let (spec, policy) = super::lookup(&self.metrics, spec, |s| self.discover.inbound(s))?;
        Ok((spec, policy.into()))
    }
}

#[tonic::async_trait]
impl<D: DiscoverPolicy> server::InboundServerPolicies for InboundPolicyService<D> {
    type WatchPortStream = BoxStream<proto::Server>;

    async fn get_port(
        &self,
        request: Request<proto::PortSpec>,
    ) -> Result<Response<proto::Server>, Status> {
        let (_, policy) = self.lookup(request.into_inner())?;
        Ok(Response::new(policy))
    }

    async fn watch_port(
        &self,
        request: Request<proto::PortSpec>,
    ) -> Result<Response<Self::WatchPortStream>, Status> {
        let (spec, first) = self.lookup(request.into_inner())?;
        tracing::debug!(ns = %spec.workload.namespace, pod = %spec.workload.pod, port = spec.port, "WatchPort opened");
        let stream = watch_stream(
            self.discover.clone(),
            self.metrics.clone(),
            first,
            move |d: &D| d.inbound(&spec).map(proto::Server::from),
        );
        Ok(Response::new(stream))
    }
}
