# syntax=docker/dockerfile:1
#
# authproxy: build with the official Swift toolchain image (Debian 12 bookworm), run on
# debian:bookworm-slim with only the shared libraries the binary links, as a non-root user.
#
#   docker build -t authproxy .
#   docker run --rm authproxy version
#
# The Swift runtime is linked statically (--static-swift-stdlib), so the runtime stage needs
# no Swift toolchain: `scripts/check-dockerfile` builds the binary the same way, maps every
# library `ldd` reports to its Debian package and fails when the runtime stage below does not
# install it (and lints this file with hadolint). The build context is allow-listed in
# .dockerignore: a new top-level source folder named in Package.swift must be added there.

ARG SWIFT_IMAGE=swift:6.3.1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build

# The -dev packages of the system-library targets in Package.swift, and what
# scripts/build-libcurl builds with (dpkg-dev for Debian's source, make; the C compiler is the
# toolchain's clang).
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      libcurl4-openssl-dev libevent-dev libhiredis-dev libssl-dev libpq-dev libmariadb-dev pkg-config dpkg-dev make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The static, HTTP(S)-only libcurl the binary links, from Debian's source of the
# libcurl4-openssl-dev above (with Debian's security patches): a libcurl fix reaches the image
# when it is rebuilt, as every library's does. Its own layer, kept while only the sources change.
COPY scripts/build-libcurl scripts/
RUN scripts/build-libcurl

# Dependencies first: this layer stays cached while only the sources change.
COPY Package.swift ./
RUN swift package resolve
# Tests/ too: SwiftPM refuses a package whose test targets have no folder.
COPY Sources ./Sources
COPY Tests ./Tests
# The tuned release link (static runtimes, the libcurl above, lld, the function order).
COPY scripts/build-release scripts/
COPY scripts/release ./scripts/release
RUN scripts/build-release \
 && install -D -m 0755 "$(scripts/build-release --show-bin-path)/authproxy" /out/authproxy \
 && /out/authproxy version

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

# Debian 12's libevent security update (2.1.12-stable-8+deb12u1) carries evhttp's
# request-smuggling fixes: `apt-get update` first, and refuse to build with anything older
# (a stale mirror would otherwise give the vulnerable 2.1.12-stable-8).
ARG LIBEVENT_MIN_VERSION=2.1.12-stable-8+deb12u1

# Exactly the libraries `ldd authproxy` needs (their own dependencies come with them):
#   libevent-2.1-7 libevent-openssl-2.1-7 libhiredis0.14 libssl3 (libcurl and the C++ runtime
# are linked in); libpq5 and libmariadb3, the db: credential source's clients, which the binary
# dlopens (libpq.so.5, libmariadb.so.3) only when a db: source is used, so ldd does not list
# them; and ca-certificates for verifying the API's certificate with the system store.
# Versions are not pinned: Debian 12 security updates replace them, and a pin would break the
# build the day one lands; the libevent floor above is the one that matters.
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      ca-certificates \
      libevent-2.1-7 \
      libevent-openssl-2.1-7 \
      libhiredis0.14 \
      libmariadb3 \
      libpq5 \
      libssl3 \
 && libevent_version="$(dpkg-query -W -f='${Version}' libevent-2.1-7)" \
 && if dpkg --compare-versions "$libevent_version" lt "$LIBEVENT_MIN_VERSION"; then \
      echo "libevent $libevent_version is older than $LIBEVENT_MIN_VERSION (evhttp request smuggling): is the mirror stale?" >&2; \
      exit 1; \
    fi \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 authproxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin authproxy

COPY --from=build /out/authproxy /usr/local/bin/authproxy
COPY deploy/docker/healthcheck /usr/local/bin/authproxy-healthcheck

# The proxy listens on loopback: in a pod the app shares the network namespace and reaches it
# at http://127.0.0.1:8080, and nothing outside the pod can act with the integration's identity.
# To publish it from a container of its own, set AUTHPROXY_LISTEN=0.0.0.0:8080 AND
# AUTHPROXY_ALLOW_CIDR to the clients' network.
# The admin listener binds all interfaces so that kubelet probes, `docker run -p 9901:9901` and
# Prometheus reach it: it serves only /healthz, /readyz and /metrics and never proxies.
ENV AUTHPROXY_LISTEN=127.0.0.1:8080 \
    AUTHPROXY_ADMIN_LISTEN=0.0.0.0:9901
EXPOSE 8080 9901

# Numeric, so that Kubernetes' runAsNonRoot can verify it without an /etc/passwd lookup.
USER 10001:10001

HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/authproxy-healthcheck"]

# SIGTERM drains in-flight requests (--drain-timeout, 20s): give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["authproxy"]
CMD ["serve"]
