#!/usr/bin/env bash
# System tools the deploy/ tests use: promtool, prometheus, prometheus-pushgateway and
# systemd-analyze (Debian packages). Installed when missing and we are root (CI, fresh
# machines); otherwise a note, and those tests skip outside CI.
set -euo pipefail
tools=(promtool prometheus prometheus-pushgateway systemd-analyze)
missing=()
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus prometheus-pushgateway systemd >/dev/null
else
    echo "note: ${missing[*]} not installed; the deploy tests will skip (CI installs them)" >&2
fi
