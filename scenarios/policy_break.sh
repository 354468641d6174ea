#!/usr/bin/env bash
# Breaks a real plan.json the ways people do and expects `llmops policy check` to exit 1 and name
# the broken resource in a new mandatory violation of the policy that guards it.
#
#   scenarios/policy_break.sh build/prod/plan.json [policies/config.prod.json]
#
# Breaks: a public bucket, an unencrypted bucket (through the separate v7 encryption resource), the
# EKS endpoint open to the world, an internet-facing Service, a privileged container, a resource
# outside the allowed regions, a bucket whose own region input leaves them (checked twice: with the
# config and with no --config, from the plan's settings), a gateway config that stores prompts. Each
# break mutates an existing resource when the plan has one, else adds a realistic broken one (said so
# on stderr). The config defaults to policies/config.<stack>.json. Exit 0 when every break is caught.
set -euo pipefail

plan=${1:?usage: $0 PLAN_JSON [POLICY_CONFIG]}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$here/.venv/bin/python}
[ -x "$py" ] || py=python3
helper=$here/scenarios/policy_break.py
stack=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("stack") or "prod")' "$plan")
config=${2:-$here/policies/config.$stack.json}
[ -f "$config" ] || config=$here/policies/config.prod.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check() {  # check PLAN OUT [settings]: the checker's exit code; its JSON report in OUT
  local code=0 args=(--config "$config")
  [ "${3:-}" = settings ] && args=()  # the plan's own settings decide, as `llmops policy check PLAN`
  (cd "$here" && "$py" -m llmops.policy check "$1" --json "${args[@]}" >"$2" 2>"$2.err") || code=$?
  return "$code"
}

check "$plan" "$work/baseline.json" || true
echo "plan: $plan (stack $stack), config: $config"

failures=0
# break:the policy that must catch it
for pair in public-bucket:s3-public-access-blocked unencrypted-bucket:s3-bucket-encrypted-with-customer-key \
            open-endpoint:eks-endpoint-not-open-to-internet internet-facing-service:load-balancers-internal \
            privileged-container:no-privileged-containers outside-region:resources-in-allowed-regions \
            resource-region:resources-in-allowed-regions resource-region@settings:resources-in-allowed-regions \
            gateway-stores-prompts:gateway-no-prompts-in-spend-logs; do
  label=${pair%%:*} expected=${pair#*:}
  brk=${label%@*} mode=${label#"$brk"}
  target=$("$py" "$helper" break "$brk" "$plan" "$work/$brk.json" "$config")
  code=0
  check "$work/$brk.json" "$work/$brk.out" "${mode#@}" || code=$?
  if verdict=$("$py" "$helper" verdict "$work/baseline.json" "$work/$brk.out" "$target" "$expected") \
     && [ "$code" -eq 1 ]; then
    echo "caught  $label ($target) -> $verdict"
  else
    echo "MISSED  $label ($target): exit $code, $verdict"
    failures=$((failures + 1))
  fi
done
echo "$failures break(s) missed"
[ "$failures" -eq 0 ]
