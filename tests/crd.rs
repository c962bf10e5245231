//! The committed CRD is what the Rust types generate, and a real apiserver would accept its
//! schema as structural.

use identity_settings_operator::crdgen::crd_yaml;
use serde_json::Value;

const CRD_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crds/identitysettings.dev.yaml"
);

#[test]
fn the_committed_crd_is_not_stale() {
    let generated = crd_yaml().expect("renders");
    let committed = std::fs::read_to_string(CRD_PATH).expect("crds/ file exists");
    assert!(
        generated == committed,
        "crds/ is stale: run `cargo run -p identity-settings-operator -- crd > crds/identitysettings.dev.yaml`"
    );
}

/// The CRDs as the committed YAML says them (parsed back, so the tests see what users apply),
/// by kind.
fn crds() -> std::collections::BTreeMap<String, Value> {
    use serde::Deserialize;
    let yaml = std::fs::read_to_string(CRD_PATH).expect("crds/ file exists");
    serde_norway::Deserializer::from_str(&yaml)
        .map(|document| {
            let crd = Value::deserialize(document).expect("valid YAML");
            let kind = crd["spec"]["names"]["kind"]
                .as_str()
                .expect("a kind")
                .to_owned();
            (kind, crd)
        })
        .collect()
}

/// The policy CRD.
fn crd() -> Value {
    crds()["IdentitySettingPolicy"].clone()
}

fn schema() -> Value {
    crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Structural schema rules the apiserver enforces: every node has a type (or says it preserves
/// unknown fields / is int-or-string), and no `$ref`, `anyOf` or `oneOf` without types.
fn assert_structural(node: &Value, path: &str) {
    let Some(obj) = node.as_object() else { return };
    let typed = obj.contains_key("type")
        || obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    assert!(typed, "{path}: schema node without a type");
    assert!(!obj.contains_key("$ref"), "{path}: $ref is not allowed");
    for forbidden in ["anyOf", "oneOf", "allOf"] {
        assert!(
            !obj.contains_key(forbidden),
            "{path}: {forbidden} would need structural care"
        );
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            assert_structural(child, &format!("{path}.{name}"));
        }
    }
    if let Some(items) = obj.get("items") {
        assert_structural(items, &format!("{path}[]"));
    }
}

#[test]
fn the_schemas_are_structural() {
    let crds = crds();
    assert_eq!(
        crds.keys().collect::<Vec<_>>(),
        [
            "ClusterIdentityServer",
            "IdentityServer",
            "IdentitySettingPolicy"
        ]
    );
    for (kind, crd) in &crds {
        assert_structural(
            &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            kind,
        );
    }
}

#[test]
fn a_cluster_server_is_cluster_scoped_and_must_say_where_its_secret_is_and_who_may_use_it() {
    let crds = crds();
    let cluster = &crds["ClusterIdentityServer"];
    assert_eq!(cluster["spec"]["scope"], "Cluster");
    assert_eq!(crds["IdentityServer"]["spec"]["scope"], "Namespaced");
    let spec = &cluster["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let required: Vec<&str> = spec["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in [
        "url",
        "credentialsSecretRef",
        "secretNamespace",
        "allowedNamespaces",
    ] {
        assert!(
            required.contains(&field),
            "{field} is not required: {required:?}"
        );
    }
}

#[test]
fn the_schema_carries_the_validation_users_rely_on() {
    let s = schema();
    let settings = &s["properties"]["spec"]["properties"]["settings"];
    assert_eq!(settings["x-kubernetes-list-type"], "map");
    assert_eq!(settings["x-kubernetes-list-map-keys"][0], "key");
    let item = &settings["items"];
    assert!(item["properties"]["key"]["pattern"].is_string());
    let rules: Vec<&str> = item["x-kubernetes-validations"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert!(rules.contains(&"has(self.value) != has(self.valueFrom)"));
    let required: Vec<&str> = s["properties"]["spec"]["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["partitionGlobalId", "settings"]);
    let spec_rules: Vec<&str> = s["properties"]["spec"]["x-kubernetes-validations"]
        .as_array()
        .expect("spec rules")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert_eq!(spec_rules, ["has(self.server) != has(self.serverRef)"]);
}

#[test]
fn the_crd_has_the_status_subresource_printer_columns_and_short_name() {
    let docs = crd();
    let version = &docs["spec"]["versions"][0];
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Partition", "Settings", "Ready", "Reason", "Age"]);
    assert_eq!(docs["spec"]["names"]["shortNames"][0], "isp");
    assert_eq!(docs["spec"]["scope"], "Namespaced");
}

#[test]
fn the_helm_charts_crd_is_the_generated_one() {
    let root = env!("CARGO_MANIFEST_DIR");
    let name = "identitysettings.dev.yaml";
    let repo = std::fs::read_to_string(format!("{root}/crds/{name}")).expect("crds/ copy");
    let chart = std::fs::read_to_string(format!(
        "{root}/charts/identity-settings-operator/crds/{name}"
    ))
    .expect("the chart's crds/ copy");
    assert!(
        chart == repo,
        "charts/identity-settings-operator/crds/{name} differs from crds/{name}: copy it over"
    );
}
