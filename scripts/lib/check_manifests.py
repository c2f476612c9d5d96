"""Checks of deploy/ that schemas cannot make: the hardening and wiring the docs promise.

Run by scripts/validate-deploy as: python check_manifests.py REPO AUTHPROXY_BINARY
Every AUTHPROXY_* variable a deployment sets must be one `authproxy serve --help` documents,
so a renamed flag breaks CI here instead of a deployment.
"""

import re
import subprocess
import sys
from pathlib import Path

import yaml

repo = Path(sys.argv[1])
binary = sys.argv[2]
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def known_variables():
    names = set()
    for command in ("serve", "dev", "check-credentials", "monitor"):
        out = subprocess.run(
            [binary, command, "--help"], env={"COLUMNS": "1000"}, check=True, capture_output=True, text=True
        ).stdout
        names.update(re.findall(r"env: (AUTHPROXY_[A-Z0-9_]+)", out))
    return names


VARIABLES = known_variables()
DRAIN_DEFAULT = 20


def seconds(value):
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", str(value))
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2)
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def check_variables(where, env):
    for name in env:
        if name.startswith("AUTHPROXY_") and name not in VARIABLES:
            problem(where, f"{name} is not a variable authproxy knows (see docs/configuration.md)")


def check_container_hardening(where, container, pod_security):
    security = container.get("securityContext") or {}
    if security.get("allowPrivilegeEscalation") is not False:
        problem(where, "allowPrivilegeEscalation must be false")
    if security.get("readOnlyRootFilesystem") is not True:
        problem(where, "readOnlyRootFilesystem must be true")
    if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
        problem(where, "runAsNonRoot must be true")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problem(where, "capabilities must drop ALL")
    seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        problem(where, "seccompProfile must be RuntimeDefault")
    resources = container.get("resources") or {}
    if "memory" not in (resources.get("requests") or {}) or "memory" not in (resources.get("limits") or {}):
        problem(where, "needs memory requests and limits")
    image = container.get("image", "")
    if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
        problem(where, f"image {image!r} needs a fixed tag")


def check_deployment(path, deployment):
    spec = deployment["spec"]["template"]["spec"]
    pod_security = spec.get("securityContext") or {}
    if spec.get("automountServiceAccountToken") is not False:
        problem(path, "automountServiceAccountToken should be false (the pod needs no API access)")
    containers = spec.get("containers", []) + spec.get("initContainers", [])
    for container in containers:
        check_container_hardening(f"{path}: container {container['name']}", container, pod_security)
    proxies = [c for c in containers if c.get("args", [None])[0] == "serve"]
    if len(proxies) != 1:
        problem(path, "expected exactly one authproxy container (args: [serve])")
        return
    proxy = proxies[0]
    where = f"{path}: container {proxy['name']}"
    env = {e["name"]: e.get("value") for e in proxy.get("env", [])}
    check_variables(where, env)
    if not str(env.get("AUTHPROXY_LISTEN", "")).startswith("127.0.0.1:"):
        problem(where, "AUTHPROXY_LISTEN must stay on loopback (127.0.0.1:…)")
    if not str(env.get("AUTHPROXY_ADMIN_LISTEN", "")).startswith("0.0.0.0:"):
        problem(where, "AUTHPROXY_ADMIN_LISTEN must bind 0.0.0.0 for the kubelet's probes")
    if "AUTHPROXY_WORKERS" not in env:
        problem(where, "set AUTHPROXY_WORKERS: the default is every core of the node")
    admin_port = int(str(env.get("AUTHPROXY_ADMIN_LISTEN", ":0")).rsplit(":", 1)[1])
    ports = {p.get("name"): p["containerPort"] for p in proxy.get("ports", [])}
    for probe, path_wanted in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        http = (proxy.get(probe) or {}).get("httpGet") or {}
        port = http.get("port")
        port = ports.get(port, port)
        if http.get("path") != path_wanted or port != admin_port:
            problem(where, f"{probe} must GET {path_wanted} on the admin port {admin_port}")
    drain = seconds(env.get("AUTHPROXY_DRAIN_TIMEOUT") or f"{DRAIN_DEFAULT}s")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if drain is None or grace <= drain:
        problem(path, f"terminationGracePeriodSeconds ({grace}) must exceed the drain timeout ({drain}s)")
    credentials = str(env.get("AUTHPROXY_CREDENTIALS", ""))
    if not re.match(r"(encrypted-)?file:/", credentials):
        problem(where, "credentials should come from a file (the Secret)")
    if credentials.startswith("encrypted-file:") and not any(
        e["name"] == "ENCRYPTION_KEY" and "secretKeyRef" in (e.get("valueFrom") or {}) for e in proxy.get("env", [])
    ):
        problem(where, "encrypted-file: needs ENCRYPTION_KEY from a Secret")
    # The Secret volume is read as mounted: root-owned, group fsGroup, 0440 (authproxy accepts
    # owner-only or root-owned group-readable files); no container copies it elsewhere.
    secret_volumes = [v for v in spec.get("volumes", []) if "secret" in v]
    for volume in secret_volumes:
        if volume["secret"].get("defaultMode") != 0o440:
            problem(path, f"volume {volume['name']}: defaultMode must be 0440 (with fsGroup)")
    if secret_volumes and "fsGroup" not in pod_security:
        problem(path, "the pod needs fsGroup so that authproxy's group can read the Secret volume")
    if any("emptyDir" in v for v in spec.get("volumes", [])):
        problem(path, "no emptyDir copy of the credentials: authproxy reads the Secret volume directly")
    mounts = {m["name"]: m["mountPath"] for m in proxy.get("volumeMounts", [])}
    credential_file = credentials.split(":", 1)[1] if ":" in credentials else ""
    if secret_volumes and not any(
        v["name"] in mounts and credential_file.startswith(mounts[v["name"]].rstrip("/") + "/") for v in secret_volumes
    ):
        problem(where, "AUTHPROXY_CREDENTIALS must name a file in the Secret volume authproxy mounts")
    for container in containers:
        if container.get("restartPolicy") == "Always" or container in spec.get("containers", []):
            continue
        problem(path, f"init container {container['name']} should be a native sidecar (restartPolicy: Always)")


