#!/bin/sh
# Install the real Prometheus and Pushgateway servers the monitoring tests run on 127.0.0.1
# (Debian packages `prometheus` and `prometheus-pushgateway`; `promtool` comes with `prometheus`).
#
# Guarded: without root or without apt-get it prints why and exits 0, and tests/monitoring then
# skips with a reason naming the missing binary. It never fails the build on its own.
# The packages' own services are not started (policy-rc.d), the tests start their own servers.
set -u

need=""
command -v prometheus >/dev/null 2>&1 || need="$need prometheus"
command -v promtool >/dev/null 2>&1 || case "$need" in *prometheus*) ;; *) need="$need prometheus" ;; esac
command -v prometheus-pushgateway >/dev/null 2>&1 || need="$need prometheus-pushgateway"

if [ -z "$need" ]; then
    echo "setup_servers: prometheus, promtool and prometheus-pushgateway already installed"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "setup_servers: not root, not installing:$need (monitoring tests will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_servers: no apt-get on this machine, not installing:$need (monitoring tests will skip)"
    exit 0
fi

# Keep dpkg from starting the packaged daemons (the tests run their own on free loopback ports).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
status=0
apt-get update -qq || status=$?
if [ "$status" = "0" ]; then
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need || status=$?
fi
[ "$created_policy" = "1" ] && rm -f "$policy"

if [ "$status" != "0" ]; then
    echo "setup_servers: apt-get failed (exit $status) installing:$need (monitoring tests will skip)"
    exit 0
fi
for bin in prometheus promtool prometheus-pushgateway; do
    echo "setup_servers: $bin -> $(command -v "$bin" || echo missing)"
done
exit 0
