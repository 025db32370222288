#!/usr/bin/env bash
# Schemathesis (property-based API tests from the OpenAPI document) against a running bhavstore:
# every operation /openapi.json describes, with every check on (`--checks all`): no 5xx, status
# codes, content types, headers and bodies as documented, schema-valid requests accepted and
# invalid ones refused, 405 with Allow for undocumented methods, 401 where a token is required.
# Exits non-zero on any failure.
#
# env: BHAVSTORE_HTTP  host:port of the REST listener (required)
#      BHAVSTORE_TOKEN bearer token; empty or unset for a server without tokens
#      SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 40)
#      SCHEMATHESIS_SEED          fixed seed, for reproducing a failure (default: random)
#
# Every operation runs with every check, in both modes, except POST /feature-store/ingest, which
# runs with every check in the negative mode only: a schema-valid ingest that happens to name a
# real view (Schemathesis learns view names from other answers) starts real work, a BSE download
# and a materialization, which a fuzzer must not trigger and whose outcome depends on the network
# (an unreachable BSE answers 422 ingest_failed, which positive_data_acceptance would count as a
# refusal). Schema-violating ingests must all be refused before any work starts, and are checked.
set -euo pipefail

: "${BHAVSTORE_HTTP:?set BHAVSTORE_HTTP to the REST listener, host:port}"
command -v schemathesis >/dev/null 2>&1 || {
    echo "schemathesis is not installed (scripts/install-deps installs it)" >&2
    exit 2
}

common=(--checks all
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}"
    --request-timeout 30
    --wait-for-schema 30)
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then
    common+=(--seed "$SCHEMATHESIS_SEED")
fi
if [ -n "${BHAVSTORE_TOKEN:-}" ]; then
    common+=(--header "Authorization: Bearer ${BHAVSTORE_TOKEN}")
fi
schema="http://${BHAVSTORE_HTTP}/openapi.json"
ingest=/feature-store/ingest

# Hypothesis keeps its example database in the working directory: keep it out of the tree.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
status=0
schemathesis run "$schema" "${common[@]}" --exclude-path "$ingest" || status=1
schemathesis run "$schema" "${common[@]}" --include-path "$ingest" --mode negative || status=1
exit "$status"
