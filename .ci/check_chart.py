"""Checks the Helm chart charts/identity-settings-operator; run through .ci/check-chart.

1. Helm's lint (helm-sdkpy `Lint`) on the chart with its defaults and with each ci/*.yaml file.
2. Renders the chart with Helm's own engine (helm-sdkpy `Install` against fake_kube_api.py, since
   helm-sdkpy has no client-only dry run) for the defaults and each ci/*.yaml file, writing the
   manifests and NOTES to a temporary directory.
3. Asserts the chart's promises on each render (RBAC from files/rbac-rules.yaml, env, probes,
   security contexts, optional objects, the PrometheusRule and dashboard ConfigMap from
   files/prometheus-rules.yaml and files/grafana-dashboard.json, NOTES).
4. Validates every rendered object and the CRD files with kubernetes-validate (strict) against the
   newest Kubernetes version it ships schemas for.
5. Checks that values.schema.json (and the chart's own checks) refuse bad values, naming the field.
Exits 1 with the list of failures if anything is wrong.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import helm_sdkpy
import kubernetes_validate
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_kube_api import FakeKubeAPI  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "identity-settings-operator"
RELEASE = "iso"
NAMESPACE = "identity-system"
FULLNAME = f"{RELEASE}-identity-settings-operator"
K8S_VERSION = kubernetes_validate.latest_version()
# Chart.yaml's kubeVersion (>=1.25.0-0): the oldest supported release is validated too.
K8S_VERSIONS = ["1.25.0", K8S_VERSION]
STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                   "app.kubernetes.io/managed-by", "helm.sh/chart")
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}

# Values that must be refused, and a text the error must contain (the field it names).
BAD_VALUES = [
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"replicas": 2}, "'replicas'"),
    ({"logFormat": "yaml"}, "/logFormat"),
    ({"concurrency": 0}, "/concurrency"),
    ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    ({"backoff": {"min": "5 seconds"}}, "/backoff/min"),
    ({"identityTimeout": "0s"}, "/identityTimeout"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"metrics": {"serviceMonitor": {"enabled": True, "intervall": "1m"}}}, "'intervall'"),
    ({"leaderElection": {"leaseDuration": "15s", "renewInterval": "10s"}}, "leaderElection.renewInterval"),
    ({"serviceAccount": {"create": False}}, "serviceAccount.name"),
    ({"metrics": {"prometheusRule": {"enabled": "yes"}}}, "/metrics/prometheusRule/enabled"),
    # (Helm's JSON Schema library names a wrong path for a propertyNames error; the name it gives is right.)
    ({"metrics": {"prometheusRule": {"additionalRuleLabels": {"team-name": "a"}}}}, "invalid propertyName 'team-name'"),
    ({"metrics": {"grafanaDashboard": {"namespace": "Monitoring"}}}, "/metrics/grafanaDashboard/namespace"),
    ({"metrics": {"grafanaDashboard": {"labelValue": 1}}}, "/metrics/grafanaDashboard/labelValue"),
]

# Objects of the Prometheus Operator's CRDs, which kubernetes-validate has no schema for: the
# render assertions check them instead.
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}

# The environment variables `identity-settings-operator run` reads, from its clap definitions.
OPERATOR_ENV = set(re.findall(r'env = "([A-Z0-9_]+)"', (ROOT / "src/cli.rs").read_text()))

failures: list[str] = []
passed = 0


def check(ok: bool, what: str) -> bool:
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
        print(f"  FAIL {what}")
    return ok


def merge(base: dict, over: dict) -> dict:
    """Helm's coalescing of user values over chart defaults: maps merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def helm_config(api: FakeKubeAPI) -> helm_sdkpy.Configuration:
    return helm_sdkpy.Configuration(namespace=NAMESPACE, kubeconfig=api.kubeconfig(NAMESPACE))


async def render(api: FakeKubeAPI, values: dict) -> dict:
    api.reset()
    return await helm_sdkpy.Install(helm_config(api)).run(
        RELEASE, str(CHART), values=values or None, wait=False, timeout=60)


# ---------------------------------------------------------------------------------------------
# 1. lint

