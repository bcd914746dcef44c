#!/usr/bin/env bash
# Build the asterisk-docker image where a Docker engine is available (CI step of .ci/run).
# Without the docker command, or without an engine it can reach, there is nothing to build
# with: say so and succeed. With an engine, a failed build fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${CALLCONTROL_IMAGE:-callcontrol-asterisk:ci}
if ! command -v docker >/dev/null 2>&1; then
    echo "docker-build: no docker command; image not built"
    exit 0
fi
if ! docker info >/dev/null 2>&1; then
    echo "docker-build: no Docker engine reachable; image not built"
    exit 0
fi
echo "docker-build: building $IMAGE from asterisk-docker/Dockerfile"
docker build --file asterisk-docker/Dockerfile --tag "$IMAGE" .
