#!/usr/bin/env bash
# A real Kubernetes API server for the operator's tests, on loopback: etcd plus
# k8s.io/apiextensions-apiserver (the part of kube-apiserver that serves CRDs and custom resources),
# built from Debian's packaged Go sources with the small main in scripts/k8s-apiserver/main.go.
# Built-in kinds (Namespace, Secret, Deployment, Event, Lease) are NOT served; tests register
# stand-in CRDs for the few they need.
#
#   scripts/k8s-apiserver.sh [up]   build when needed, start what is not running, wait until
#                                   ready, then print on stdout:
#                                     ROOST_TEST_KUBECONFIG=<path>
#   scripts/k8s-apiserver.sh down   stop the API server and etcd
#   scripts/k8s-apiserver.sh build  only fetch the packages and build the binary
#
# Everything lives under $ROOST_K8S_STATE_DIR (default ~/.cache/roost/k8s-apiserver), never in the
# repository: the Debian packages (Go 1.27, golang-k8s-apiextensions-apiserver-dev and its
# golang-*-dev dependencies, etcd-server; fetched from Debian sid with `apt-get download` under a
# private apt configuration, the system's apt untouched, then unpacked with dpkg-deb -x), the Go
# build cache, the binary, the certificates and the running state. A cold build takes ~6-7 minutes;
# later runs reuse the binary (rebuilt only when main.go changes).
#
# Exit codes: 0 ready; 3 the toolchain cannot be had here (no apt-get, no network); 1 anything else.
set -euo pipefail

state="${ROOST_K8S_STATE_DIR:-$HOME/.cache/roost/k8s-apiserver}"
etcd_port="${ROOST_K8S_ETCD_PORT:-12379}"
etcd_peer_port="${ROOST_K8S_ETCD_PEER_PORT:-12380}"
api_port="${ROOST_K8S_API_PORT:-16443}"
here="$(cd "$(dirname "$0")" && pwd)"
main_go="$here/k8s-apiserver/main.go"
binary="$state/bin/roost-k8s-apiserver"
run="$state/run"

log() { echo "k8s-apiserver: $*" >&2; }

apt_options() {
  local apt="$state/apt"
  echo "-o Dir::Etc::sourcelist=$apt/etc/sources.list -o Dir::Etc::sourceparts=- \
-o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache -o Dir::State::status=/dev/null \
-o Debug::NoLocking=1 -o APT::Sandbox::User=root"
}

fetch_packages() {
  local apt="$state/apt" root="$state/root"
  if [ -f "$root/.complete" ]; then return 0; fi
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    log "apt-get and dpkg-deb are needed to fetch Debian's Go packages"
    exit 3
  }
  mkdir -p "$apt/etc" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" \
    >"$apt/etc/sources.list"
  # shellcheck disable=SC2046
  log "fetching Debian sid's package index"
  apt-get $(apt_options) update >"$state/apt.log" 2>&1 || {
    log "apt-get update failed (no network?); see $state/apt.log"
    exit 3
  }
  # The install a system without anything would need, less what is not Go source or etcd: the
  # C libraries of the closure are the system's already, and unused here.
  local packages
  # shellcheck disable=SC2046
  packages="$(apt-get $(apt_options) -s install --no-install-recommends \
    golang-k8s-apiextensions-apiserver-dev golang-1.27-go etcd-server 2>>"$state/apt.log" |
    awk '/^Inst /{print $2}' | grep -E '^(golang-|etcd-server$)' | sort -u)"
  [ -n "$packages" ] || { log "could not resolve the packages; see $state/apt.log"; exit 3; }
  log "downloading $(echo "$packages" | wc -l) packages"
  # shellcheck disable=SC2046,SC2086
  (cd "$apt/debs" && apt-get $(apt_options) download $packages >>"$state/apt.log" 2>&1) || {
    log "apt-get download failed; see $state/apt.log"
    exit 3
  }
  rm -rf "$root" && mkdir -p "$root"
  for deb in "$apt/debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  # The unpacked tree is all the build reads; the archives would only take space.
  rm -rf "$apt/debs"
  touch "$root/.complete"
}

