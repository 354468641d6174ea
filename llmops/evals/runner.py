"""Running an eval set against a prompt version (and its baseline) through the gateway.

    Runner(gateway, concurrency=4, max_cost=None, cache=ResponseCache(...)).run(eval_set, candidate,
        baseline=None) -> Outcome
    build_record(eval_set, eval_set_file, candidate, baseline, outcome) -> dict  (the eval record)

Each case is rendered with its vars and sent `repeat` times; a case passes when a strict majority
of its runs pass every assertion. Candidate and baseline run the same cases, case by case, so a
run stopped by the cost cap leaves both with the same completed cases.

Cost cap: before a call is scheduled, its cost is estimated as the most a call of the same role
(candidate or baseline, with its judge calls) has cost so far; the run stops scheduling when the
money spent, plus the estimates of calls in flight, plus this estimate would exceed the cap. Until
a role's first call has been priced, that call runs alone, so the only call that can overshoot is
the first one of each role. Cached answers cost nothing.

Cache: an answer is reused only for the same sha256 of (model, rendered messages, parameters),
and only for a case's first repeat: later repeats always ask the gateway (they exist to sample).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmops import PROJECT_DIR
from llmops.evals.assertions import AssertionResult, check
from llmops.evals.evalset import Case, EvalSet
from llmops.evals.gateway import COST_HEADER, Completion, Gateway, GatewayError
from llmops.evals.stats import compare
from llmops.prompts.format import PromptFile

CACHE_ENV = "LLMOPS_EVAL_CACHE"
DEFAULT_CONCURRENCY = 4
JUDGE_DEFAULTS = {"temperature": 0}
JUDGE_INSTRUCTIONS = (
    "You grade the output of a language model against a rubric. Reply with one JSON object and "
    'nothing else: {"pass": true or false, "reason": "<one sentence>"}.'
)


@dataclass(frozen=True)
class Target:
    """A prompt version under evaluation: the candidate or the baseline."""

    role: str
    name: str
    version: int
    content_hash: str
    prompt: PromptFile
    alias: str | None = None

    @classmethod
    def from_record(cls, role: str, record: dict[str, Any]) -> Target:
        """From a registry version record (`PromptRegistry.get`)."""
        return cls(
            role=role,
            name=record["name"],
            version=record["version"],
            content_hash=record["content_hash"],
            prompt=PromptFile.model_validate(record["prompt"]),
            alias=record.get("alias"),
        )

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def messages(self, case: Case) -> list[dict[str, str]]:
        # The baseline gets only the variables it declares: a candidate may add one, and the
        # eval set then gives it for every case (the CLI checks the baseline is missing none).
        declared = {v.name for v in self.prompt.variables}
        values = (
            case.vars if self.role == "candidate" else {k: v for k, v in case.vars.items() if k in declared}
        )
        rendered = self.prompt.render(values)
        return [{"role": "user", "content": rendered}] if isinstance(rendered, str) else rendered

    def metadata(self, run_id: str, role: str) -> dict[str, Any]:
        """The request `metadata`: LiteLLM logs the whole of it as `requester_metadata` and copies
        its `spend_logs_metadata` into the spend log's `metadata` (the field the aggregator reads)."""
        labels: dict[str, Any] = {
            "prompt_name": self.name,
            "prompt_version": str(self.version),
            "prompt_hash": self.content_hash,
            "eval_run_id": run_id,
            "eval_role": role,
            "llmops_eval": True,
        }
        if self.alias:
            labels["prompt_alias"] = self.alias
        return {**labels, "spend_logs_metadata": dict(labels)}


@dataclass(frozen=True)
class RunResult:
    """One run of one case: what the model said and how each assertion judged it."""

    passed: bool
    output: str
    latency_ms: float
    cost_usd: float | None
    tokens: dict[str, int | None]
    cached: bool
    assertions: list[AssertionResult]

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Job:
    case: Case
    target: Target
    repeat: int
    spent: float = 0.0
    calls: int = 0
    cached_calls: int = 0


@dataclass
class Outcome:
    run_id: str
    results: dict[str, dict[str, list[RunResult]]]
    """role -> case id -> its runs, for the cases every role completed."""
    not_run: list[str]
    """Cases the cost cap left incomplete (in eval-set order)."""
    spent_usd: float
    calls: int
    cached_calls: int
    max_cost: float | None = None