async def lint(name: str, values: dict, workdir: Path) -> None:
    chart_dir = CHART
    if values:  # lint a copy whose values.yaml is the coalesced values, as `helm lint -f` would
        chart_dir = workdir / "lint" / name / CHART.name
        shutil.copytree(CHART, chart_dir)
        merged = merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)
        (chart_dir / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    result = await helm_sdkpy.Lint(helm_sdkpy.Configuration(namespace=NAMESPACE)).run(str(chart_dir))
    bad = []
    for msg in result.get("Messages") or []:
        sev = msg.get("Severity", 0)
        if sev >= 2:
            bad.append(f"{SEVERITY.get(sev, sev)} {msg.get('Path')}")
        elif sev == 1 and name == "defaults":
            print(f"  lint INFO in {msg.get('Path')} (accepted; helm-sdkpy drops lint message texts)")
    check(result.get("TotalChartsLinted") == 1, f"lint[{name}]: no chart was linted")
    check(not bad and not result.get("Errors"),
          f"lint[{name}]: {', '.join(bad) or 'errors'} (helm-sdkpy drops the texts; the render step "
          "below usually shows the cause)")


# ---------------------------------------------------------------------------------------------
# 3. assertions on one render

def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind]


def assert_render(name: str, values: dict, objs: list[dict], notes: str, rules: dict, alerts: dict,
                  dashboard: str) -> None:
    p = f"render[{name}]"
    le_on = bool(values["leaderElection"]["enabled"]) or values["replicaCount"] > 1
    watch = values["watchNamespaces"]

    for o in objs:
        labels = o.get("metadata", {}).get("labels") or {}
        missing = [label for label in STANDARD_LABELS if label not in labels]
        check(not missing, f"{p}: {o.get('kind')}/{o.get('metadata', {}).get('name')} lacks labels {missing}")

    deps = by_kind(objs, "Deployment")
    if not check(len(deps) == 1, f"{p}: expected one Deployment, got {len(deps)}"):
        return
    dep = deps[0]
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    check(dep["metadata"]["name"] == FULLNAME, f"{p}: Deployment name {dep['metadata']['name']}")
    check(spec["replicas"] == values["replicaCount"], f"{p}: replicas {spec['replicas']}")
    sel = spec["selector"]["matchLabels"]
    tmpl_labels = dep["spec"]["template"]["metadata"]["labels"]
    check(all(tmpl_labels.get(k) == v for k, v in sel.items()), f"{p}: selector {sel} does not match pod labels")
    check(all(tmpl_labels.get(k) == v for k, v in values["podLabels"].items()), f"{p}: podLabels missing")
    check((dep["spec"]["template"]["metadata"].get("annotations") or {}) == values["podAnnotations"],
          f"{p}: podAnnotations")
    check(spec["strategy"]["type"] == ("RollingUpdate" if le_on else "Recreate"), f"{p}: strategy {spec['strategy']}")

    psc = pod.get("securityContext") or {}
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532 and psc.get("runAsGroup") == 65532
          and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{p}: pod securityContext {psc}")
    if not check(len(pod["containers"]) == 1, f"{p}: expected one container"):
        return
    c = pod["containers"][0]
    csc = c.get("securityContext") or {}
    check(csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
          and csc.get("privileged") is False and csc.get("capabilities", {}).get("drop") == ["ALL"],
          f"{p}: container securityContext {csc}")
    check(c.get("args") == ["run"], f"{p}: args {c.get('args')}")
    ports = {pt["name"]: pt["containerPort"] for pt in c.get("ports", [])}
    check(ports.get("http") == values["httpPort"], f"{p}: container ports {ports}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        check(get.get("path") == path and get.get("port") == "http", f"{p}: {probe} {get}")
    check(c.get("resources") == values["resources"], f"{p}: resources {c.get('resources')}")

    image = c["image"]
    img = values["image"]
    want = (f"{img['repository']}@{img['digest']}" if img["digest"]
            else f"{img['repository']}:{img['tag'] or '0.1.0'}")
    check(image == want, f"{p}: image {image}, want {want}")

    env = {e["name"]: e for e in c.get("env", [])}
    value = {k: e.get("value") for k, e in env.items()}
    expect = {
        "WATCH_NAMESPACES": ",".join(watch),
        "LEADER_ELECTION": "true" if le_on else "false",
        "LEASE_NAME": FULLNAME,
        "LOG_FORMAT": values["logFormat"],
        "CONCURRENCY": str(values["concurrency"]),
        "IDENTITY_TIMEOUT": values["identityTimeout"],
        "BACKOFF_MIN": values["backoff"]["min"],
        "BACKOFF_MAX": values["backoff"]["max"],
        "LEASE_DURATION": values["leaderElection"]["leaseDuration"],
        "LEASE_RENEW_INTERVAL": values["leaderElection"]["renewInterval"],
        "HTTP_PORT": str(values["httpPort"]),
        "HTTP_ADDRESS": values["httpAddress"],
    }
    for k, v in expect.items():
        check(value.get(k) == v, f"{p}: env {k}={value.get(k)!r}, want {v!r}")
    for k, field in (("POD_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")):
        check(env.get(k, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == field, f"{p}: env {k}")
    check("ALLOW_INSECURE_HTTP" not in env, f"{p}: ALLOW_INSECURE_HTTP must not be set")
    for extra in values["extraEnv"]:
        check(env.get(extra["name"]) == extra, f"{p}: extraEnv {extra['name']} missing")
    # Every variable the chart sets is one the binary reads (`env = "..."` in src/cli.rs), so a
    # renamed flag cannot leave the chart setting a variable nobody reads.
    user_env = {e["name"] for e in values["extraEnv"]}
    for k in sorted(set(env) - user_env - OPERATOR_ENV):
        check(False, f"{p}: env {k} is not read by the operator (src/cli.rs has no env = \"{k}\")")
    for key in ("nodeSelector", "tolerations", "affinity"):
        check((pod.get(key) or type(values[key])()) == values[key], f"{p}: pod {key} {pod.get(key)}")
    check(pod.get("priorityClassName", "") == values["priorityClassName"], f"{p}: priorityClassName")

    # ServiceAccount and RBAC
    sa_name = values["serviceAccount"]["name"] or (FULLNAME if values["serviceAccount"]["create"] else "default")
    check(pod.get("serviceAccountName") == sa_name, f"{p}: serviceAccountName {pod.get('serviceAccountName')}")
    sas = by_kind(objs, "ServiceAccount")
    check(len(sas) == (1 if values["serviceAccount"]["create"] else 0), f"{p}: {len(sas)} ServiceAccounts")
    croles, crbs = by_kind(objs, "ClusterRole"), by_kind(objs, "ClusterRoleBinding")
    roles, rbs = by_kind(objs, "Role"), by_kind(objs, "RoleBinding")
    le_roles = [r for r in roles if r["metadata"]["name"].endswith("-leader-election")]
    watch_roles = [r for r in roles if r not in le_roles]
    if not values["rbac"]["create"]:
        check(not (croles or crbs or roles or rbs), f"{p}: rbac.create=false still renders RBAC")
    else:
        for rb in crbs + rbs:
            subj = rb.get("subjects") or []
            check(subj == [{"kind": "ServiceAccount", "name": sa_name, "namespace": NAMESPACE}],
                  f"{p}: {rb['kind']} {rb['metadata']['name']} subjects {subj}")
        if not watch:
            check(len(croles) == 1 and len(crbs) == 1 and not watch_roles,
                  f"{p}: all namespaces needs one ClusterRole+binding and no watched Role")
            check(all(r.get("rules") == rules["watched"] + rules["cluster"] for r in croles),
                  f"{p}: ClusterRole rules != watched + cluster")
            check(all(r["metadata"]["name"].startswith(f"{NAMESPACE}-") for r in croles + crbs),
                  f"{p}: cluster-scoped RBAC names must carry the release namespace (two releases of one name would collide)")
            check(all(b["roleRef"]["name"] == croles[0]["metadata"]["name"] for b in crbs),
                  f"{p}: the ClusterRoleBinding must refer to the ClusterRole")
        else:
            # Cluster-scoped resources (ClusterIdentityServers, namespace labels) need a
            # ClusterRole whatever is watched: exactly the `cluster` rules, nothing namespaced.
            check(len(croles) == 1 and len(crbs) == 1 and croles[0].get("rules") == rules["cluster"],
                  f"{p}: watchNamespaces set: want one ClusterRole with exactly the cluster rules")
            check(all(r["metadata"]["name"].startswith(f"{NAMESPACE}-") for r in croles + crbs),
                  f"{p}: cluster-scoped RBAC names must carry the release namespace")
            check(all(b["roleRef"]["name"] == croles[0]["metadata"]["name"] for b in crbs),
                  f"{p}: the ClusterRoleBinding must refer to the cluster-scoped ClusterRole")
            check(sorted(r["metadata"]["namespace"] for r in watch_roles) == sorted(watch),
                  f"{p}: watched Roles in {[r['metadata']['namespace'] for r in watch_roles]}, want {watch}")
            check(all(r.get("rules") == rules["watched"] for r in watch_roles), f"{p}: Role rules != watched")
            bound = sorted(rb["metadata"]["namespace"] for rb in rbs if rb["roleRef"]["name"] == FULLNAME)
            check(bound == sorted(watch), f"{p}: watched RoleBindings in {bound}")
        if le_on:
            check(len(le_roles) == 1 and le_roles[0]["metadata"]["namespace"] == NAMESPACE
                  and le_roles[0].get("rules") == rules["leaderElection"],
                  f"{p}: leader election needs the leases Role in {NAMESPACE}")
            check(any(rb["roleRef"]["name"] == f"{FULLNAME}-leader-election" for rb in rbs),
                  f"{p}: leader election RoleBinding missing")
        else:
            check(not le_roles, f"{p}: leader election off but a leases Role is rendered")

    # metrics Service, ServiceMonitor, PodDisruptionBudget
    svcs = by_kind(objs, "Service")
    svc = svcs[0] if svcs else None
    if values["metrics"]["service"]["enabled"] and check(len(svcs) == 1, f"{p}: {len(svcs)} Services"):
        sp = svc["spec"]
        check(sp.get("type") == "ClusterIP" and sp["ports"][0]["name"] == "http-metrics"
              and sp["ports"][0]["targetPort"] == "http", f"{p}: metrics Service ports {sp['ports']}")
        check(all(tmpl_labels.get(k) == v for k, v in sp["selector"].items()), f"{p}: Service selects no pod")
    sms = by_kind(objs, "ServiceMonitor")
    sm_on = values["metrics"]["serviceMonitor"]["enabled"]
    if check(len(sms) == (1 if sm_on else 0), f"{p}: {len(sms)} ServiceMonitors") and sm_on and svc:
        sm = sms[0]
        ep = sm["spec"]["endpoints"][0]
        check(ep.get("port") == svc["spec"]["ports"][0]["name"] and ep.get("path") == "/metrics"
              and ep.get("interval") == values["metrics"]["serviceMonitor"]["interval"],
              f"{p}: ServiceMonitor endpoint {ep}")
        check(all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
              f"{p}: ServiceMonitor selector does not match the metrics Service")
        labels = sm["metadata"]["labels"]
        check(all(labels.get(k) == v for k, v in values["metrics"]["serviceMonitor"]["labels"].items()),
              f"{p}: ServiceMonitor extra labels missing")
        # The operator's own `endpoint` label (setting, token, authenticate) must survive the
        # scrape, or the alerts and dashboard that select on it find nothing.
        check(ep.get("honorLabels") is True, f"{p}: ServiceMonitor endpoint must honour the operator's labels")

    # PrometheusRule (files/prometheus-rules.yaml) and the Grafana dashboard ConfigMap
    # (files/grafana-dashboard.json): the chart's files, as they are, where the values say.
    pr_values = values["metrics"]["prometheusRule"]
    prs = by_kind(objs, "PrometheusRule")
    if check(len(prs) == (1 if pr_values["enabled"] else 0), f"{p}: {len(prs)} PrometheusRules") and prs:
        pr = prs[0]
        check(pr["metadata"]["namespace"] == (pr_values["namespace"] or NAMESPACE),
              f"{p}: PrometheusRule namespace {pr['metadata']['namespace']}")
        check(all(pr["metadata"]["labels"].get(k) == v for k, v in pr_values["labels"].items()),
              f"{p}: PrometheusRule extra labels missing")
        check((pr["metadata"].get("annotations") or {}) == pr_values["annotations"], f"{p}: PrometheusRule annotations")
        want = copy.deepcopy(alerts["groups"])
        for group in want:
            for rule in group["rules"]:
                rule["labels"] = {**rule.get("labels", {}), **pr_values["additionalRuleLabels"]}
        check(pr["spec"] == {"groups": want},
              f"{p}: PrometheusRule groups differ from files/prometheus-rules.yaml with additionalRuleLabels")
    gd_values = values["metrics"]["grafanaDashboard"]
    cms = [o for o in by_kind(objs, "ConfigMap") if o["metadata"]["name"] == f"{FULLNAME}-dashboard"]
    if check(len(cms) == (1 if gd_values["enabled"] else 0), f"{p}: {len(cms)} dashboard ConfigMaps") and cms:
        cm = cms[0]
        check(cm["metadata"]["namespace"] == (gd_values["namespace"] or NAMESPACE),
              f"{p}: dashboard ConfigMap namespace {cm['metadata']['namespace']}")
        labels = cm["metadata"]["labels"]
        check(labels.get(gd_values["label"]) == gd_values["labelValue"],
              f"{p}: dashboard ConfigMap lacks the sidecar's label {gd_values['label']}={gd_values['labelValue']!r}")
        check(all(labels.get(k) == v for k, v in gd_values["labels"].items()), f"{p}: dashboard extra labels missing")
        check((cm["metadata"].get("annotations") or {}) == gd_values["annotations"], f"{p}: dashboard annotations")
        check(cm.get("data") == {"identity-settings-operator.json": dashboard.rstrip("\n")},
              f"{p}: dashboard ConfigMap data is not files/grafana-dashboard.json")
    pdbs = by_kind(objs, "PodDisruptionBudget")
    pdb_on = values["podDisruptionBudget"]["enabled"]
    if check(len(pdbs) == (1 if pdb_on else 0), f"{p}: {len(pdbs)} PodDisruptionBudgets") and pdb_on:
        want_key = "minAvailable" if values["podDisruptionBudget"]["minAvailable"] is not None else "maxUnavailable"
        check(pdbs[0]["spec"].get(want_key) == values["podDisruptionBudget"][want_key]
              and len(pdbs[0]["spec"]) == 2, f"{p}: PDB spec {pdbs[0]['spec']}")

    # NOTES
    check("kubectl get isp -A" in notes and "examples/" in notes and "kubectl logs" in notes
          and "clientSecret" in notes and "token" in notes and "tenancyName" in notes, f"{p}: NOTES lack next steps")
    check(("ignored" in notes) == bool(watch), f"{p}: NOTES and the ignored-namespaces reminder")
    check(("Leader election is on" in notes) == le_on, f"{p}: NOTES and leader election")


# ---------------------------------------------------------------------------------------------
# 4. kubernetes-validate

def validate(where: str, obj: dict, counts: dict) -> None:
    ref = f"{where}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as e:
            if obj.get("apiVersion") == "monitoring.coreos.com/v1" and obj.get("kind") in MONITORING_KINDS:
                # No built-in schema for the Prometheus Operator's CRDs: the render assertions
                # above check a ServiceMonitor's endpoint and selector against the metrics
                # Service, a PrometheusRule's groups against files/prometheus-rules.yaml (which
                # .ci/check-monitoring loads into promtool).
                counts["skipped"] += 1
                print(f"  skip {ref}: kubernetes-validate has no schema for monitoring.coreos.com/v1 "
                      "(a CRD); the render assertions check it instead")
            else:
                check(False, f"{ref}: {e.message} (Kubernetes {version})")
            return
        except kubernetes_validate.ValidationError as e:
            check(False, f"{ref}: {e.message} at {'/'.join(str(x) for x in e.path)} (Kubernetes {version})")
            return
    counts["validated"] += 1


# ---------------------------------------------------------------------------------------------

async def main() -> int:
    start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="check-chart-"))
    print(f"check-chart: helm-sdkpy {helm_sdkpy.__version__}, kubernetes-validate {kubernetes_validate.__version__} "
          f"(validating against Kubernetes {' and '.join(K8S_VERSIONS)}); renders in {workdir}")

    # 0. the files the chart shares with the repo
    rules = yaml.safe_load((CHART / "files" / "rbac-rules.yaml").read_text())
    check(isinstance(rules, dict) and set(rules) == {"watched", "cluster", "leaderElection"}
          and all(isinstance(rules[k], list) and rules[k] for k in rules),
          "files/rbac-rules.yaml must have exactly the non-empty lists `watched`, `cluster` and `leaderElection`")
    repo_crds = sorted((ROOT / "crds").glob("*.yaml"))
    check(bool(repo_crds), "no CRD in crds/")
    for crd in repo_crds:
        copy_ = CHART / "crds" / crd.name
        check(copy_.is_file() and copy_.read_bytes() == crd.read_bytes(),
              f"{copy_.relative_to(ROOT)} must be a byte-identical copy of crds/{crd.name}")
    alerts = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    check(isinstance(alerts, dict) and list(alerts) == ["groups"] and all(
        g.get("rules") and all(r.get("alert") and r.get("expr") for r in g["rules"]) for g in alerts["groups"]),
          "files/prometheus-rules.yaml must be a rules file of alerting rules (groups of rules with alert and expr)")
    dashboard = (CHART / "files" / "grafana-dashboard.json").read_text()
    try:
        board = json.loads(dashboard)
        check(bool(board.get("uid")) and bool(board.get("panels")), "files/grafana-dashboard.json: no uid or panels")
    except ValueError as e:
        check(False, f"files/grafana-dashboard.json does not parse: {e}")
    extra = {p.name for p in (CHART / "crds").glob("*")} - {p.name for p in repo_crds}
    check(not extra, f"chart crds/ has files that crds/ lacks: {sorted(extra)}")

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    scenarios = [("defaults", {})]
    for f in sorted((CHART / "ci").glob("*.yaml")):
        scenarios.append((f.stem, yaml.safe_load(f.read_text()) or {}))
    check(len(scenarios) >= 4, "expected at least three ci/*.yaml values files")

    # 1. lint
    print(f"== lint ({len(scenarios)} value sets)")
    for name, values in scenarios:
        await lint(name, values, workdir)

    api = FakeKubeAPI()
    counts = {"validated": 0, "skipped": 0, "objects": 0}

    # 2-4. render, assert, validate
    print(f"== render, assert and validate ({len(scenarios)} value sets)")
    for name, values in scenarios:
        try:
            rel = await render(api, values)
        except helm_sdkpy.HelmError as e:
            check(False, f"render[{name}]: {e}")
            continue
        manifest = rel.get("manifest") or ""
        notes = (rel.get("info") or {}).get("notes") or ""
        out = workdir / "renders" / name
        out.mkdir(parents=True)
        (out / "manifest.yaml").write_text(manifest)
        (out / "NOTES.txt").write_text(notes)
        objs = [o for o in yaml.safe_load_all(manifest) if o]
        counts["objects"] += len(objs)
        kinds = sorted(f"{o['kind']}" + (f"@{o['metadata'].get('namespace')}" if o["kind"] in ("Role", "RoleBinding")
                                         else "") for o in objs)
        print(f"  {name}: {len(objs)} objects: {', '.join(kinds)}")
        crd_posted = any(k[1] == "customresourcedefinitions" and v for k, v in api.objects.items())
        check(crd_posted, f"render[{name}]: Helm did not install the chart's CRD")
        assert_render(name, merge(defaults, values), objs, notes, rules, alerts, dashboard)
        for o in objs:
            validate(f"render[{name}]", o, counts)

    print("== CRD files")
    for f in repo_crds + sorted((CHART / "crds").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
        check(bool(docs) and all(d.get("kind") == "CustomResourceDefinition" for d in docs), f"{f}: not CRDs")
        before = len(failures)
        for d in docs:
            validate(str(f.relative_to(ROOT)), d, counts)
        if len(failures) == before:
            print(f"  {f.relative_to(ROOT)}: {len(docs)} CustomResourceDefinition(s) valid")

    # 5. bad values
    print(f"== bad values ({len(BAD_VALUES)} sets must be refused)")
    refused = 0
    for values, needle in BAD_VALUES:
        try:
            await render(api, values)
            check(False, f"bad values {values} were accepted")
        except helm_sdkpy.HelmError as e:
            msg = str(e)
            if check(needle in msg, f"bad values {values} refused without naming {needle}: {msg}"):
                refused += 1
                detail = next((ln.strip() for ln in msg.splitlines() if needle in ln), msg)
                print(f"  refused {values}: {detail[:150]}")

    api.shutdown()
    took = time.monotonic() - start
    if failures:
        print(f"\ncheck-chart: FAILED, {len(failures)} problem(s):", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        print(f"(renders kept in {workdir})", file=sys.stderr)
        return 1
    shutil.rmtree(workdir / "lint", ignore_errors=True)  # keep only the renders
    print(f"\ncheck-chart: OK in {took:.1f}s: lint clean for {len(scenarios)} value sets; {len(scenarios)} renders "
          f"({counts['objects']} objects) asserted; {counts['validated']} objects and CRDs valid against Kubernetes "
          f"{' and '.join(K8S_VERSIONS)} (strict), {counts['skipped']} ServiceMonitor(s)/PrometheusRule(s) shape-checked only; {refused} bad value sets "
          f"refused; {passed} checks in all.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
