//! CustomResourceDefinition manifests -> the [`ResourceKind`]s they register, so the
//! `kube-emulator` binary can serve a CRD given as a YAML file, as a real server does once the
//! CRD is applied.
//!
//! Deviation: only what routing needs is read (group, names, scope, served versions and their
//! status subresource); schemas, defaults and printer columns are ignored.

use serde::Deserialize;
use serde_json::Value;

use super::ResourceKind;

/// Why a CRD manifest could not be turned into resource kinds; says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// A document is not valid YAML.
    #[error("document {document}: {problem}")]
    Yaml {
        /// 1-based index of the document.
        document: usize,
        /// The parser's message.
        problem: String,
    },
    /// A CRD lacks a field routing needs.
    #[error("document {document}: CustomResourceDefinition without {field}")]
    Missing {
        /// 1-based index of the document.
        document: usize,
        /// The field's path, e.g. `spec.names.plural`.
        field: &'static str,
    },
    /// The text holds no CustomResourceDefinition.
    #[error("no apiextensions.k8s.io CustomResourceDefinition found")]
    NoCrd,
}

/// Every served version of every CustomResourceDefinition in `yaml` (one or more documents;
/// documents of other kinds are skipped).
pub fn resource_kinds_from_crd(yaml: &str) -> Result<Vec<ResourceKind>, CrdError> {
    let mut kinds = Vec::new();
    let mut found = false;
    for (index, document) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let document_number = index + 1;
        let yaml_error = |problem: String| CrdError::Yaml {
            document: document_number,
            problem,
        };
        let yaml =
            serde_norway::Value::deserialize(document).map_err(|e| yaml_error(e.to_string()))?;
        let value = serde_json::to_value(&yaml).map_err(|e| yaml_error(e.to_string()))?;
        let is_crd = value["kind"] == "CustomResourceDefinition"
            && value["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"));
        if !is_crd {
            continue;
        }
        found = true;
        kinds.extend(kinds_of(&value, document_number)?);
    }
    if found {
        Ok(kinds)
    } else {
        Err(CrdError::NoCrd)
    }
}

/// The served versions of one CRD.
fn kinds_of(crd: &Value, document: usize) -> Result<Vec<ResourceKind>, CrdError> {
    let text = |value: &Value, field: &'static str| {
        value
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or(CrdError::Missing { document, field })
    };
    let spec = &crd["spec"];
    let group = text(&spec["group"], "spec.group")?;
    let kind = text(&spec["names"]["kind"], "spec.names.kind")?;
    let plural = text(&spec["names"]["plural"], "spec.names.plural")?;
    // `scope` is required on a real server; `Namespaced` is the common case.
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let versions = spec["versions"]
        .as_array()
        .filter(|v| !v.is_empty())
        .ok_or(CrdError::Missing {
            document,
            field: "spec.versions",
        })?;
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| {
            Ok(ResourceKind {
                group: group.clone(),
                version: text(&v["name"], "spec.versions[].name")?,
                plural: plural.clone(),
                kind: kind.clone(),
                namespaced,
                status_subresource: v["subresources"].get("status").is_some(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD: &str = "# a comment
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.dev}
spec:
  group: example.dev
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true, subresources: {status: {}}}
  - {name: v0, served: false, storage: false}
  - {name: v2, served: true, storage: false}
";

    #[test]
    fn served_versions_become_resource_kinds() {
        let kinds = resource_kinds_from_crd(CRD).expect("parses");
        assert_eq!(kinds.len(), 2);
        assert_eq!(kinds[0].api_version(), "example.dev/v1");
        assert_eq!(kinds[0].plural, "widgets");
        assert!(kinds[0].namespaced && kinds[0].status_subresource);
        assert_eq!(kinds[1].version, "v2");
        assert!(!kinds[1].status_subresource);
    }

    #[test]
    fn the_repository_crd_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../crds/identitysettings.dev.yaml"
        );
        let yaml = std::fs::read_to_string(path).expect("the CRD file");
        let kinds = resource_kinds_from_crd(&yaml).expect("parses");
        let scopes: Vec<(&str, bool)> = kinds
            .iter()
            .map(|k| (k.kind.as_str(), k.namespaced))
            .collect();
        assert_eq!(
            scopes,
            [
                ("IdentitySettingPolicy", true),
                ("IdentityServer", true),
                ("ClusterIdentityServer", false)
            ]
        );
        assert!(kinds.iter().all(|k| k.status_subresource));
    }

    #[test]
    fn other_documents_and_missing_fields_are_reported() {
        assert!(matches!(
            resource_kinds_from_crd("apiVersion: v1\nkind: Secret\n"),
            Err(CrdError::NoCrd)
        ));
        let no_plural = CRD.replace(", plural: widgets", "");
        assert!(matches!(
            resource_kinds_from_crd(&no_plural),
            Err(CrdError::Missing {
                field: "spec.names.plural",
                ..
            })
        ));
        assert!(matches!(
            resource_kinds_from_crd("a: [b"),
            Err(CrdError::Yaml { .. })
        ));
    }
}
