use std::time::Duration;

use super::*;

fn params(interval: u64, deadline: u64, duration: u64) -> LeaseParams {
    LeaseParams {
        name: "trellis-operator".into(),
        namespace: "trellis-system".into(),
        holder: "a".into(),
        duration: Duration::from_secs(duration),
        renew_interval: Duration::from_secs(interval),
        renew_deadline: Duration::from_secs(deadline),
    }
}

#[test]
fn the_renew_deadline_sits_between_interval_and_duration() {
    assert!(params(10, 20, 30).check().is_ok());
    for (interval, deadline, duration) in [(10, 30, 30), (10, 10, 30), (20, 15, 30), (10, 40, 30)] {
        let err = params(interval, deadline, duration).check().unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("--lease-renew-deadline") && message.contains(&format!("{deadline}s")),
            "{message}"
        );
    }
}
