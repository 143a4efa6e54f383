//! `OutboundPolicies`: the policy of one Service port, with a balancer backend.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use trellis_api::{
    linkerd2_proxy_api::outbound::{self as proto, outbound_policies_server as server},
    outbound::TrafficSpec,
};

use super::{DiscoverPolicy, PolicyMetrics, watch_stream};
use crate::control_plane::stream::BoxStream;

/// The outbound policy service.
#[derive(Debug)]
pub struct OutboundPolicyService<D> {
    discover: Arc<D>,
    metrics: PolicyMetrics,
}

impl<D: DiscoverPolicy> OutboundPolicyService<D> {
    /// A service answering from `discover`.
    pub fn new(discover: Arc<D>, metrics: PolicyMetrics) -> Self {
        Self { discover, metrics }
    }

    /// This service as a tonic service.
    pub fn into_server(self) -> server::OutboundPoliciesServer<Self> {
        server::OutboundPoliciesServer::new(self)
    }

    fn lookup(
        &self,
        spec: proto::TrafficSpec,
    ) -> Result<(TrafficSpec, proto::OutboundPolicy), Status> {
        let (spec, policy) = super::lookup(&self.metrics, spec, |s| self.discover.outbound(s))?;
        Ok((spec, policy.into()))
    }
}

#[tonic::async_trait]
impl<D: DiscoverPolicy> server::OutboundPolicies for OutboundPolicyService<D> {
    type WatchStream = BoxStream<proto::OutboundPolicy>;

    async fn get(
        &self,
        request: Request<proto::TrafficSpec>,
    ) -> Result<Response<proto::OutboundPolicy>, Status> {
        let (_, policy) = self.lookup(request.into_inner())?;
        Ok(Response::new(policy))
    }

    async fn watch(
        &self,
        request: Request<proto::TrafficSpec>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (spec, first) = self.lookup(request.into_inner())?;
        let stream = watch_stream(
            self.discover.clone(),
            self.metrics.clone(),
            first,
            move |d: &D| d.outbound(&spec).map(proto::OutboundPolicy::from),
        );
        Ok(Response::new(stream))
    }
}
