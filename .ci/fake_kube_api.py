"""A tiny in-memory stand-in for the Kubernetes API server, for rendering the chart with Helm.

helm-sdkpy exposes Helm's install action but no client-only dry run (`helm template`): the install
checks that a cluster is reachable, reads discovery, creates the CRDs and the release's objects.
This server answers just enough of that on 127.0.0.1 (discovery, get/list/create/update/delete of
any listed resource, CRDs reported Established at once), so Helm's own engine renders the chart
exactly as `helm install` would and hands back the manifest. It validates nothing: the rendered
objects are validated afterwards with kubernetes-validate.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

SERVER_VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0", "platform": "linux/amd64"}

# (group, version) -> [(plural, kind, namespaced)]: the API the chart and Helm's storage use.
RESOURCES: dict[tuple[str, str], list[tuple[str, str, bool]]] = {
    ("", "v1"): [
        ("namespaces", "Namespace", False),
        ("secrets", "Secret", True),
        ("configmaps", "ConfigMap", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("pods", "Pod", True),
        ("events", "Event", True),
    ],
    ("apps", "v1"): [("deployments", "Deployment", True)],
    ("rbac.authorization.k8s.io", "v1"): [
        ("roles", "Role", True),
        ("rolebindings", "RoleBinding", True),
        ("clusterroles", "ClusterRole", False),
        ("clusterrolebindings", "ClusterRoleBinding", False),
    ],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    ("coordination.k8s.io", "v1"): [("leases", "Lease", True)],
    ("events.k8s.io", "v1"): [("events", "Event", True)],
    ("apiextensions.k8s.io", "v1"): [("customresourcedefinitions", "CustomResourceDefinition", False)],
    ("monitoring.coreos.com", "v1"): [("servicemonitors", "ServiceMonitor", True),
                                     ("prometheusrules", "PrometheusRule", True)],
    ("identitysettings.dev", "v1alpha1"): [("identitysettingpolicies", "IdentitySettingPolicy", True)],
}

_PATH = re.compile(r"/api/(v1)(/.*)?|/apis/([^/]+)/([^/]+)(/.*)?")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FakeKubeAPI"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason, "code": code})

    def _body(self, kind: str, api_version: str) -> dict:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "json" in (self.headers.get("Content-Type") or "json"):
            return json.loads(raw or b"{}")
        # Protobuf (Helm's release Secrets): kept opaque, answered as a bare object of the kind.
        return {"kind": kind, "apiVersion": api_version, "metadata": {"name": "opaque-" + uuid.uuid4().hex}}

    def _route(self) -> None:
        path = urlparse(self.path).path.rstrip("/")
        self.server.requests.append((self.command, path))
        if path == "/version":
            return self._send(200, SERVER_VERSION)
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            groups: dict[str, list[dict]] = {}
            for g, v in RESOURCES:
                if g:
                    groups.setdefault(g, []).append({"groupVersion": f"{g}/{v}", "version": v})
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": vs, "preferredVersion": vs[0]} for g, vs in groups.items()]})
        m = _PATH.fullmatch(path)
        if not m:
            return self._status(404, "NotFound", f"the server could not find the requested resource ({path})")
        g, v, rest = ("", "v1", m.group(2) or "") if m.group(1) else (m.group(3), m.group(4), m.group(5) or "")
        resources = RESOURCES.get((g, v))
        if resources is None:
            return self._status(404, "NotFound", f"the server could not find the requested resource ({path})")
        gv = f"{g}/{v}" if g else v
        if not rest:
            return self._send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
                {"name": r, "singularName": k.lower(), "namespaced": ns, "kind": k,
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                for r, k, ns in resources]})
        parts = rest.strip("/").split("/")
        namespace = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        resource, name = parts[0], (parts[1] if len(parts) > 1 else None)
        kind = next((k for r, k, _ in resources if r == resource), None)
        if kind is None:
            return self._status(404, "NotFound", f"the server could not find the requested resource ({path})")
        with self.server.lock:
            coll = self.server.objects.setdefault((gv, resource, namespace), {})
            if self.command == "GET":
                if name is None:
                    return self._send(200, {"kind": kind + "List", "apiVersion": gv,
                                            "metadata": {"resourceVersion": str(next(self.server.rv))},
                                            "items": list(coll.values())})
                if name in coll:
                    return self._send(200, coll[name])
                return self._status(404, "NotFound", f'{resource} "{name}" not found')
            if self.command in ("POST", "PUT", "PATCH"):
                obj = self._body(kind, gv)
                if self.command == "PATCH":
                    if name not in coll:
                        return self._status(404, "NotFound", f'{resource} "{name}" not found')
                    obj = {**coll[name], **obj}
                meta = obj.setdefault("metadata", {})
                name = name or meta.get("name")
                if self.command == "POST" and name in coll:
                    return self._status(409, "AlreadyExists", f'{resource} "{name}" already exists')
                if namespace:
                    meta["namespace"] = namespace
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", "2025-01-01T00:00:00Z")
                meta["resourceVersion"] = str(next(self.server.rv))
                if kind == "CustomResourceDefinition":
                    obj["status"] = {
                        "conditions": [{"type": "Established", "status": "True"},
                                       {"type": "NamesAccepted", "status": "True"}],
                        "acceptedNames": obj.get("spec", {}).get("names", {}),
                    }
                coll[name] = obj
                return self._send(201 if self.command == "POST" else 200, obj)
            if self.command == "DELETE":
                if coll.pop(name, None) is not None:
                    return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
                return self._status(404, "NotFound", f'{resource} "{name}" not found')
        return self._status(405, "MethodNotAllowed", f"{self.command} is not supported")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _route


class FakeKubeAPI(ThreadingHTTPServer):
    """The fake API server on 127.0.0.1 and a free port; `reset()` forgets every object."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.rv = itertools.count(1)
        self.objects: dict = {}
        self.requests: list[tuple[str, str]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reset(self) -> None:
        with self.lock:
            self.objects.clear()
            self.requests.clear()

    def kubeconfig(self, namespace: str) -> str:
        return (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: fake\n  cluster:\n    server: {self.url}\n"
            f"contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\n"
            "current-context: fake\n"
            "users:\n- name: fake\n  user:\n    token: fake\n"
        )
