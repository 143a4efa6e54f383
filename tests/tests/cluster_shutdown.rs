//! `trellis-operator` stops within its stated bound on SIGTERM, in each role (`operator`,
//! `controller`, `all-in-one`) and each state (starting, waiting for the Lease, serving),
//! releases a Lease it holds, and exits at once on a second signal.

use std::{net::SocketAddr, path::PathBuf, process::Command, time::Duration};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client, api::PostParams};
use tokio::time::Instant;
use trellis_operator::SHUTDOWN_GRACE;
use trellis_tests::{
    DEFAULT_TIMEOUT, bins, cluster, eventually,
    k8s::{install_crds, with_temp_ns},
    mesh::admin_get,
    netns::NsProcess,
};

/// What a clean stop may take: the stated grace, and a little for the process to be reaped.
const BOUND: Duration = SHUTDOWN_GRACE.saturating_add(Duration::from_secs(2));
const LEASE: &str = "shutdown";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Starting,
    WaitingForLease,
    Serving,
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// A `trellis-operator <role>` whose Lease and control-plane namespace are `ns`.
struct Operator {
    process: NsProcess,
    identity: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Operator {
    fn start(role: &str, ns: &str, replica: &str) -> Self {
        Self::start_with(role, ns, replica, &[])
    }

    /// [`Self::start`] with more environment variables.
    fn start_with(role: &str, ns: &str, replica: &str, env: &[(&str, &str)]) -> Self {
        let (identity, admin) = (free_addr(), free_addr());
        let log = std::env::temp_dir().join(format!("{ns}-{replica}.log"));
        let mut cmd = Command::new(bins::path("trellis-operator"));
        cmd.arg(role)
            .env("KUBECONFIG", cluster::kubeconfig_path())
            .env("TRELLIS_OPERATOR_LOG", "info")
            .env("TRELLIS_OPERATOR_ADMIN_ADDR", admin.to_string())
            .env("TRELLIS_OPERATOR_IDENTITY_ADDR", identity.to_string())
            .env("TRELLIS_OPERATOR_DESTINATION_ADDR", free_addr().to_string())
            .env("TRELLIS_OPERATOR_POLICY_ADDR", free_addr().to_string())
            .env("TRELLIS_OPERATOR_WEBHOOK_ADDR", free_addr().to_string())
            .env("TRELLIS_OPERATOR_MESH_NAME", "absent")
            .env("TRELLIS_OPERATOR_CONTROL_PLANE_NAMESPACE", ns)
            .env("TRELLIS_OPERATOR_LEASE_NAMESPACE", ns)
            .env("TRELLIS_OPERATOR_LEASE_NAME", LEASE)
            .env("TRELLIS_OPERATOR_REPLICA_NAME", replica)
            // Reconcile no Mesh of other tests.
            .env(
                "TRELLIS_OPERATOR_MESH_SELECTOR",
                format!("trellis.dev/test-shutdown={ns}"),
            )
            .envs(env.iter().copied());
        let process = NsProcess::spawn(replica, cmd, &log);
        Self {
            process,
            identity,
            admin,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn serving_grpc(&self) {
        eventually("the identity listener accepts", DEFAULT_TIMEOUT, || async {
            tokio::net::TcpStream::connect(self.identity)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
    }
}

fn lease_api(client: &Client, ns: &str) -> Api<Lease> {
    Api::namespaced(client.clone(), ns)
}

async fn holder(client: &Client, ns: &str) -> Option<String> {
    let lease = lease_api(client, ns).get_opt(LEASE).await.ok().flatten()?;
    lease.spec?.holder_identity
}

/// Holds the Lease for someone else, so an operator started now waits for it.
async fn hold_lease_elsewhere(client: &Client, ns: &str) {
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": LEASE, "namespace": ns},
        "spec": {"holderIdentity": "another-replica", "leaseDurationSeconds": 3600,
                 "renewTime": k8s_openapi::jiff::Timestamp::now().to_string()}
    }))
    .unwrap();
    lease_api(client, ns)
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
}

async fn reach(state: State, role: &str, op: &Operator, client: &Client, ns: &str, replica: &str) {
    let leads = role != "controller";
    match state {
        State::Starting => tokio::time::sleep(Duration::from_millis(100)).await,
        State::WaitingForLease => {
            // It has started and keeps waiting: the Lease stays with the other holder.
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(holder(client, ns).await.as_deref(), Some("another-replica"));
        }
        State::Serving => {
            if leads {
                eventually("the operator holds the Lease", DEFAULT_TIMEOUT, || async {
                    match holder(client, ns).await {
                        Some(h) if h == replica => Ok(()),
                        other => Err(format!("holder {other:?}")),
                    }
                })
                .await;
            }
            if role != "operator" {
                op.serving_grpc().await;
            }
        }
    }
}

async fn stops_in_time(role: &'static str, state: State) {
    with_temp_ns(&format!("stop-{role}"), move |client, ns| async move {
        install_crds(&client).await;
        if state == State::WaitingForLease {
            hold_lease_elsewhere(&client, &ns).await;
        }
        let replica = format!("{role}-{state:?}").to_lowercase();
        let mut op = Operator::start(role, &ns, &replica);
        reach(state, role, &op, &client, &ns, &replica).await;
        assert!(op.process.running(), "{role} exited early:\n{}", op.log());
        let sent = Instant::now();
        op.process.terminate();
        let status = op.process.exited_within(BOUND).await;
        let took = sent.elapsed();
        eprintln!("{role} {state:?}: exited {status:?} {took:?} after SIGTERM");
        let status = status.unwrap_or_else(|| {
            panic!(
                "{role} ({state:?}) still runs {BOUND:?} after SIGTERM:\n{}",
                op.log()
            )
        });
        // A process signalled before it installs its handler dies of the signal itself;
        // once it has one, it must drain and exit 0, not be cut off by the grace bound.
        if state != State::Starting || status.code().is_some() {
            assert!(
                status.success(),
                "{role} ({state:?}) exited with {status}:\n{}",
                op.log()
            );
        }
        if state == State::Serving && role != "controller" {
            assert_eq!(holder(&client, &ns).await, None, "the Lease is released");
        }
    })
    .await;
}

/// One test per role and state, each signalling its own process.
macro_rules! stops_in_time {
    ($($name:ident: $role:literal, $state:ident;)*) => {$(
        #[tokio::test]
        async fn $name() {
            stops_in_time($role, State::$state).await;
        }
    )*};
}

stops_in_time! {
    operator_stops_while_starting: "operator", Starting;
    operator_stops_while_waiting_for_the_lease: "operator", WaitingForLease;
    operator_stops_while_serving: "operator", Serving;
    controller_stops_while_starting: "controller", Starting;
    controller_stops_while_serving: "controller", Serving;
    all_in_one_stops_while_starting: "all-in-one", Starting;
    all_in_one_stops_while_waiting_for_the_lease: "all-in-one", WaitingForLease;
    all_in_one_stops_while_serving: "all-in-one", Serving;
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    with_temp_ns("stop-twice", |client, ns| async move {
        install_crds(&client).await;
        let mut op = Operator::start("all-in-one", &ns, "twice");
        reach(State::Serving, "all-in-one", &op, &client, &ns, "twice").await;
        op.process.terminate();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = Instant::now();
        op.process.terminate();
        let status = op.process.exited_within(Duration::from_secs(2)).await;
        eprintln!(
            "second signal: exited {status:?} {:?} after it",
            sent.elapsed()
        );
        assert!(
            status.is_some(),
            "still running 2 s after a second SIGTERM:\n{}",
            op.log()
        );
    })
    .await;
}

/// With a shutdown delay (the rendered controller has one), the first SIGTERM makes the
/// process not ready while its listeners still accept, and draining starts only after the
/// delay.
#[tokio::test]
async fn a_shutdown_delay_keeps_serving_while_not_ready() {
    with_temp_ns("stop-delay", |client, ns| async move {
        install_crds(&client).await;
        let delay = Duration::from_secs(2);
        let mut op = Operator::start_with(
            "controller",
            &ns,
            "delay",
            &[("TRELLIS_OPERATOR_SHUTDOWN_DELAY", "2s")],
        );
        reach(State::Serving, "controller", &op, &client, &ns, "delay").await;
        let sent = Instant::now();
        op.process.terminate();
        eventually(
            "/ready fails after SIGTERM",
            Duration::from_secs(1),
            || async {
                match admin_get(op.admin, "/ready").await {
                    Some((503, body)) if body.contains("shutdown") => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        tokio::net::TcpStream::connect(op.identity)
            .await
            .expect("the identity listener still accepts during the delay");
        assert!(sent.elapsed() < delay, "checked within the delay");
        let status = op.process.exited_within(delay + BOUND).await;
        let took = sent.elapsed();
        eprintln!("shutdown delay {delay:?}: exited {status:?} {took:?} after SIGTERM");
        assert!(
            status.is_some_and(|s| s.success()),
            "exits cleanly:\n{}",
            op.log()
        );
        assert!(took >= delay, "draining waited for the delay ({took:?})");
    })
    .await;
}
