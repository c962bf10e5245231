//! The Helm chart for real: the real `helm` installs it into the real apiserver with default
//! values, upgrades it to `watchNamespaces`, and uninstalls it; the objects it leaves are
//! checked, and the real authorizer says what its ServiceAccount may do. (The Deployment's pod
//! never runs: there is no scheduler or kubelet.)

use control_plane::{self, CHART, ControlPlane, OPERATOR_USER, RELEASE, RELEASE_NAMESPACE};

const CRD: &str = "crd/identitysettingpolicies.identitysettings.dev";

/// `kubectl auth can-i VERB RESOURCE` as the chart's ServiceAccount; `where_`: `-A` or `-n NS`.
async fn can_i(plane: &ControlPlane, verb: &str, resource: &str, where_: &[&str]) -> bool {
    let mut args = vec!["auth", "can-i", verb, resource, "--as", OPERATOR_USER];
    args.extend(where_);
    let out = plane.kubectl_output(&args, None).await;
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

async fn exists(plane: &ControlPlane, args: &[&str]) -> bool {
    let mut all = vec!["get"];
    all.extend(args);
    plane.kubectl_output(&all, None).await.status.success()
}

pub async fn helm_installs_upgrades_and_uninstalls_the_chart() {
    let bin = control_plane::selected().expect("selected");
    let plane = ControlPlane::start_bare(&bin).await;
    let ns = ["-n", RELEASE_NAMESPACE];
    let cluster_role = format!("clusterrole/{RELEASE_NAMESPACE}-{RELEASE}");
    let cluster_binding = format!("clusterrolebinding/{RELEASE_NAMESPACE}-{RELEASE}");

    // Install with default values: the CRD from the chart's crds/, and every object.
    let out = plane
        .helm(&[
            "install",
            RELEASE,
            CHART,
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
        ])
        .await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    plane
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            CRD,
            "crd/identityservers.identitysettings.dev",
            "crd/clusteridentityservers.identitysettings.dev",
        ])
        .await;
    for object in [
        &format!("deployment/{RELEASE}") as &str,
        &format!("serviceaccount/{RELEASE}"),
        &format!("service/{RELEASE}-metrics"),
    ] {
        assert!(
            exists(&plane, &[object, ns[0], ns[1]]).await,
            "{object} was not created"
        );
    }
    assert!(exists(&plane, &[&cluster_role]).await, "{cluster_role}");
    assert!(
        exists(&plane, &[&cluster_binding]).await,
        "{cluster_binding}"
    );
    let image = plane
        .kubectl(&[
            "get", &format!("deployment/{RELEASE}"), ns[0], ns[1], "-o",
            "jsonpath={.spec.template.spec.serviceAccountName} {.spec.template.spec.securityContext.runAsNonRoot}",
        ])
        .await;
    assert_eq!(image, format!("{RELEASE} true"));
    // Cluster-wide: the policies and Secrets of any namespace; nothing it does not use.
    assert!(
        can_i(
            &plane,
            "watch",
            "identitysettingpolicies.identitysettings.dev",
            &["-A"]
        )
        .await
    );
    assert!(
        can_i(
            &plane,
            "patch",
            "identitysettingpolicies.identitysettings.dev",
            &["-A", "--subresource=status"]
        )
        .await
    );
    assert!(can_i(&plane, "get", "secrets", &["-n", "anywhere"]).await);
    // `kubectl auth can-i VERB RESOURCE/NAME`: a subresource needs --subresource.
    for (verb, resource, where_) in [
        ("watch", "identityservers.identitysettings.dev", &["-A"][..]),
        (
            "patch",
            "identityservers.identitysettings.dev",
            &["-A", "--subresource=status"][..],
        ),
        (
            "watch",
            "clusteridentityservers.identitysettings.dev",
            &["-A"][..],
        ),
        (
            "patch",
            "clusteridentityservers.identitysettings.dev",
            &["-A", "--subresource=status"][..],
        ),
        ("watch", "namespaces", &["-A"][..]),
    ] {
        assert!(
            can_i(&plane, verb, resource, where_).await,
            "{verb} {resource} {where_:?}"
        );
    }
    assert!(
        !can_i(
            &plane,
            "patch",
            "clusteridentityservers.identitysettings.dev",
            &["-A"]
        )
        .await,
        "only their status"
    );
    assert!(
        !can_i(
            &plane,
            "update",
            "identityservers.identitysettings.dev",
            &["-A"]
        )
        .await
    );
    // create/patch: the restore points of deletionPolicy Restore; never delete or update.
    assert!(can_i(&plane, "create", "secrets", &["-n", "anywhere"]).await);
    assert!(!can_i(&plane, "delete", "secrets", &["-n", "anywhere"]).await);
    assert!(!can_i(&plane, "update", "secrets", &["-n", "anywhere"]).await);
    assert!(
        !can_i(
            &plane,
            "delete",
            "identitysettingpolicies.identitysettings.dev",
            &["-A"]
        )
        .await
    );
    assert!(
        !can_i(
            &plane,
            "update",
            "leases.coordination.k8s.io",
            ns.as_slice()
        )
        .await
    );

    // Upgrade to watched namespaces with two replicas: Roles there, no ClusterRole, and the
    // leader-election Role in the release namespace. The Grafana dashboard is turned on too: the
    // real apiserver takes its ConfigMap (the PrometheusRule needs the Prometheus Operator's
    // CRDs, which this cluster does not have).
    for team in ["team-a", "team-b"] {
        plane.create_namespace(team).await;
    }
    let out = plane
        .helm(&[
            "upgrade",
            RELEASE,
            CHART,
            "--namespace",
            RELEASE_NAMESPACE,
            "--set",
            "watchNamespaces={team-a,team-b}",
            "--set",
            "replicaCount=2",
            "--set",
            "metrics.grafanaDashboard.enabled=true",
        ])
        .await;
    assert!(
        out.contains("STATUS: deployed") && out.contains("REVISION: 2"),
        "{out}"
    );
    assert!(
        !exists(&plane, &[&cluster_role]).await,
        "the ClusterRole outlived the upgrade"
    );
    assert!(!exists(&plane, &[&cluster_binding]).await);
    // Cluster-scoped resources only, cluster-wide: cluster servers and namespace labels.
    assert!(exists(&plane, &[&format!("{cluster_role}-cluster-scoped")]).await);
    assert!(
        can_i(
            &plane,
            "watch",
            "clusteridentityservers.identitysettings.dev",
            &["-A"]
        )
        .await
    );
    assert!(can_i(&plane, "watch", "namespaces", &["-A"]).await);
    assert!(
        !can_i(
            &plane,
            "watch",
            "identityservers.identitysettings.dev",
            &["-A"]
        )
        .await,
        "namespaced servers only in the watched namespaces"
    );
    for team in ["team-a", "team-b"] {
        assert!(
            exists(&plane, &[&format!("role/{RELEASE}"), "-n", team]).await,
            "{team}"
        );
        assert!(
            exists(&plane, &[&format!("rolebinding/{RELEASE}"), "-n", team]).await,
            "{team}"
        );
        assert!(
            can_i(&plane, "list", "secrets", &["-n", team]).await,
            "{team}"
        );
    }
    assert!(!can_i(&plane, "list", "secrets", &["-n", "default"]).await);
    assert!(
        !can_i(
            &plane,
            "list",
            "identitysettingpolicies.identitysettings.dev",
            &["-A"]
        )
        .await
    );
    assert!(
        can_i(
            &plane,
            "update",
            "leases.coordination.k8s.io",
            ns.as_slice()
        )
        .await
    );
    let replicas = plane
        .kubectl(&[
            "get",
            &format!("deployment/{RELEASE}"),
            ns[0],
            ns[1],
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await;
    assert_eq!(replicas, "2");
    // The dashboard, as Grafana's sidecar finds it: by its label.
    let dashboards = plane
        .kubectl(&[
            "get",
            "configmaps",
            ns[0],
            ns[1],
            "-l",
            "grafana_dashboard=1",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .await;
    assert_eq!(dashboards, format!("{RELEASE}-dashboard"));
    let history = plane
        .helm(&["history", RELEASE, "--namespace", RELEASE_NAMESPACE])
        .await;
    assert!(
        history.contains("superseded") && history.contains("deployed"),
        "{history}"
    );

    // Uninstall: every object goes, the CRD stays (Helm never deletes crds/, so policies survive).
    let out = plane
        .helm(&["uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE])
        .await;
    assert!(out.contains("uninstalled"), "{out}");
    assert!(!exists(&plane, &[&format!("deployment/{RELEASE}"), ns[0], ns[1]]).await);
    assert!(
        !exists(
            &plane,
            &[&format!("serviceaccount/{RELEASE}"), ns[0], ns[1]]
        )
        .await
    );
    assert!(!exists(&plane, &[&format!("role/{RELEASE}"), "-n", "team-a"]).await);
    assert!(
        !exists(
            &plane,
            &[&format!("configmap/{RELEASE}-dashboard"), ns[0], ns[1]]
        )
        .await
    );
    assert!(
        !exists(
            &plane,
            &[&format!("role/{RELEASE}-leader-election"), ns[0], ns[1]]
        )
        .await
    );
    assert!(
        exists(&plane, &[CRD]).await,
        "helm uninstall removed the CRD"
    );
    let list = plane.helm(&["list", "--all-namespaces", "--short"]).await;
    assert!(list.trim().is_empty(), "{list}");
}
