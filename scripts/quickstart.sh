#!/usr/bin/env bash
# Flotilla quickstart: from a fresh Debian or Ubuntu machine with Node 20+ to a running local
# cluster with the example units on it.
#
#   scripts/quickstart.sh [flotilla cluster up flags...]      e.g. --agents 4
#
# 1. installs what is missing: etcd-server, runc, protobuf-compiler, busybox-static, iproute2,
#    docker-registry, skopeo, umoci, attr, haproxy, iptables (apt-get, through sudo when not root), node_modules
#    (npm ci), the build (npm run build);
# 2. starts etcd, two schedulers and three agents (bin/flotilla cluster up): as root each
#    agent is its own host in a network namespace running units as runc containers;
# 3. starts the examples from deploy/examples/ that fit and shows list-machines, list-units.
#
# Stop it all with: bin/flotilla cluster down
set -euo pipefail

cd "$(dirname "$0")/.."
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# --- 1. prerequisites --------------------------------------------------------------------
command -v node >/dev/null || die "Node.js 20 or newer is needed (https://nodejs.org, or apt-get install nodejs)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || die "Node.js $(node --version) is too old: Flotilla needs 20.19 or newer"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="missing"; fi
fi

missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v runc >/dev/null || missing+=(runc)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v busybox >/dev/null || missing+=(busybox-static)
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v python3 >/dev/null || missing+=(python3)
# Image units: the local registry, skopeo (pulls), umoci (builds the example image), attr.
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v umoci >/dev/null || missing+=(umoci)
command -v setfattr >/dev/null || missing+=(attr)
# The routing mesh's data plane (the agents fall back to a built-in proxy without it);
# iptables keeps the units away from etcd in the local cluster.
command -v haproxy >/dev/null || missing+=(haproxy)
command -v iptables >/dev/null || missing+=(iptables)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$SUDO" = "missing" ] && die "missing ${missing[*]}: install them as root (apt-get install ${missing[*]})"
  say "Installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
# Debian's etcd-server package starts a system etcd on 2379 as it installs; the local cluster
# brings its own. Stop the one just installed (an etcd that was there before is left alone).
if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null &&
  systemctl is-active --quiet etcd 2>/dev/null; then
  say "Stopping the etcd service the package started (the local cluster runs its own)"
  $SUDO systemctl disable --now etcd || true
fi

if [ ! -d node_modules ]; then
  say "npm ci"
  npm ci --no-audit --no-fund
fi
say "npm run build"
npm run build --silent

# --- 2. the cluster ----------------------------------------------------------------------
export FLOTCTL_ENDPOINT="${FLOTCTL_ENDPOINT:-127.0.0.1:4700}"
status=0
bin/flotilla cluster status >/dev/null 2>&1 || status=$?
if [ "$status" -eq 0 ]; then
  say "A local cluster is already running (bin/flotilla cluster status)"
else
  if [ "$status" -eq 3 ]; then
    say "Cleaning up a cluster that is partly stopped"
    bin/flotilla cluster down
  fi
  say "bin/flotilla cluster up $*"
  if [ "$(id -u)" -ne 0 ]; then
    echo "(not root: agents run as plain processes on 127.0.0.1; run as root for namespaces and runc)"
  fi
  bin/flotilla cluster up --no-hints "$@"
fi

# --- 3. the examples ---------------------------------------------------------------------
flotctl() { bin/flotctl "$@"; }
say "Submitting and starting the examples (deploy/examples/)"
flotctl submit deploy/examples/*.service
# Whatever cannot be placed says why in list-units and 'flotctl status'; keep going.
flotctl start --timeout 60s hello.service node-monitor.service db.service batch-once.service || true
if [ "$(id -u)" -eq 0 ]; then
  # Each agent has its own network namespace, so every web instance may listen on 8080.
  flotctl start --timeout 60s web@1.service web@2.service web@3.service \
    web-presence@1.service web-presence@2.service legacy-sidekick@3.service || true
else
  flotctl start --timeout 60s web@1.service web-presence@1.service || true
fi
flotctl scale --timeout 60s api@.service=3 || true

# The registry 'cluster up' started, with the example image it built offline from busybox;
# the example names 127.0.0.1:5000, which up's --registry-mirror points at that registry.
if [ -n "$(node -p 'JSON.parse(require("fs").readFileSync(".flotilla/cluster/cluster.json","utf8")).registry?.addr ?? ""' 2>/dev/null || true)" ] && [ "$(id -u)" -eq 0 ]; then
  say "Starting an image unit from the cluster's registry"
  flotctl start --timeout 60s deploy/examples/images/hello-image.service || true
fi

# One example service: 3 instances on dynamic ports, published on 9080 on every machine.
say "Starting an example service: 3 instances of hello-http@ (deploy/examples/services/)"
flotctl submit deploy/examples/services/hello-http@.service || true
flotctl scale --timeout 60s hello-http@.service=3 || true
flotctl list-services || true
# Any machine answers on the published port (the routing mesh); the first one's address.
service_addr="$(bin/flotctl -o json list-machines 2>/dev/null |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s)[0]?.machine?.addresses?.[0]??"127.0.0.1")}catch{console.log("127.0.0.1")}})' ||
  echo 127.0.0.1)"

say "flotctl list-machines"
flotctl list-machines
say "flotctl list-units"
flotctl list-units

cat <<EOF

Flotilla is running. Try:
  export FLOTCTL_ENDPOINT=$FLOTCTL_ENDPOINT
  bin/flotctl journal -f hello.service          # follow a unit's output (Ctrl-C to stop)
  bin/flotctl status db.service                 # where a unit runs, or why it waits
  bin/flotctl status hello-image.service        # an image unit: its pinned digest
  bin/flotctl scale api@.service=6              # spread over zones, at most 2 per machine
  bin/flotctl watch                             # every change, live
  curl http://$service_addr:9080/               # the example service, through any machine's port 9080
  bin/flotctl endpoints hello-http              # where its instances answer
  bin/flotctl scale hello-http@.service=6       # more instances: new endpoints within a second
  bin/flotilla cluster status                   # the cluster's processes (logs: .flotilla/cluster/logs)
  bin/flotilla cluster down                     # stop everything
EOF
