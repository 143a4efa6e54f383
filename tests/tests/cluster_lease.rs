//! The operator's Lease against the real apiserver, reached through a relay that can go
//! silent: a holder that cannot renew must stop writing before another replica may take over.

use std::{net::SocketAddr, time::Duration};

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trellis_operator::reconciler::lease::{LeaseParams, acquire};
use trellis_tests::{cluster, k8s::with_temp_ns, relay::Relay};

const DURATION: Duration = Duration::from_secs(8);
const RENEW_INTERVAL: Duration = Duration::from_secs(1);
const RENEW_DEADLINE: Duration = Duration::from_secs(4);

fn params(ns: &str, holder: &str) -> LeaseParams {
    LeaseParams {
        name: "blackhole".to_string(),
        namespace: ns.to_string(),
        holder: holder.to_string(),
        duration: DURATION,
        renew_interval: RENEW_INTERVAL,
        renew_deadline: RENEW_DEADLINE,
    }
}

/// A client for the local cluster whose every request passes through a relay on the
/// apiserver's own address (so its certificate still matches).
async fn relayed_client() -> (Client, Relay) {
    let kubeconfig = Kubeconfig::read_from(cluster::kubeconfig_path()).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let upstream: SocketAddr = format!(
        "{}:{}",
        config.cluster_url.host().unwrap(),
        config.cluster_url.port_u16().unwrap()
    )
    .parse()
    .unwrap();
    let relay = Relay::start(SocketAddr::new(upstream.ip(), 0), upstream).await;
    config.cluster_url = format!("https://{}", relay.addr()).parse().unwrap();
    (Client::try_from(config).unwrap(), relay)
}

#[tokio::test]
async fn a_holder_that_cannot_renew_stops_before_another_may_take_over() {
    with_temp_ns("lease-blackhole", |client, ns| async move {
        let (relayed, relay) = relayed_client().await;
        let never = CancellationToken::new();
        let a = acquire(relayed, params(&ns, "a"), never.clone())
            .await
            .unwrap()
            .expect("replica a holds the Lease");
        assert!(a.is_held());
        // Let one renewal through, then silence the apiserver for replica a only.
        tokio::time::sleep(RENEW_INTERVAL * 2).await;
        assert!(a.is_held(), "renewals through the relay work");
        relay.set_blackhole(true);
        let cut = Instant::now();
        let b = tokio::spawn(acquire(client, params(&ns, "b"), never.clone()));
        tokio::time::timeout(DURATION, a.lost())
            .await
            .expect("replica a gives the Lease up within the lease duration");
        let a_stopped = cut.elapsed();
        let b_guard = tokio::time::timeout(DURATION * 3, b)
            .await
            .expect("replica b takes over")
            .unwrap()
            .unwrap()
            .expect("replica b holds the Lease");
        let b_started = cut.elapsed();
        eprintln!(
            "blackhole: a stopped writing after {a_stopped:?}, b took over after {b_started:?}"
        );
        assert!(
            a_stopped <= RENEW_DEADLINE + RENEW_INTERVAL,
            "a kept writing for {a_stopped:?}, past its renew deadline {RENEW_DEADLINE:?}"
        );
        assert!(
            a_stopped < b_started,
            "two writers: b took over at {b_started:?}, a stopped at {a_stopped:?}"
        );
        assert!(b_guard.is_held());
        b_guard.release().await;
        never.cancel();
    })
    .await;
}
