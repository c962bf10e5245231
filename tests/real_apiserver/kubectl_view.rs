//! What a user sees with the real kubectl: `kubectl get isp -A` columns from the real Table
//! conversion of the CRD's printer columns, and `kubectl describe` with the operator's Events.

use std::time::Duration;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(30);

/// One policy applied, one waiting for a Secret: the table and `describe` say so, and no
/// secret value appears in either.
pub async fn kubectl_shows_the_columns_conditions_and_events() {
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .put_secret("smtp-other", &[("password", "smtp-pass-9137")])
        .await;
    world
        .create_policy(&policy(
            &world,
            "lockout",
            "admin",
            vec![
                setting("Auth.UserLockOut.IsEnabled", "true"),
                setting("Auth.UserLockOut.MaxFailedAccessAttempts", "5"),
            ],
        ))
        .await;
    world
        .create_policy(&policy(
            &world,
            "smtp",
            "admin",
            vec![secret_setting("Email.Smtp.Password", "smtp", "password")],
        ))
        .await;
    world.spawn_operator(&[]).await;
    world.wait_reason("lockout", "Applied", WAIT).await;
    world.wait_reason("smtp", "SecretNotFound", WAIT).await;

    let Backend::Real(plane) = &world.kube else {
        panic!("the real-apiserver suite runs on the real control plane");
    };
    let table = plane.kubectl(&["get", "isp", "-A"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "PARTITION",
            "SETTINGS",
            "READY",
            "REASON",
            "AGE"
        ],
        "{table}"
    );
    let row = |name: &str| -> Vec<String> {
        table
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .find(|cols| cols.get(1).map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
    };
    assert_eq!(
        row("lockout")[..6],
        [NS, "lockout", PARTITION, "2", "True", "Applied"],
        "{table}"
    );
    assert_eq!(row("smtp")[..3], [NS, "smtp", PARTITION], "{table}");
    assert_eq!(row("smtp")[4..6], ["False", "SecretNotFound"], "{table}");

    // The short name and the wide output work too.
    let wide = plane.kubectl(&["get", "isp", "-n", NS, "-o", "wide"]).await;
    assert!(wide.contains("lockout") && wide.contains("smtp"), "{wide}");

    let describe = plane
        .kubectl(&["describe", "isp", "lockout", "-n", NS])
        .await;
    let events = describe
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("describe shows no Events section:\n{describe}"));
    assert!(
        events.contains("Applied") && events.contains("writing all 2 settings"),
        "describe's Events do not show the write:\n{describe}"
    );
    assert!(describe.contains("Observed Generation:"), "{describe}");

    let describe = plane.kubectl(&["describe", "isp", "smtp", "-n", NS]).await;
    assert!(
        describe.contains("SecretNotFound") && describe.contains("\"smtp\""),
        "describe does not say which Secret is missing:\n{describe}"
    );
    for text in [&table, &wide, &describe] {
        assert!(!text.contains("smtp-pass-9137") && !text.contains("operator-secret"));
    }
}
