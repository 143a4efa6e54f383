use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

use super::*;

fn condition(type_: &str, status: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
        message: String::new(),
        observed_generation: None,
        reason: "Test".into(),
    }
}

#[test]
fn finds_conditions_by_type() {
    let conditions = vec![condition("Ready", TRUE), condition("Degraded", FALSE)];
    assert!(is_true(&conditions, "Ready"));
    assert!(!is_true(&conditions, "Degraded"));
    assert!(!is_true(&conditions, "Progressing"));
    assert_eq!(
        find(&conditions, "Degraded").map(|c| c.status.as_str()),
        Some(FALSE)
    );
}
