#!/usr/bin/env bash
# Build and test the Java client from clean: generate the stubs from ../../protos, compile, run the
# unit tests, build target/xenmca-java.jar, then run the live tests against it (they need `xenmca`
# on PATH or in $XENMCA_BIN; without it they are skipped, unless XENMCA_CLIENTS contains "java").
# Extra arguments go to Maven, e.g. -Dmaven.repo.local=/tmp/m2-cold. Exits with Maven's status,
# after one line that sums up the test reports: "java: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

mvn -B -q --no-transfer-progress -Dstyle.color=never "$@" clean verify
status=$?

tests=0 failed=0 skipped=0
for report in target/surefire-reports/TEST-*.xml target/failsafe-reports/TEST-*.xml; do
  [ -f "$report" ] || continue
  suite=$(grep -m1 -o '<testsuite [^>]*>' "$report")
  attr() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$suite"; }
  tests=$((tests + $(attr tests)))
  failed=$((failed + $(attr failures) + $(attr errors)))
  skipped=$((skipped + $(attr skipped)))
done
echo "java: $((tests - failed - skipped)) passed, $failed failed, $skipped skipped"
exit "$status"
