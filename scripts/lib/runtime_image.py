"""The Dockerfile's runtime stage, carried out in a chroot instead of by a Docker engine.

    python3 runtime_image.py build ROOTFS BINARY REPO   # ROOTFS: a fresh `debootstrap --variant=minbase bookworm`
    python3 runtime_image.py test  ROOTFS               # inside `unshare --net`, loopback up

`build` reads the last stage of REPO/Dockerfile and applies it to ROOTFS: ARG defaults and ENV
become the environment of each RUN, which runs with /bin/sh -c in the chroot (as Docker runs
it); COPY --from=build takes BINARY (built as the build stage builds it), other COPYs take the
repository's files. It records the image's ENV, USER, ENTRYPOINT, CMD, EXPOSE and HEALTHCHECK in
ROOTFS/.image.json. `test` then runs the image as Docker would: the entrypoint as USER with the
image's environment, and the HEALTHCHECK command.
debian:bookworm-slim is Debian's minbase package set (debuerreotype), which is what debootstrap
--variant=minbase installs; the slim image only deletes documentation on top.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def fail(message):
    print(f"check-runtime-image: FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def instructions(dockerfile):
    """The last stage's instructions as (KEYWORD, text), continuation lines joined."""
    lines = [l for l in dockerfile.read_text().splitlines() if not l.strip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    stages, current = [], None
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if not words:
            continue
        keyword = words[0].upper()
        rest = words[1] if len(words) > 1 else ""
        if keyword == "FROM":
            current = [("FROM", rest)]
            stages.append(current)
        elif current is not None:
            current.append((keyword, rest))
    return stages[-1], text


def json_or_shell(rest):
    rest = rest.strip()
    if rest.startswith("["):
        return json.loads(rest)
    return ["/bin/sh", "-c", rest]


def substitute(value, env):
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), value)


def build(root, binary, repo):
    stage, text = instructions(repo / "Dockerfile")
    global_args = dict(re.findall(r"^ARG ([A-Z_]+)=(\S+)", text.split("\nFROM ")[0], flags=re.M))
    base = substitute(stage[0][1].split(" AS ")[0].strip(), global_args)
    if base != "debian:bookworm-slim":
        fail(f"the runtime stage starts FROM {base}; this check knows debian:bookworm-slim only")
    args, env, image = {}, {}, {"Env": {}, "User": "0", "Entrypoint": [], "Cmd": [], "Expose": [], "Healthcheck": None}
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    for keyword, rest in stage[1:]:
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif keyword == "ENV":
            for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", rest):
                env[name] = value
        elif keyword == "RUN":
            run_env = {"PATH": DEFAULT_PATH, "HOME": "/root"}
            run_env.update(args)
            run_env.update(env)
            result = subprocess.run(["chroot", str(root), "/bin/sh", "-c", rest], env=run_env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if result.returncode != 0:
                print(result.stdout[-4000:])
                fail(f"RUN {rest[:100]}... exited {result.returncode}")
            print(f"RUN {rest[:90]}...: ok", flush=True)
        elif keyword == "COPY":
            words = shlex.split(rest)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            source, destination = paths[0], paths[1]
            origin = binary if any(f.startswith("--from=") for f in flags) else repo / source
            if not origin.is_file():
                fail(f"COPY {source}: not in the build context ({origin})")
            target = root / destination.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
            os.chown(target, 0, 0)
            print(f"COPY {source} {destination}", flush=True)
        elif keyword == "USER":
            image["User"] = rest.strip()
        elif keyword == "ENTRYPOINT":
            image["Entrypoint"] = json_or_shell(rest)
        elif keyword == "CMD":
            image["Cmd"] = json_or_shell(rest)
        elif keyword == "EXPOSE":
            image["Expose"] = rest.split()
        elif keyword == "HEALTHCHECK":
            options = dict(re.findall(r"--([a-z-]+)=(\S+)", rest))
            command = json_or_shell(rest.split(" CMD ", 1)[1])
            image["Healthcheck"] = {"Options": options, "Test": command}
    image["Env"] = env
    (root / ".image.json").write_text(json.dumps(image, indent=2))
    os.remove(root / "etc/resolv.conf")
    installed = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${Package} ${Version}\\n",
         "libevent-2.1-7", "libevent-openssl-2.1-7", "libssl3", "libhiredis0.14", "ca-certificates"],
        capture_output=True, text=True, check=True).stdout
    print("installed in the image: " + ", ".join(installed.split("\n")[:-1]))
    print(f"image config: USER {image['User']}, ENTRYPOINT {image['Entrypoint']}, CMD {image['Cmd']}, "
          f"EXPOSE {' '.join(image['Expose'])}, ENV {image['Env']}")


