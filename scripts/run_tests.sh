#!/usr/bin/env bash
# Run the test suite. Tests that open DDS traffic (real rclpy) run inside a private network namespace so nothing
# leaves the machine, with their own ROS_DOMAIN_ID. Extra arguments go to pytest (e.g. -m bench, -k name).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DDR_IN_NETNS:-}" ]; then
  export DDR_IN_NETNS=1
  export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  if [ "$(id -u)" = 0 ]; then ns=(unshare -n); else ns=(unshare -rn); fi
  exec "${ns[@]}" bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
exec .venv/bin/python -m pytest "$@"
