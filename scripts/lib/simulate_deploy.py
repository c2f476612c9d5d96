"""Runs the deployments' own commands for real, without Docker or a cluster.

Called by scripts/validate-deploy inside a private network namespace (`unshare -n`), so the
ports the manifests name (8080, 9901, 8443, 6379, ...) are free and nothing leaves loopback.
Processes run as uid/gid 10001, the image's user. What is taken verbatim from the files:
the authproxy containers' environment, arguments and Secret volume mount, the image's
ENV and HEALTHCHECK script, the compose services' commands, entrypoints and environment. What
is substituted: the upstream (the `authproxy dev` sandbox and its CA), container paths (mapped
into a temporary directory), and the host name `redis` (127.0.0.1).

    python simulate_deploy.py REPO AUTHPROXY_BINARY pod deploy/kubernetes/deployment.yaml
    python simulate_deploy.py REPO AUTHPROXY_BINARY compose deploy/compose/compose.yaml
"""

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

repo = Path(sys.argv[1])
binary = Path(sys.argv[2]).resolve()
mode = sys.argv[3]
target = repo / sys.argv[4]
UID = GID = 10001
work = Path(tempfile.mkdtemp(prefix="authproxy-simulate-"))
os.chmod(work, 0o755)
children = []


def log(message):
    print(f"  {message}", flush=True)


def fail(message):
    print(f"simulate: FAIL: {message}", file=sys.stderr, flush=True)
    for path in sorted(work.glob("*.log")):
        print(f"--- {path.name}", file=sys.stderr)
        print(path.read_text()[-3000:], file=sys.stderr)
    stop_all()
    sys.exit(1)


def stop_all():
    for process in children:
        if process.poll() is None:
            process.terminate()
    for process in children:
        try:
            process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            process.kill()
    shutil.rmtree(work, ignore_errors=True)


def as_user(argv):
    """argv run as the image's user, with the pod's fsGroup as supplementary group."""
    return ["setpriv", f"--reuid={UID}", f"--regid={GID}", f"--groups={GID}", "--inh-caps=-all", "--"] + argv


def start(name, argv, env, user=True):
    path_env = f"{work / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    full_env = {"PATH": path_env, "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    full_env.update(env)
    logfile = open(work / f"{name}.log", "w")
    process = subprocess.Popen(as_user(argv) if user else argv, env=full_env, stdout=logfile, stderr=subprocess.STDOUT)
    children.append(process)
    return process


def http(url, data=None, timeout=5):
    request = urllib.request.Request(url, data=data)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return None, b""


def wait_for(what, check, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    fail(f"timed out waiting for {what}")


def own(path, mode_bits=0o755):
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, UID, GID)
    os.chmod(path, mode_bits)


def dockerfile_env():
    """The runtime stage's ENV, as the image sets it."""
    text = re.sub(r"\\\n", " ", (repo / "Dockerfile").read_text())
    stage = text.split("\nFROM ")[-1]
    env = {}
    for line in stage.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", line)))
    return env


def healthy(env):
    """The image's HEALTHCHECK script, with the container's environment."""
    full_env = {"PATH": "/usr/bin:/bin"}
    full_env.update(env)
    result = subprocess.run(as_user(["bash", str(repo / "deploy/docker/healthcheck")]), env=full_env, capture_output=True)
    return result.returncode == 0


# The binary as `authproxy` on the PATH, as in the image.
own(work / "bin")
shutil.copy2(binary, work / "bin/authproxy")
os.chmod(work / "bin/authproxy", 0o755)


def start_sandbox(listen_args, tmpdir, name="sandbox", env=None):
    """`authproxy dev`; returns its sandbox URL and CA path."""
    own(tmpdir, 0o1777)
    process_env = dict(dockerfile_env())
    process_env.update(env or {})
    process_env["TMPDIR"] = str(tmpdir)
    start(name, ["authproxy", "dev"] + listen_args, process_env)

    def printed():
        text = (work / f"{name}.log").read_text()
        return re.search(r"sandbox API at (https://\S+) \(throw-away CA (\S+)\)", text)

    wait_for("the sandbox to start", printed)
    match = printed()
    return match.group(1), match.group(2)


def rollout_secret(secret_dir, files, generation):
    """Writes a Secret volume as the kubelet does: timestamped dir, ..data symlink, 0440 root:fsGroup."""
    secret_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(secret_dir, 0o755)
    data = secret_dir / f"..{generation}"
    data.mkdir()
    for name, content in files.items():
        path = data / name
        path.write_bytes(content)
        os.chown(path, 0, GID)
        os.chmod(path, 0o440)  # defaultMode 0400, widened by fsGroup (kubernetes#57923)
    os.chmod(data, 0o2755)
    link = secret_dir / "..data_tmp"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(data.name)
    os.replace(link, secret_dir / "..data")
    for name in files:
        visible = secret_dir / name
        if not visible.is_symlink():
            visible.symlink_to(f"..data/{name}")