class ResponseCache:
    """Answers on disk, one JSON file per key. A cache is an optimisation: unreadable entries are
    misses and failed writes are skipped."""

    def __init__(self, directory: Path):
        self.directory = directory

    @classmethod
    def default(cls) -> ResponseCache:
        return cls(Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "llmops" / "evals"))

    @staticmethod
    def key(model: str, messages: list[dict[str, str]], parameters: dict[str, Any]) -> str:
        data = {"model": model, "messages": messages, "parameters": parameters}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> Completion | None:
        try:
            return Completion(**json.loads((self.directory / f"{key}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def put(self, key: str, completion: Completion) -> None:
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(completion), handle)
            os.replace(tmp, self.directory / f"{key}.json")  # atomic: readers never see half a file


class Runner:
    def __init__(
        self,
        gateway: Gateway,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_cost: float | None = None,
        cache: ResponseCache | None = None,
        run_id: str | None = None,
    ):
        self.gateway = gateway
        self.concurrency = concurrency
        self.max_cost = max_cost
        self.cache = cache
        self.run_id = run_id or str(uuid.uuid4())

    def run(self, eval_set: EvalSet, candidate: Target, baseline: Target | None = None) -> Outcome:
        targets = [candidate] + ([baseline] if baseline else [])
        jobs = deque(
            _Job(case, target, r)
            for case in eval_set.cases
            for target in targets
            for r in range(eval_set.repeat)
        )
        runs: dict[tuple[str, str], list[tuple[int, RunResult]]] = {}  # (role, case id) -> (repeat, run)
        estimates: dict[str, float] = {}  # role -> the most one job of that role has cost
        spent = reserved = 0.0
        calls = cached_calls = 0
        stopped = False
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="eval")
        running: dict[Future, tuple[_Job, float]] = {}
        try:
            while True:
                while jobs and not stopped and len(running) < self.concurrency:
                    estimate = estimates.get(jobs[0].target.role)
                    if self.max_cost is not None:
                        if estimate is None and running:
                            break  # learn what a call of this role costs from one call alone
                        if spent >= self.max_cost or spent + reserved + (estimate or 0.0) > self.max_cost:
                            stopped = True
                            break
                    job = jobs.popleft()
                    reserved += estimate or 0.0
                    running[pool.submit(self._execute, job, eval_set)] = (job, estimate or 0.0)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job, estimate = running.pop(future)
                    reserved -= estimate
                    result = future.result()  # a gateway error ends the run (finally: no more jobs)
                    spent += job.spent
                    calls += job.calls
                    cached_calls += job.cached_calls
                    if job.calls:
                        estimates[job.target.role] = max(estimates.get(job.target.role, 0.0), job.spent)
                    runs.setdefault((job.target.role, job.case.id), []).append((job.repeat, result))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        complete = {
            case.id
            for case in eval_set.cases
            if all(len(runs.get((t.role, case.id), [])) == eval_set.repeat for t in targets)
        }
        results = {
            t.role: {
                case.id: [r for _, r in sorted(runs[(t.role, case.id)], key=lambda pair: pair[0])]
                for case in eval_set.cases
                if case.id in complete
            }
            for t in targets
        }
        return Outcome(
            run_id=self.run_id,
            results=results,
            not_run=[case.id for case in eval_set.cases if case.id not in complete],
            spent_usd=spent,
            calls=calls,
            cached_calls=cached_calls,
            max_cost=self.max_cost,
        )

    def _execute(self, job: _Job, eval_set: EvalSet) -> RunResult:
        target = job.target
        answer, cached = self._call(
            job, target.prompt.model, target.messages(job.case), target.prompt.parameters
        )
        judge = None
        if eval_set.judge is not None:
            settings = eval_set.judge
            judge_params = {**JUDGE_DEFAULTS, **settings.params}

            def judge(rubric: str, output: str) -> tuple[bool, str]:
                messages = judge_messages(rubric, output)
                verdict, _ = self._call(job, settings.model, messages, judge_params, role="judge")
                return parse_verdict(verdict.text)

        checks = [
            check(a, answer.text, latency_ms=answer.latency_ms, cost_usd=answer.cost_usd, judge=judge)
            for a in job.case.assert_
        ]
        return RunResult(
            passed=all(c.passed for c in checks),
            output=answer.text,
            latency_ms=answer.latency_ms,
            cost_usd=answer.cost_usd,
            tokens={"prompt": answer.prompt_tokens, "completion": answer.completion_tokens},
            cached=cached,
            assertions=checks,
        )

    def _call(
        self,
        job: _Job,
        model: str,
        messages: list[dict[str, str]],
        parameters: dict[str, Any],
        role: str | None = None,
    ) -> tuple[Completion, bool]:
        """(the answer, whether it came from the cache); the job's spend and call counts grow."""
        use_cache = self.cache is not None and job.repeat == 0
        key = ResponseCache.key(model, messages, parameters) if use_cache else ""
        if use_cache and (hit := self.cache.get(key)) is not None:
            job.cached_calls += 1
            return hit, True
        body = {
            "model": model,
            "messages": messages,
            **parameters,
            "metadata": job.target.metadata(self.run_id, role or job.target.role),
        }
        answer = self.gateway.chat(body)
        if self.max_cost is not None and answer.cost_usd is None:
            raise GatewayError(
                f"{self.gateway.url} answered without a {COST_HEADER} header, so --max-cost cannot "
                f"be enforced; run without --max-cost or through a gateway that prices {model}"
            )
        job.calls += 1
        job.spent += answer.cost_usd or 0.0
        if use_cache:
            self.cache.put(key, answer)
        return answer, False


def judge_messages(rubric: str, output: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": JUDGE_INSTRUCTIONS},
        {"role": "user", "content": f"Rubric:\n{rubric}\n\nOutput to grade:\n<output>\n{output}\n</output>"},
    ]


def parse_verdict(text: str) -> tuple[bool, str]:
    """The judge's {"pass": bool, "reason": str}; anything else fails the assertion, saying so.
    Code fences and text around the one JSON object are tolerated (models add them)."""
    start, end = text.find("{"), text.rfind("}")
    try:
        verdict = json.loads(text[start : end + 1]) if 0 <= start < end else None
    except ValueError:
        verdict = None
    if (
        isinstance(verdict, dict)
        and isinstance(verdict.get("pass"), bool)
        and isinstance(verdict.get("reason", ""), str)
    ):
        return verdict["pass"], verdict.get("reason", "")
    shown = " ".join(text.split())[:200]
    return False, f'unparsable verdict (expected {{"pass": bool, "reason": str}}): {shown!r}'


# -- the record ----------------------------------------------------------------------------------


def case_passed(runs: list[RunResult]) -> bool:
    """A strict majority of the runs passed (with one run: that run passed)."""
    return 2 * sum(r.passed for r in runs) > len(runs)


def display_path(path: Path) -> str:
    """Relative to the working directory or the project when inside them (as CI checks it out)."""
    resolved = Path(path).resolve()
    for root in (Path.cwd(), PROJECT_DIR):
        with contextlib.suppress(ValueError):
            return resolved.relative_to(root).as_posix()
    return resolved.as_posix()


def build_record(
    eval_set: EvalSet, eval_set_file: Path, candidate: Target, baseline: Target | None, outcome: Outcome
) -> dict[str, Any]:
    """The eval record (the shared contract of issue 13), plus `complete`, `not_run` and `calls`.
    Cases the cost cap left incomplete count as failed, so the pass rate never overstates."""
    total = len(eval_set.cases)
    mine = outcome.results[candidate.role]
    cases = []
    for case in eval_set.cases:
        runs = mine.get(case.id)
        if runs is None:
            cases.append({"id": case.id, "passed": False, "runs": [], "not_run": True})
        else:
            cases.append({"id": case.id, "passed": case_passed(runs), "runs": [r.record() for r in runs]})
    pass_rate = sum(c["passed"] for c in cases) / total
    baseline_block = None
    if baseline is not None:
        theirs = outcome.results[baseline.role]
        outcomes = {case_id: case_passed(runs) for case_id, runs in theirs.items()}
        comparison = compare({c["id"]: c["passed"] for c in cases if c["id"] in mine}, outcomes)
        baseline_block = {
            "prompt": baseline.name,
            "version": baseline.version,
            "alias": baseline.alias,
            "content_sha256": baseline.content_hash,
            "pass_rate": sum(outcomes.values()) / total,
            "p_value": comparison.p_value,
            "regressed": comparison.regressed,
            "worsened": comparison.worsened,
            "improved": comparison.improved,
            "cases": {
                case_id: {
                    "passed": outcomes[case_id],
                    "passes": sum(r.passed for r in runs),
                    "runs": len(runs),
                }
                for case_id, runs in theirs.items()
            },
        }
    judge = eval_set.judge
    complete = not outcome.not_run
    return {
        "kind": "harness",
        "prompt": candidate.name,
        "version": candidate.version,
        "content_sha256": candidate.content_hash,
        "eval_set": {
            "path": display_path(eval_set_file),
            "prompt": eval_set.prompt,
            "sha256": eval_set.content_hash,
            "threshold": eval_set.threshold,
            "repeat": eval_set.repeat,
            "cases": total,
        },
        "threshold": eval_set.threshold,
        "pass_rate": pass_rate,
        "cases": cases,
        "baseline": baseline_block,
        "passed": complete
        and pass_rate >= eval_set.threshold
        and not (baseline_block and baseline_block["regressed"]),
        "models": {
            "candidate": candidate.prompt.model,
            "baseline": baseline.prompt.model if baseline else None,
            "judge": judge.model if judge else None,
        },
        "judge": {"model": judge.model, "params": {**JUDGE_DEFAULTS, **judge.params}} if judge else None,
        "run_id": outcome.run_id,
        "cost_usd": outcome.spent_usd,
        "complete": complete,
        "not_run": outcome.not_run,
        "max_cost_usd": outcome.max_cost,
        "calls": {"gateway": outcome.calls, "cached": outcome.cached_calls},
    }
