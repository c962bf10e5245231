//! The monitoring the Helm chart ships, against a running operator: every metric its alerts
//! (`files/prometheus-rules.yaml`) and its Grafana dashboard (`files/grafana-dashboard.json`)
//! name is one the operator exports on `/metrics`, with the labels and label values they select
//! on — so no alert waits for a series that never comes and no panel stays empty. Those two files
//! are the ones the chart renders (`.Files.Get`); promtool checks the rules themselves
//! (`.ci/check-monitoring`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::*;

/// Labels Prometheus puts on every sample of a target when it scrapes it through the chart's
/// ServiceMonitor (the operator does not export them, so they cannot be looked up in
/// `/metrics`). Not `endpoint`: the ServiceMonitor honours the operator's own `endpoint` label.
const TARGET_LABELS: [&str; 6] = [
    "namespace",
    "pod",
    "job",
    "instance",
    "service",
    "container",
];

/// Words of PromQL that are not metric names: binary and set operators, modifiers, aggregations.
const KEYWORDS: [&str; 26] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a parenthesised list of label names (not metric names).
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// One label matcher of a selector, such as `status="429"`.
#[derive(Debug)]
struct Matcher {
    /// The label name.
    label: String,
    /// `=`, `!=`, `=~` or `!~`.
    op: String,
    /// The value or regular expression, unquoted.
    value: String,
}

/// A metric selector in a PromQL expression: `name{matchers}`.
#[derive(Debug)]
struct Selector {
    /// The metric name.
    metric: String,
    /// Its label matchers.
    matchers: Vec<Matcher>,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn skip_whitespace(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// Reads the quoted string starting at `i`: its text and the index after the closing quote.
fn quoted(chars: &[char], i: usize) -> (String, usize) {
    let quote = chars[i];
    let mut text = String::new();
    let mut j = i + 1;
    while j < chars.len() && chars[j] != quote {
        if chars[j] == '\\' && quote != '`' {
            j += 1;
        }
        if let Some(&c) = chars.get(j) {
            text.push(c);
        }
        j += 1;
    }
    (text, j + 1)
}

/// Reads the label matchers in the braces starting at `i`; also returns the index after `}`.
fn matchers(chars: &[char], i: usize) -> (Vec<Matcher>, usize) {
    let mut out = Vec::new();
    let mut j = i + 1;
    loop {
        while chars.get(j).is_some_and(|c| c.is_whitespace() || *c == ',') {
            j += 1;
        }
        match chars.get(j) {
            None => return (out, j),
            Some('}') => return (out, j + 1),
            Some(_) => {}
        }
        let start = j;
        while chars.get(j).is_some_and(|c| is_word_char(*c)) {
            j += 1;
        }
        let label: String = chars[start..j].iter().collect();
        j = skip_whitespace(chars, j);
        let op_start = j;
        while chars.get(j).is_some_and(|c| matches!(c, '=' | '!' | '~')) {
            j += 1;
        }
        let op: String = chars[op_start..j].iter().collect();
        j = skip_whitespace(chars, j);
        if !chars.get(j).is_some_and(|c| matches!(c, '"' | '\'' | '`')) {
            panic!(
                "cannot read the matcher of {label} in {}",
                chars.iter().collect::<String>()
            );
        }
        let (value, next) = quoted(chars, j);
        out.push(Matcher { label, op, value });
        j = next;
    }
}

/// The metric selectors of a PromQL expression (Grafana's `$variables` allowed), in order.
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = quoted(&chars, i).1;
        } else if c == '[' {
            // A range or subquery duration, such as [5m] or [$__rate_interval].
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            while chars.get(i).is_some_and(|c| is_word_char(*c)) {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration (offset 5m).
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.')
            {
                i += 1;
            }
        } else if c == '{' {
            let (m, next) = matchers(&chars, i);
            out.push(Selector {
                metric: String::new(),
                matchers: m,
            });
            i = next;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while chars.get(i).is_some_and(|c| is_word_char(*c)) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_whitespace(&chars, i);
            let opens = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) && opens {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
            } else if KEYWORDS.contains(&word.as_str()) || opens {
                // An operator, or a function or aggregation whose arguments follow.
            } else if chars.get(next) == Some(&'{') {
                let (m, after) = matchers(&chars, next);
                out.push(Selector {
                    metric: word,
                    matchers: m,
                });
                i = after;
            } else {
                out.push(Selector {
                    metric: word,
                    matchers: Vec::new(),
                });
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The PromQL the chart ships, each with where it is: every alert's `expr`, every dashboard
/// panel's query and the metric of each dashboard variable's `label_values(...)` query.
fn shipped_queries() -> Vec<(String, String)> {
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/identity-settings-operator"
    );
    let mut out = Vec::new();

    let rules_text = std::fs::read_to_string(format!("{chart}/files/prometheus-rules.yaml"))
        .expect("the chart's rules file exists");
    let rules: Value = serde_norway::from_str(&rules_text).expect("the rules file parses");
    let mut rule_count = 0;
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            rule_count += 1;
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("every alert has an expr");
            out.push((format!("alert {name}"), expr.to_owned()));
        }
    }
    assert!(
        rule_count >= 8,
        "only {rule_count} alerts in the rules file"
    );