def metric(admin, name):
    status, body = http(f"http://127.0.0.1:{admin}/metrics")
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return None


def simulate_pod():
    documents = [d for d in yaml.safe_load_all(target.read_text()) if d and d.get("kind") == "Deployment"]
    spec = documents[0]["spec"]["template"]["spec"]
    init = {c["name"]: c for c in spec.get("initContainers", [])}
    app = spec["containers"][0]
    proxy = init["authproxy"]
    env = {e["name"]: e["value"] for e in proxy["env"] if "value" in e}
    credentials = env["AUTHPROXY_CREDENTIALS"]
    encrypted = credentials.startswith("encrypted-file:")
    mounts = {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]}
    secret_volume = next(v for v in spec["volumes"] if "secret" in v)
    secret_mount = Path(mounts[secret_volume["name"]])
    if secret_volume["secret"].get("defaultMode") != 0o440:
        fail("the Secret volume's defaultMode is not 0440")

    sandbox_url, ca = start_sandbox(["--sandbox-listen", "127.0.0.1:18443", "--listen", "127.0.0.1:18080",
                                     "--admin-listen", "127.0.0.1:19901", "--access-log", "/dev/null"], work / "sandbox-tmp")
    log(f"sandbox API at {sandbox_url}")

    key = base64.b64encode(secrets.token_bytes(32)).decode()

    rotated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))

    def secret_files(username, password):
        document = json.dumps({"username": username, "password": password, "rotated_at": rotated_at}).encode()
        if not encrypted:
            return {"credentials.json": document}
        sealed = subprocess.run([str(binary), "seal"], input=document, env={"ENCRYPTION_KEY": key},
                                check=True, capture_output=True).stdout
        return {"credentials.sealed": sealed}

    secret_dir = work / "secret"
    rollout_secret(secret_dir, secret_files("demo", "demo-password"), "2026_01_01_00_00_00.1")

    # What the Secret volume gives the pod (0440 root:fsGroup through ..data): authproxy reads it.
    secret_file = next(p for p in secret_dir.iterdir() if not p.name.startswith(".."))
    direct = subprocess.run(
        as_user([str(work / "bin/authproxy"), "check-credentials", "--upstream", sandbox_url, "--ca-file", ca,
                 "--credentials", f"{credentials.split(':', 1)[0]}:{secret_file}"]),
        env={"ENCRYPTION_KEY": key}, capture_output=True, text=True)
    if direct.returncode != 0:
        fail(f"authproxy refuses the Secret's own file (0440 root:{GID}): {direct.stderr.strip()[:200]}")
    log(f"the Secret's own file (0440 root:{GID}, through ..data) is accepted as mounted")

    # authproxy, with the manifest's environment and arguments.
    proxy_env = dict(dockerfile_env())
    proxy_env.update(env)
    proxy_env["AUTHPROXY_UPSTREAM"] = sandbox_url
    proxy_env["AUTHPROXY_CA_FILE"] = ca
    proxy_env["AUTHPROXY_CREDENTIALS"] = credentials.replace(str(secret_mount), str(secret_dir))
    if encrypted:
        proxy_env["ENCRYPTION_KEY"] = key
    start("authproxy", ["authproxy"] + proxy["args"], proxy_env)
    admin = int(env["AUTHPROXY_ADMIN_LISTEN"].rsplit(":", 1)[1])
    listen = env["AUTHPROXY_LISTEN"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = proxy[probe]["httpGet"]["path"]
        wait_for(f"{probe} GET {path} on port {admin}", lambda: http(f"http://127.0.0.1:{admin}{path}")[0] == 200)
        log(f"{probe}: GET {path} on :{admin} answers 200")
    if not healthy(proxy_env):
        fail("the image's HEALTHCHECK fails for this container")

    # The app's call, to the base URL the manifest gives it.
    base = next(e["value"] for e in app["env"] if e["name"] == "API_BASE_URL")
    if base != f"http://{listen}":
        fail(f"the app's API_BASE_URL {base} is not the proxy's listener {listen}")
    status, body = http(f"{base}/api/v1/products?limit=1")
    if status != 200:
        fail(f"the app's request through the proxy answered {status}: {body[:200]!r}")
    log(f"the app's GET {base}/api/v1/products answers 200")

    # Every metric the sample alerting rules use is one the proxy exposes.
    _, exposition = http(f"http://127.0.0.1:{admin}/metrics")
    exposed = set(re.findall(r"^(authproxy_[a-z0-9_]+)", exposition.decode(), flags=re.M))
    rules = (repo / "deploy/prometheus/authproxy-alerts.yaml").read_text()
    missing = set(re.findall(r"\b(authproxy_[a-z0-9_]+)", rules)) - exposed
    if missing:
        fail(f"deploy/prometheus/authproxy-alerts.yaml uses metrics /metrics does not expose: {sorted(missing)}")
    log(f"/metrics exposes every metric the alerting rules use ({len(exposed)} series names)")

    # Rotation: a new Secret (same client, new password); nothing restarts.
    rollout_secret(secret_dir, secret_files("demo-rotated", "demo-rotated-password"), "2026_04_01_00_00_00.2")
    wait_for("the rotation (authproxy_rotations_total{result=\"success\"})",
             lambda: (metric(admin, 'authproxy_rotations_total{result="success"}') or 0) >= 1, seconds=30)
    status, _ = http(f"{base}/api/v1/products?limit=1")
    if status != 200 or http(f"http://127.0.0.1:{admin}/readyz")[0] != 200:
        fail("not ready after the rotation")
    log("rotation: the kubelet-style ..data swap reached the proxy; it logged in and switched, still ready")


def interpolate(value, env):
    """Compose's interpolation: ${NAME...} from env, then $$ to $."""
    def replace(match):
        return env.get(match.group(1), "")
    value = re.sub(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}", replace, str(value))
    return value.replace("$$", "$")


def simulate_compose():
    compose = yaml.safe_load(target.read_text())
    services = compose["services"]
    host_env = {"ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    image_env = dockerfile_env()
    volumes = {}  # named volume -> host directory
    owners = {}   # service -> network namespace owner

    def mapped(service, value):
        value = interpolate(value, host_env)
        for spec in services[service].get("volumes", []):
            volume, path = spec.split(":")[:2]
            value = value.replace(path, str(volumes.setdefault(volume, work / f"volume-{volume}")))
        return value.replace("redis://redis:", "redis://127.0.0.1:")

    redis = None
    for name, service in services.items():
        if str(service.get("image", "")).startswith("redis"):
            redis = name
            command = [interpolate(c, host_env) for c in service["command"]]
            start(name, command + ["--bind", "127.0.0.1", "--port", "6379"], {}, user=True)
            wait_for("redis", lambda: subprocess.run(["redis-cli", "ping"], capture_output=True).stdout.strip() == b"PONG")
            log(f"{name}: {' '.join(command)}")

    admins = []
    for name, service in services.items():
        if not str(service.get("image", "")).startswith("authproxy"):
            continue
        env = dict(image_env)
        env.update({k: mapped(name, v) for k, v in (service.get("environment") or {}).items()})
        tmp = None
        for spec in service.get("volumes", []):
            volume, path = spec.split(":")[:2]
            own(volumes.setdefault(volume, work / f"volume-{volume}"), 0o1777)
            if path == "/tmp":
                tmp = volumes[volume]
        if tmp is None:  # tmpfs: /tmp
            tmp = work / f"{name}-tmp"
            own(tmp, 0o1777)
        env["TMPDIR"] = str(tmp)
        entrypoint = service.get("entrypoint") or ["authproxy"]
        command = service.get("command") or ["serve"]
        argv = [mapped(name, a) for a in (entrypoint + ([] if service.get("entrypoint") else command))]
        start(name, argv, env)
        wait_for(f"{name}'s healthcheck (the image's HEALTHCHECK)", lambda: healthy(env), seconds=30)
        admin = int(env["AUTHPROXY_ADMIN_LISTEN"].rsplit(":", 1)[1])
        wait_for(f"{name} to be ready", lambda: http(f"http://127.0.0.1:{admin}/readyz")[0] == 200)
        log(f"{name}: {' '.join(argv)[:110]} -> healthy and ready")
        admins.append((name, env["AUTHPROXY_LISTEN"], admin))

    # The client's calls.
    client = services.get("client", {})
    script = "\n".join(client.get("command", []))
    ports = sorted(set(re.findall(r"\b(8\d\d\d)\b", interpolate(script, host_env))))
    tokens = set()
    for port in ports:
        status, body = http(f"http://127.0.0.1:{port}/api/v1/products?limit=1")
        if status != 200:
            fail(f"the client's request via 127.0.0.1:{port} answered {status}: {body[:200]!r}")
        status, body = http(f"http://127.0.0.1:{port}/api/v1/echo")
        headers = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
        tokens.add(hashlib.sha256(headers["authorization"].encode()).hexdigest())
        log(f"client: GET via 127.0.0.1:{port} answers 200")
    if redis:
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", "authproxy:*"], capture_output=True, text=True).stdout.split()
        if len(keys) != 1:
            fail(f"expected one shared token entry in Redis, found {keys}")
        if len(tokens) != 1:
            fail("the replicas send different tokens: the token pair is not shared")
        log("the replicas share one token pair (one key in Redis, the same bearer token upstream)")


try:
    if mode == "pod":
        simulate_pod()
    elif mode == "compose":
        simulate_compose()
    else:
        fail(f"unknown mode {mode}")
finally:
    stop_all()
print(f"simulate {mode} {target.relative_to(repo)}: ok", flush=True)