go_build() {
  local root="$state/root"
  (cd "$state/root/usr/share/gocode/src/roost.dev/k8s-apiserver" &&
    env GOROOT="$root/usr/lib/go-1.27" PATH="$root/usr/lib/go-1.27/bin:$PATH" \
      GO111MODULE=off GOPATH="$root/usr/share/gocode" GOCACHE="$state/gocache" GOTOOLCHAIN=local \
      CGO_ENABLED=0 GOFLAGS= go build -o "$binary.tmp" .) >"$state/build.log" 2>&1
}

build() {
  local stamp
  stamp="$(sha256sum "$main_go" | cut -c1-16)"
  if [ -x "$binary" ] && [ "$(cat "$state/bin/.stamp" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  fetch_packages
  local root="$state/root" gopath="$state/root/usr/share/gocode"
  local source="$gopath/src/roost.dev/k8s-apiserver"
  mkdir -p "$source" "$state/bin" "$state/gocache"
  cp "$main_go" "$source/main.go"
  log "building the API server (a few minutes the first time)"
  if ! go_build; then
    # A cached tree or build cache can be damaged (a full disk, an interrupted unpack): start
    # once more from fresh packages before giving up.
    log "go build failed; fetching the packages again and retrying once:"
    tail -n 20 "$state/build.log" >&2
    rm -rf "$root" "$state/gocache"
    fetch_packages
    mkdir -p "$source" "$state/gocache"
    cp "$main_go" "$source/main.go"
    go_build || {
      log "go build failed again; the end of $state/build.log:"
      tail -n 40 "$state/build.log" >&2
      exit 1
    }
  fi
  mv "$binary.tmp" "$binary"
  echo "$stamp" >"$state/bin/.stamp"
}

certificates() {
  local pki="$state/pki"
  [ -f "$pki/admin.crt" ] && return 0
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=roost-test-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    # Group system:masters: the server's authorizer always allows it.
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=roost-test-admin" \
      -keyout admin.key -out admin.csr 2>/dev/null
    # Extensions make the certificate X.509 v3, which rustls requires.
    printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out admin.crt 2>/dev/null
  )
}

kubeconfig() {
  local pki="$state/pki"
  cat >"$state/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: roost-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: roost-test
  context: {cluster: roost-test, user: admin, namespace: default}
current-context: roost-test
EOF
}

running() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_etcd() {
  running etcd && return 0
  port_open "$etcd_port" && { log "port $etcd_port is taken; set ROOST_K8S_ETCD_PORT"; exit 1; }
  rm -rf "$run/etcd" && mkdir -p "$run/etcd"
  "$state/root/usr/bin/etcd" --name roost-test --data-dir "$run/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "roost-test=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync >"$run/etcd.log" 2>&1 9>&- &
  echo $! >"$run/etcd.pid"
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "etcd did not start; see $run/etcd.log"
  exit 1
}

start_apiserver() {
  running apiserver && return 0
  port_open "$api_port" && { log "port $api_port is taken; set ROOST_K8S_API_PORT"; exit 1; }
  local pki="$state/pki"
  # The core API the server would read informers from is itself: those lists fail and the
  # informer-sync readiness check never passes, which the wait below leaves out.
  "$binary" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$pki/server.crt" --tls-private-key-file "$pki/server.key" \
    --client-ca-file "$pki/ca.crt" --kubeconfig "$state/kubeconfig" \
    --authentication-skip-lookup >"$run/apiserver.log" 2>&1 9>&- &
  echo $! >"$run/apiserver.pid"
  for _ in $(seq 300); do
    if curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
      "https://127.0.0.1:$api_port/readyz?exclude=informer-sync" >/dev/null 2>&1; then
      return 0
    fi
    running apiserver || break
    sleep 0.1
  done
  log "the API server did not get ready; see $run/apiserver.log"
  exit 1
}

stop() {
  for name in apiserver etcd; do
    if running "$name"; then kill "$(cat "$run/$name.pid")" 2>/dev/null || true; fi
    rm -f "$run/$name.pid"
  done
}

mkdir -p "$state" "$run"
# Test processes call this script at the same time (nextest runs each test in its own process):
# one builds and starts, the others wait for it and then find everything running. The servers
# started in the background do not inherit the lock's descriptor.
exec 9>"$state/.lock"
flock 9
case "${1:-up}" in
  build) build ;;
  down) stop ;;
  up)
    build
    certificates
    kubeconfig
    start_etcd
    start_apiserver
    echo "ROOST_TEST_KUBECONFIG=$state/kubeconfig"
    ;;
  *) log "usage: $0 [up|down|build]"; exit 1 ;;
esac