    let dashboard_text = std::fs::read_to_string(format!("{chart}/files/grafana-dashboard.json"))
        .expect("the chart's dashboard exists");
    let dashboard: Value = serde_json::from_str(&dashboard_text).expect("the dashboard parses");
    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("untitled");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            out.push((format!("panel {title:?}"), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .expect("a variable's query");
        let metric = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.split(',').next())
            .expect("variables are label_values(metric, label) queries");
        out.push((
            format!("variable {}", variable["name"]),
            metric.trim().to_owned(),
        ));
    }
    out
}

/// Panels, and the panels of collapsed rows.
fn collect_panels<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel);
        collect_panels(&panel["panels"], out);
    }
}

/// The samples of a `/metrics` text: each sample name with the label pairs of its series.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let selector = format!("x{}", &line[name_end..]);
            for m in selectors(&selector).into_iter().flat_map(|s| s.matchers) {
                labels.insert((m.label, m.value));
            }
        }
    }
    out
}

/// What is wrong with `expr` (at `place`) against the exported samples.
fn problems(
    place: &str,
    expr: &str,
    exported: &BTreeMap<String, BTreeSet<(String, String)>>,
) -> Vec<String> {
    let found = selectors(expr);
    if found.iter().all(|s| s.metric.is_empty()) {
        return vec![format!("{place}: no metric found in {expr:?}")];
    }
    let mut out = Vec::new();
    for s in found {
        let Some(series) = exported.get(&s.metric) else {
            out.push(format!("{place}: {} is not exported", s.metric));
            continue;
        };
        for m in s.matchers {
            if TARGET_LABELS.contains(&m.label.as_str()) {
                continue;
            }
            if !series.iter().any(|(label, _)| *label == m.label) {
                out.push(format!("{place}: {} has no label {}", s.metric, m.label));
            } else if m.op == "="
                && !m.value.is_empty()
                && !series.contains(&(m.label.clone(), m.value.clone()))
            {
                out.push(format!(
                    "{place}: no series of {} has {}={:?}",
                    s.metric, m.label, m.value
                ));
            }
        }
    }
    out
}

#[test]
fn selectors_are_read_from_promql_as_prometheus_reads_them() {
    let expr = r#"sum by (namespace, endpoint) (increase(m_total{status="429", endpoint=~"a|b"}[15m])) > 0
        unless on (namespace) count by (namespace) (other) - histogram_quantile(0.5, sum by (le) (rate(h_bucket{namespace=~"$namespace"}[$__rate_interval]))) offset 5m"#;
    let found: Vec<String> = selectors(expr)
        .into_iter()
        .map(|s| {
            let m: Vec<String> = s
                .matchers
                .iter()
                .map(|m| format!("{}{}{:?}", m.label, m.op, m.value))
                .collect();
            format!("{}{{{}}}", s.metric, m.join(","))
        })
        .collect();
    assert_eq!(
        found,
        [
            r#"m_total{status="429",endpoint=~"a|b"}"#,
            "other{}",
            r#"h_bucket{namespace=~"$namespace"}"#,
        ]
    );
}

/// An operator that has applied a policy and met one 429 exports every series the chart's
/// alerts and dashboard select; a misspelt metric, label or label value in them fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_alerts_and_dashboard_use_only_metrics_the_operator_exports() {
    let queries = shipped_queries();
    let mut world = World::start().await;
    world.put_good_credentials("admin").await;
    world
        .create_policy(&policy(
            &world,
            "monitored",
            "admin",
            vec![setting("Auth.UserLockOut.IsEnabled", "false")],
        ))
        .await;
    world.spawn_operator(&[]).await;
    world
        .wait_reason("monitored", "Applied", Duration::from_secs(20))
        .await;

    // The service answers the next setting request with 429 Too Many Requests: the series the
    // rate-limit alert and the 429 panel select.
    world
        .sim
        .faults()
        .fail_next(1, 429, Some(Duration::from_secs(1)));
    let patch =
        json!({"spec": {"settings": [{"key": "Auth.UserLockOut.IsEnabled", "value": "true"}]}});
    world
        .policies()
        .patch("monitored", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (code, metrics) = world.operator(0).http_get("/metrics").await;
        assert_eq!(code, 200);
        if metrics.contains(r#"status="429""#) {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 429 counted:\n{metrics}\n{}",
            world.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let exported = exported(&metrics);
    let wrong: Vec<String> = queries
        .iter()
        .flat_map(|(place, expr)| problems(place, expr, &exported))
        .collect();
    assert!(
        wrong.is_empty(),
        "the chart's monitoring selects what the operator does not export:\n{}\n\n/metrics:\n{metrics}",
        wrong.join("\n")
    );
}