def check_networkpolicy(path, policy):
    egress = policy["spec"].get("egress", [])
    if "Egress" not in policy["spec"].get("policyTypes", []):
        problem(path, "policyTypes must include Egress")
    dns = any(any(p.get("port") == 53 for p in rule.get("ports", [])) for rule in egress)
    api = any(any("ipBlock" in peer for peer in rule.get("to", [])) for rule in egress)
    if not (dns and api) or len(egress) != 2:
        problem(path, "egress must allow exactly the API (an ipBlock) and DNS (port 53)")


for path in sorted((repo / "deploy/kubernetes").glob("*.yaml")):
    for document in yaml.safe_load_all(path.read_text()):
        if not document:
            continue
        kind = document.get("kind")
        name = path.relative_to(repo)
        if kind == "Deployment":
            check_deployment(name, document)
        elif kind == "NetworkPolicy":
            check_networkpolicy(name, document)

# Compose: the variables the authproxy services set.
for path in sorted((repo / "deploy/compose").glob("*.yaml")):
    compose = yaml.safe_load(path.read_text())
    for service_name, service in compose["services"].items():
        if not str(service.get("image", "")).startswith("authproxy"):
            continue
        env = service.get("environment") or {}
        check_variables(f"{path.relative_to(repo)}: service {service_name}", env)
        if service.get("read_only") is not True or "ALL" not in (service.get("cap_drop") or []):
            problem(f"{path.relative_to(repo)}: service {service_name}", "needs read_only: true and cap_drop: [ALL]")

# systemd: the example environment file.
env_example = repo / "deploy/systemd/authproxy.env.example"
names = re.findall(r"^#?\s*(AUTHPROXY_[A-Z0-9_]+)=", env_example.read_text(), flags=re.M)
check_variables(str(env_example.relative_to(repo)), names)
unit = (repo / "deploy/systemd/authproxy.service").read_text()
stop = seconds(re.search(r"^TimeoutStopSec=(\S+)", unit, flags=re.M).group(1))
if stop is None or stop <= DRAIN_DEFAULT:
    problem("deploy/systemd/authproxy.service", f"TimeoutStopSec must exceed the drain timeout ({DRAIN_DEFAULT}s)")

# The Dockerfile's environment.
dockerfile = (repo / "Dockerfile").read_text()
check_variables("Dockerfile", re.findall(r"\b(AUTHPROXY_[A-Z0-9_]+)=", dockerfile))

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"manifests: ok ({len(VARIABLES)} AUTHPROXY_* variables known to the binary)")
