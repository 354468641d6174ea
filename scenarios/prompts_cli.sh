#!/usr/bin/env bash
# Scenario (outside the test suite): drive the real `python -m llmops prompts ...` CLI against an
# S3-compatible endpoint on localhost (a moto server), through AWS_ENDPOINT_URL, with --json,
# checking every exit code the CLI documents (0 ok, 1 not found, 2 invalid input, 3 conflict
# or gate refused, 4 audit failed). Includes concurrent pushes and concurrent promotions as
# separate processes.
#
#   scenarios/prompts_cli.sh            # PYTHON defaults to .venv/bin/python, else python3
#
# Needs moto[server] (requirements-test.txt), nothing else. Binds 127.0.0.1 only; stops the
# server on exit. Takes about a minute (each CLI call is a new Python process).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
WORK=$(mktemp -d)
PASSED=0
FAILED=0

PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# moto's own `python -m moto.server` is threaded, and its PutObject checks If-None-Match/If-Match
# and stores in two steps, so two concurrent conditional writes can both succeed there (S3 makes
# them atomic). Serving one request at a time restores S3's guarantee; the CLI processes still
# race each other between their reads and their conditional writes, which is what is tested.
"$PYTHON" -c '
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=False, request_handler=MotoRequestHandler)
' "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
cleanup() { kill "$MOTO_PID" 2>/dev/null; wait "$MOTO_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=scenario AWS_SECRET_ACCESS_KEY=scenario
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 LLMOPS_PROMPT_BUCKET=llmops-scenario-prompts
unset AWS_PROFILE AWS_SESSION_TOKEN

"$PYTHON" - <<'EOF' || { echo "the moto server did not start: $(cat "$WORK/moto.log")"; exit 1; }
import os, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(os.environ["AWS_ENDPOINT_URL"] + "/moto-api/", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit(1)
EOF
"$PYTHON" - <<'EOF' || { echo "cannot create the bucket on the moto server"; exit 1; }
import boto3, os
s3 = boto3.client("s3")
s3.create_bucket(Bucket=os.environ["LLMOPS_PROMPT_BUCKET"])
s3.put_bucket_versioning(Bucket=os.environ["LLMOPS_PROMPT_BUCKET"], VersioningConfiguration={"Status": "Enabled"})
EOF
echo "moto server on $AWS_ENDPOINT_URL (pid $MOTO_PID), bucket $LLMOPS_PROMPT_BUCKET"

# run EXPECTED_CODE DESCRIPTION -- ARGS...: runs `llmops prompts ARGS --json`, keeps stdout in $OUT.
run() {
  local expected=$1 what=$2
  shift 3
  OUT=$("$PYTHON" -m llmops prompts "$@" --json 2>"$WORK/stderr")
  local code=$?
  if [ "$code" -eq "$expected" ] && echo "$OUT" | "$PYTHON" -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
    PASSED=$((PASSED + 1)); echo "ok    [exit $code] $what"
  else
    FAILED=$((FAILED + 1)); echo "FAIL  [exit $code, wanted $expected] $what: $(tail -c 1500 "$WORK/stderr")"
  fi
}

# check DESCRIPTION PYTHON_EXPRESSION: evaluates the expression on `d`, the last JSON output.
check() {
  if echo "$OUT" | "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($2) else 1)"; then
    PASSED=$((PASSED + 1)); echo "ok          $1"
  else
    FAILED=$((FAILED + 1)); echo "FAIL        $1: $(echo "$OUT" | head -c 300)"
  fi
}

NAME=retail-banking-support
SRC=examples/prompts/$NAME.yaml
sed 's/temperature: 0.2/temperature: 0.1/' "$SRC" >"$WORK/v2.yaml"
echo '{"accuracy": 0.91, "cases": 240}' >"$WORK/report.json"

echo "== versions"
run 0 "push the example" -- push "$SRC" --message "first reviewed version"
check "it is version 1, created by the caller" "d['version'] == 1 and d['created'] and d['author'].startswith('arn:aws:')"
run 0 "push identical content" -- push "$SRC"
check "nothing created" "d['version'] == 1 and d['created'] is False"
run 0 "push a change" -- push "$WORK/v2.yaml" -m "lower temperature"
check "it is version 2" "d['version'] == 2 and d['created']"
run 0 "get the latest" -- get "$NAME"
check "latest is version 2 with its hash" "d['version'] == 2 and d['content_hash'].startswith('sha256:')"
run 0 "get by number" -- get "$NAME:1"
check "version 1's parameters" "d['prompt']['parameters']['temperature'] == 0.2"
run 1 "get an alias that does not exist" -- get "$NAME@production"
run 1 "get a version that does not exist" -- get "$NAME:9"

echo "== eval gate"
run 3 "promote to production without an eval" -- promote "$NAME" 2 --alias production --reason "launch"
run 0 "record a failing eval" -- eval-record "$NAME" 2 --score 0.80 --threshold 0.85
check "recorded as failed" "d['passed'] is False"
run 3 "promote after a failing eval" -- promote "$NAME" 2 --alias production --reason "launch"
run 0 "record a passing eval with its report" -- eval-record "$NAME" 1 --score 0.91 --threshold 0.85 --report "$WORK/report.json"
check "report stored with its digest" "d['passed'] and len(d['report']['sha256']) == 64"
run 3 "a manual eval cannot open production" -- promote "$NAME" 1 --alias production --reason "launch"
check "the refusal says why" "'recorded by hand' in d['error']['message']"
# What `llmops eval run NAME:V --record` stores (docs/evals.md), here without a gateway.
record_run() {
  "$PYTHON" - "$NAME" "$1" <<'EOF'
import os, sys, uuid
from llmops.prompts import PromptRegistry
from llmops.prompts.s3 import make_clients
name, version = sys.argv[1], int(sys.argv[2])
reg = PromptRegistry(os.environ["LLMOPS_PROMPT_BUCKET"], *make_clients())
cases = [{"id": f"case-{i}", "passed": True, "runs": []} for i in range(4)]
reg.record_harness_eval(name, version, {
    "kind": "harness", "prompt": name, "version": version,
    "content_sha256": reg.get_version(name, version)["content_hash"],
    "eval_set": {"path": f"evals/{name}.yaml", "prompt": name, "sha256": "0" * 64,
                 "threshold": 0.85, "repeat": 1, "cases": len(cases)},
    "threshold": 0.85, "pass_rate": 1.0, "cases": cases, "baseline": None, "passed": True,
    "models": {"candidate": "qwen-small", "baseline": None, "judge": None}, "judge": None,
    "run_id": str(uuid.uuid4()), "cost_usd": 0.0,
}, report=b"# 4/4 cases passed\n")
EOF
}
if record_run 1 && record_run 2; then PASSED=$((PASSED + 1)); echo "ok          eval runs recorded for versions 1 and 2"
else FAILED=$((FAILED + 1)); echo "FAIL        recording eval runs"; fi
run 0 "promote version 1 to production" -- promote "$NAME" 1 --alias production --reason "launch"
run 0 "promote version 2 to production" -- promote "$NAME" 2 --alias production --reason "lower temperature"
check "moved 1 -> 2 with the eval attached" "d['previous_version'] == 1 and d['version'] == 2 and d['eval']['passed']"

echo "== inspection"
run 0 "list" -- list
check "one prompt, production at 2" "d['prompts'] == [{'name': '$NAME', 'latest_version': 2, 'aliases': {'production': 2}}]"
run 0 "history" -- history "$NAME"
check "messages and aliases per version" "[(v['message'], v['aliases']) for v in d['versions']] == [('first reviewed version', []), ('lower temperature', ['production'])]"
run 0 "diff by number and alias" -- diff "$NAME" 1 production
check "the temperature change shows" "'-  temperature: 0.2' in d['diff'] and '+  temperature: 0.1' in d['diff']"

echo "== rollback"
run 0 "roll production back" -- rollback "$NAME" --alias production --reason "incident 4711"
check "production is back at 1" "d['action'] == 'rollback' and d['previous_version'] == 2 and d['version'] == 1"
run 0 "get production" -- get "$NAME@production"
check "serves version 1" "d['version'] == 1"
run 3 "a second rollback cannot put the withdrawn version 2 back" -- rollback "$NAME" --alias production --reason "undo"
check "the refusal names the rule" "'rolled back away from version 2' in d['error']['message']"
run 1 "roll back an alias that never existed" -- rollback "$NAME" --alias canary --reason "x"

echo "== concurrent pushes (4 processes)"
for i in 1 2 3 4; do
  sed "s/name: $NAME/name: race-target/; s/temperature: 0.2/temperature: 0.$i/" "$SRC" >"$WORK/race$i.yaml"
done
PIDS=()
for i in 1 2 3 4; do
  "$PYTHON" -m llmops prompts push "$WORK/race$i.yaml" --json >"$WORK/push$i.json" 2>"$WORK/push$i.err" &
  PIDS+=($!)
done
for pid in "${PIDS[@]}"; do wait "$pid"; done
OUT=$("$PYTHON" -c "
import json
rs = [json.load(open('$WORK/push%d.json' % i)) for i in (1, 2, 3, 4)]
print(json.dumps([{k: r.get(k) for k in ('version', 'created', 'error')} for r in rs]))")
echo "      pushed: $OUT"
check "four distinct version numbers 1..4" "sorted(r['version'] or 0 for r in d) == [1, 2, 3, 4] and all(r['created'] for r in d)"
run 0 "history of the raced prompt" -- history race-target
check "the registry holds exactly versions 1..4, each with its own content" "[v['version'] for v in d['versions']] == [1, 2, 3, 4] and len({v['content_hash'] for v in d['versions']}) == 4"

echo "== concurrent promotions (6 processes, one alias)"
for v in 1 2 3 4; do "$PYTHON" -m llmops prompts promote race-target "$v" --alias canary --reason "setup" --json >/dev/null 2>&1; done
CODES=()
PIDS=()
for i in 1 2 3 4 5 6; do
  "$PYTHON" -m llmops prompts promote race-target $(( (i % 3) + 1 )) --alias canary --reason "racer $i" --json \
    >"$WORK/promote$i.json" 2>"$WORK/promote$i.err" &
  PIDS+=($!)
done
for pid in "${PIDS[@]}"; do wait "$pid"; CODES+=($?); done
WON=0; LOST=0; OTHER=0
for c in "${CODES[@]}"; do case $c in 0) WON=$((WON + 1));; 3) LOST=$((LOST + 1));; *) OTHER=$((OTHER + 1));; esac; done
echo "      exit codes: ${CODES[*]} ($WON moved or no-op, $LOST lost the race with exit 3)"
OUT=$("$PYTHON" -c "
import json
rs = [json.load(open('$WORK/promote%d.json' % i)) for i in range(1, 7)]
print(json.dumps({'other': $OTHER, 'moved': sum(1 for r in rs if r.get('moved')),
                  'conflicts': [r['error']['exit_code'] for r in rs if 'error' in r]}))")
check "every racer exits 0 or 3, losers say so in JSON" "d['other'] == 0 and all(c == 3 for c in d['conflicts'])"
MOVED=$(echo "$OUT" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["moved"])')
run 0 "audit the raced alias" -- audit race-target
check "every successful move is in the audit, nothing lost or overwritten" "d['intact'] and len([m for m in d['moves'] if m['reason'].startswith('racer')]) == $MOVED"

echo "== audit"
run 0 "audit" -- audit "$NAME"
check "every move, oldest first, chain intact" "d['intact'] and [(m['action'], m['from_version'], m['to_version']) for m in d['moves']] == [('promote', None, 1), ('promote', 1, 2), ('rollback', 2, 1)]"
check "who, when, why and the eval of each move" "all(m['moved_by'].startswith('arn:aws:') and m['moved_at'] and m['reason'] and m['s3_version_id'] for m in d['moves'])"
"$PYTHON" -c 'import boto3, os; boto3.client("s3").put_bucket_versioning(Bucket=os.environ["LLMOPS_PROMPT_BUCKET"], VersioningConfiguration={"Status": "Suspended"})'
run 4 "audit with bucket versioning suspended" -- audit "$NAME"
check "it says so" "not d['intact'] and d['versioning'] == 'Suspended'"

echo "== invalid input"
printf 'name: broken\ntemplate: "Hi {{ who }}"\nvariables: [whom]\nmodel: m\nowner: o\nclassification: internal\n' >"$WORK/bad.yaml"
run 2 "push a template with an undeclared variable" -- push "$WORK/bad.yaml"
check "the error names the variable" "\"undeclared variable 'who'\" in d['error']['message']"
run 2 "promote a version that is not a number" -- promote "$NAME" two --alias production --reason "x"
run 2 "promote without a reason" -- promote "$NAME" 1 --alias staging --reason " "
run 1 "a bucket that does not exist" -- list --bucket llmops-no-such-bucket

echo
echo "$PASSED checks passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