def http(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return None, b""


def test(root):
    image = json.loads((root / ".image.json").read_text())
    uid, _, gid = image["User"].partition(":")
    if not uid.isdigit() or uid == "0":
        fail(f"USER {image['User']}: not a numeric non-root user")
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": "authproxy-test"}
    env.update(image["Env"])
    base = ["chroot", f"--userspec={uid}:{gid or uid}", str(root)]

    def run(argv, **kwargs):
        return subprocess.run(base + argv, env=env, capture_output=True, text=True, **kwargs)

    ldd = subprocess.run(["chroot", str(root), "ldd", "/usr/local/bin/authproxy"], capture_output=True, text=True)
    if ldd.returncode != 0 or "not found" in ldd.stdout:
        fail(f"ldd in the image:\n{ldd.stdout}{ldd.stderr}")
    print(f"ldd in the image: {len(ldd.stdout.splitlines())} libraries, none missing")
    # The db: source's clients are dlopen'ed by soname (Sources/CShims/db_shims.c), not linked.
    cache = subprocess.run(["chroot", str(root), "ldconfig", "-p"], capture_output=True, text=True).stdout
    for soname in ("libpq.so.5", "libmariadb.so.3"):
        if f"{soname} " not in cache:
            fail(f"{soname} (dlopen'ed by the db: source) is not in the image's linker cache")
    print("dlopen'ed by db:: libpq.so.5 and libmariadb.so.3 present")
    if not (root / "etc/ssl/certs/ca-certificates.crt").is_file():
        fail("no /etc/ssl/certs/ca-certificates.crt: the system trust store is missing")

    version = run(image["Entrypoint"] + ["version"])
    if version.returncode != 0:
        fail(f"`docker run IMAGE version` failed: {version.stderr}")
    print(f"docker run IMAGE version: {version.stdout.strip()} (as uid {uid})")

    default = run(image["Entrypoint"] + image["Cmd"], timeout=20)
    if default.returncode != 64 or "--upstream" not in default.stderr:
        fail(f"`docker run IMAGE` without AUTHPROXY_UPSTREAM should exit 64 naming --upstream: {default.returncode} {default.stderr}")
    print(f"docker run IMAGE (no AUTHPROXY_UPSTREAM): exit 64, \"{default.stderr.strip().splitlines()[0]}\"")

    # `docker run IMAGE dev`: the sandbox and the proxy, with the image's ENV (proxy on
    # 127.0.0.1:8080, admin on 0.0.0.0:9901), then the HEALTHCHECK as Docker runs it.
    dev = subprocess.Popen(base + image["Entrypoint"] + ["dev"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        healthcheck = image["Healthcheck"]
        if not healthcheck:
            fail("no HEALTHCHECK")
        test_argv = healthcheck["Test"]
        deadline = time.time() + 20
        while True:
            result = run(test_argv, timeout=10)
            if result.returncode == 0:
                break
            if time.time() > deadline:
                fail(f"HEALTHCHECK {test_argv} never passed: {result.stderr}")
            time.sleep(0.5)
        print(f"HEALTHCHECK {' '.join(test_argv)}: healthy")
        listen = image["Env"].get("AUTHPROXY_LISTEN", "127.0.0.1:8080")
        status, body = http(f"http://{listen}/api/v1/products?limit=1")
        if status != 200:
            fail(f"GET through the image's proxy on {listen}: {status} {body[:200]!r}")
        print(f"GET http://{listen}/api/v1/products through `docker run IMAGE dev`: 200")
        for port in image["Expose"]:
            if not any(value.endswith(f":{port}") for value in image["Env"].values()):
                fail(f"EXPOSE {port} matches no listener in the image's ENV")
        print(f"EXPOSE {' '.join(image['Expose'])}: the image's listeners")
    finally:
        dev.terminate()
        try:
            dev.wait(timeout=25)
        except subprocess.TimeoutExpired:
            dev.kill()
    if dev.returncode != 0:
        fail(f"`docker stop` (SIGTERM) should end the proxy with exit 0, got {dev.returncode}")
    print("SIGTERM (docker stop): drained and exited 0")
    result = run(healthcheck["Test"], timeout=10)
    if result.returncode == 0:
        fail("HEALTHCHECK passes with the proxy stopped")
    print("HEALTHCHECK once stopped: unhealthy")


if sys.argv[1] == "build":
    build(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
elif sys.argv[1] == "test":
    test(Path(sys.argv[2]))
else:
    fail("usage: runtime_image.py build ROOTFS BINARY REPO | test ROOTFS")
