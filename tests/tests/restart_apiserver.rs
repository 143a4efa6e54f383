//! Chaos: kube-apiserver killed and restarted while a steady client sends HTTP through the
//! mesh in network namespaces (see `trellis_tests::chaos`). Established traffic must not
//! notice; afterwards discovery and the operator must work again, and the test times how
//! long a change takes to reach the proxies, beside a calm run. Its own test binary, named
//! to run last, so that no other test runs against an apiserver that was just restarted
//! (kube-controller-manager then takes up to a minute to rewrite EndpointSlices).
//!
//! Needs root, iproute2, iptables and the local cluster (`tests/cluster/cluster up`).

use tokio::time::{Instant, sleep};
use trellis_tests::chaos::{Fixture, PHASE, SPARE, report, serial};

/// Restarts kube-apiserver when dropped, so a failing test leaves the cluster whole.
struct ApiserverGuard;

impl ApiserverGuard {
    fn cluster(action: &str) -> std::process::Output {
        std::process::Command::new(
            trellis_tests::cluster::repo_root().join("tests/cluster/cluster"),
        )
        .args(["apiserver", action])
        .output()
        .expect("run tests/cluster/cluster")
    }

    fn kill() -> Self {
        let out = Self::cluster("kill");
        assert!(out.status.success(), "apiserver kill: {out:?}");
        Self
    }

    fn start(self) {
        std::mem::forget(self);
        let out = Self::cluster("start");
        assert!(out.status.success(), "apiserver start: {out:?}");
    }
}

impl Drop for ApiserverGuard {
    fn drop(&mut self) {
        let _ = Self::cluster("start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_recovers_from_an_apiserver_restart() {
    serial("chaos-apiserver", |client, ns| async move {
        let f = Fixture::start(
            client,
            &ns,
            &[("web-a", "web"), ("web-c", SPARE), ("web-d", SPARE)],
        )
        .await;
        let load = f.load().await;
        // Calm: how long a pod replacing the Service's takes to get traffic.
        let joined = Instant::now();
        let calm_join = f.swap(&["web-a"], "web-c").await;
        let calm = report("apiserver", "calm", load.report(joined));

        let fault = Instant::now();
        let apiserver = ApiserverGuard::kill();
        sleep(PHASE).await;
        apiserver.start();
        let restarted = Instant::now();
        let down = report("apiserver", "killed and restarted", load.report(fault));
        // Recovery: the same change, made as soon as the apiserver is back.
        let recovery = f.swap(&["web-c"], "web-d").await;
        eprintln!(
            "chaos: apiserver: a pod replacing the Service's got traffic {:.2}s after the \
             apiserver was ready again ({:.2}s after the EndpointSlices listed it); \
             calm: {:.2}s ({:.2}s)",
            recovery.traffic.as_secs_f64(),
            (recovery.traffic - recovery.listed).as_secs_f64(),
            calm_join.traffic.as_secs_f64(),
            (calm_join.traffic - calm_join.listed).as_secs_f64(),
        );
        let after = report("apiserver", "recovered", load.report(restarted));
        load.stop().await;
        // The operator works again too: it finishes deleting the Mesh.
        f.mesh.delete_mesh().await;
        assert_eq!(calm.failed, 0, "calm: {calm}");
        assert_eq!(down.failed, 0, "with the apiserver down: {down}");
        assert_eq!(after.failed, 0, "after the restart: {after}");
    })
    .await;
}
