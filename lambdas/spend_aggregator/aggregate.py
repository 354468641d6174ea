"""Aggregation core shared by the spend-aggregator Lambda and `llmops cost aggregate`.

The standard library plus msgspec (packaged into the Lambda's zip, see Makefile
`lambda-deps`), no AWS calls and no side effects on import, so the CLI, the tests and the
benchmark import exactly the code the Lambda runs.

Input: LiteLLM spend-log records, i.e. `StandardLoggingPayload` dicts as the `s3_v2` logger
writes them (litellm/types/utils.py, litellm/integrations/s3_v2.py: one record per `.json`
object) or as batched JSON Lines (`.jsonl`), optionally gzip-compressed.

Output: one CloudWatch Embedded Metric Format record per (team, model, route) group, see
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
and, for eval coverage, one per (team, prompt, version) group: `coverage_records`, given a
function that tells whether a prompt version is covered (the caller looks that up in the registry).
Requests whose metadata carries `retrieval` (llmops.rag.retrieval_metadata) add, per group, the
age of the newest and the oldest retrieved document at request time (`emf_records`, after the
cost records; docs/retrieval.md "Age of what answered").

Memory is bounded by the number of groups: input is streamed line by line and only the
running sums per group are kept (a `.json` object holds one record and is read whole, up to
MAX_DOCUMENT_BYTES), plus two floats per request that carried retrieval metadata.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit

import msgspec

NAMESPACE = "LLMOps"
# (name, CloudWatch unit). Cost has no currency unit in CloudWatch; the name carries it.
METRICS = (
    ("CostUSD", "None"),
    ("PromptTokens", "Count"),
    ("CompletionTokens", "Count"),
    ("Requests", "Count"),
    ("Errors", "Count"),
)
DIMENSION_SETS = [
    ["Environment", "Team"],
    ["Environment", "Team", "Model"],
    ["Environment", "Model", "Route"],
]
# Eval coverage (docs/cost.md "Eval coverage"): requests counted for it (all but eval traffic) and
# those whose prompt version's latest eval record is a passing harness run.
COVERAGE_METRICS = (("CoverageRequests", "Count"), ("EvalCoveredRequests", "Count"))
COVERAGE_DIMENSION_SETS = [["Environment", "Team"]]
# Retrieved-document age (docs/retrieval.md): one value per request, so CloudWatch computes any
# statistic (dashboards: p50 and p90, Maximum of the oldest). EMF carries up to 100 values per metric.
RETRIEVAL_METRICS = (
    ("RetrievedNewestDocumentAgeSeconds", "Seconds"),
    ("RetrievedOldestDocumentAgeSeconds", "Seconds"),
)
RETRIEVAL_DIMENSION_SETS = [["Environment", "Team"], ["Environment", "Model", "Route"]]
MAX_EMF_VALUES = 100
# A registry prompt name (llmops/prompts/format.py NAME); anything else names no prompt version.
PROMPT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
MAX_VERSION_DIGITS = 9
UNASSIGNED = "unassigned"  # requests made with a key that belongs to no team
UNKNOWN_MODEL = "unknown"
SELF_HOSTED = "self-hosted"
EXTERNAL = "external"

# LiteLLM providers that only ever talk to servers we run (litellm/types/utils.py LlmProviders).
SELF_HOSTED_PROVIDERS = frozenset(
    {"hosted_vllm", "vllm", "ollama", "ollama_chat", "lm_studio", "llamafile", "xinference", "triton"}
)
# api_base hosts that are in-cluster or private even when the provider is generic (e.g. `openai/`
# pointed at an OpenAI-compatible vLLM Service).
_PRIVATE_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local", ".internal", ".local", "localhost")

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024  # a single-record `.json` object larger than this is malformed
MAX_DIMENSION_CHARS = 250  # CloudWatch allows 1024; long values are truncated, never rejected
MAX_MALFORMED_SAMPLES = 20  # examples kept per object for the malformed-lines log line

GZIP_MAGIC = b"\x1f\x8b"
READ_BUFFER = 1 << 20
_INF = float("inf")


def route_of(provider: object, api_base: object) -> str:
    """self-hosted when LiteLLM called a provider we host or a private/in-cluster api_base."""
    if isinstance(provider, str) and provider in SELF_HOSTED_PROVIDERS:
        return SELF_HOSTED
    if isinstance(api_base, str) and api_base:
        host = (urlsplit(api_base if "//" in api_base else "//" + api_base).hostname or "").lower()
        if host.endswith(_PRIVATE_SUFFIXES) or "." not in host:  # bare names are cluster-local
            return SELF_HOSTED
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return EXTERNAL
        return SELF_HOSTED if ip.is_private or ip.is_loopback else EXTERNAL
    return EXTERNAL


class _Labels(msgspec.Struct):
    """`metadata.spend_logs_metadata`: labels the client sent with the request."""

    team: Any = None


class _Requester(msgspec.Struct):
    """`metadata.requester_metadata`: the request's own `metadata` as the client sent it (LiteLLM's
    proxy copies it there, proxy/litellm_pre_call_utils.py). `PromptClient` puts the prompt's name
    and version in it; the eval runner adds `llmops_eval`."""

    prompt_name: Any = None
    prompt_version: Any = None
    llmops_eval: Any = None
    retrieval: Any = None  # llmops.rag.retrieval_metadata: what the answer was built from


class _Metadata(msgspec.Struct):
    """The parts of `metadata` that attribute a request to a team and to a prompt version."""

    user_api_key_team_id: Any = None
    spend_logs_metadata: _Labels | None = None
    requester_metadata: _Requester | None = None


class SpendFields(msgspec.Struct):
    """The fields of a LiteLLM `StandardLoggingPayload` that aggregation reads.

    msgspec decodes only these and skips everything else (`messages`, `response`,
    `model_map_information`: most of a record's bytes) while still checking that the whole
    line is valid JSON. Values stay `Any`: `Aggregator.add` applies the rules and names the
    problem, and a record whose shape does not fit (metadata that is not an object, a top
    level that is not an object) is decoded by `json.loads` instead.
    """

    response_cost: Any = msgspec.UNSET  # UNSET: not a spend-log record
    prompt_tokens: Any = None
    completion_tokens: Any = None
    status: Any = None
    model: Any = None
    model_group: Any = None
    custom_llm_provider: Any = None
    api_base: Any = None
    startTime: Any = None  # epoch seconds, as LiteLLM spells it: when the request arrived
    endTime: Any = None
    request_tags: Any = None
    metadata: _Metadata | None = None


_decode_fields = msgspec.json.Decoder(SpendFields).decode


def decode_record(data: bytes | str) -> SpendFields | object:
    """One JSON document: SpendFields when it has the expected shape, else what json.loads makes
    of it (a dict with odd metadata, a list, NaN that msgspec refuses). Malformed JSON raises
    json's ValueError, whose message names the problem and its column; so does nesting deeper
    than the decoders' recursion limit (about 1,000 levels), which LiteLLM never writes."""
    try:
        try:
            return _decode_fields(data)
        except ValueError:  # msgspec.DecodeError / ValidationError, or bytes that are not UTF-8
            return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply to decode") from None


def _fields_of(record: dict) -> SpendFields:
    """SpendFields of a record json.loads decoded (metadata of the wrong shape counts as none)."""
    get = record.get
    metadata = get("metadata")
    if type(metadata) is dict:
        labels = metadata.get("spend_logs_metadata")
        requester = metadata.get("requester_metadata")
        metadata = _Metadata(
            metadata.get("user_api_key_team_id"),
            _Labels(labels.get("team")) if type(labels) is dict else None,
            _Requester(
                requester.get("prompt_name"),
                requester.get("prompt_version"),
                requester.get("llmops_eval"),
                requester.get("retrieval"),
            )
            if type(requester) is dict
            else None,
        )
    else:
        metadata = None
    return SpendFields(
        response_cost=get("response_cost", msgspec.UNSET),
        prompt_tokens=get("prompt_tokens"),
        completion_tokens=get("completion_tokens"),
        status=get("status"),
        model=get("model"),
        model_group=get("model_group"),
        custom_llm_provider=get("custom_llm_provider"),
        api_base=get("api_base"),
        startTime=get("startTime"),
        endTime=get("endTime"),
        request_tags=get("request_tags"),
        metadata=metadata,
    )


def _team_of(metadata: _Metadata | None, tags: object) -> object:
    """The LiteLLM team that owns the virtual key; else the caller's own label.

    `user_api_key_team_id` comes from the key (authoritative: budget_guard blocks that id).
    Keys without a team can still be attributed by `metadata.spend_logs_metadata.team` or a
    `team:<name>` request tag, which the gateway copies into the record as the client sent
    them; a team-owned key can never be attributed to another team this way.
    """
    if metadata is not None:
        if metadata.user_api_key_team_id:
            return metadata.user_api_key_team_id
        labels = metadata.spend_logs_metadata
        if labels is not None and labels.team:
            return labels.team
    if type(tags) is list:
        for tag in tags:
            if type(tag) is str and tag.startswith("team:"):
                return tag[5:]
    return None


def is_eval_traffic(requester: _Requester | None) -> bool:
    """A request the eval harness made (`llmops_eval: true`; "true" too, since OpenAI-style
    metadata values are often strings)."""
    if requester is None:
        return False
    flag = requester.llmops_eval
    return flag is True or (type(flag) is str and flag.lower() == "true")


def prompt_of(requester: _Requester | None) -> tuple[str | None, int | None]:
    """(prompt name, version) the request names; None for what it does not name validly.
    `PromptClient` sends the version as a string ("2"); a number is accepted too."""
    if requester is None:
        return None, None
    name, version = requester.prompt_name, requester.prompt_version
    if type(name) is not str or not PROMPT_NAME.fullmatch(name):
        return None, None
    if (
        type(version) is str
        and version.isascii()
        and version.isdigit()
        and len(version) <= MAX_VERSION_DIGITS
    ):
        version = int(version)
    if type(version) is not int or not 0 < version < 10**MAX_VERSION_DIGITS:
        return name, None
    return name, version


def covers(record: object, name: str, version: int) -> bool:
    """Whether an eval record (a version's latest) makes the version covered: a harness run
    (`llmops eval run --record`) of this prompt and version that passed. Manual records never do."""
    return (
        type(record) is dict
        and record.get("kind") == "harness"
        and record.get("passed") is True
        and record.get("prompt") == name
        and type(record.get("version")) is int
        and record["version"] == version
    )


def _dimension(value: object, fallback: str) -> str:
    if not isinstance(value, str):
        return fallback
    value = value.strip()
    return value[:MAX_DIMENSION_CHARS] if value else fallback


class Aggregator:
    """Running sums per (team, model, route). Feed records or lines, then read `emf_records`.

    Malformed input never raises: it is counted in `malformed`, the first MAX_MALFORMED_SAMPLES
    are kept in `samples` as (line number, reason), and `on_malformed` (if given) sees every one.
    """

    __slots__ = (
        "_route_cache",
        "eval_requests",
        "groups",
        "malformed",
        "on_malformed",
        "prompts",
        "records",
        "retrieval",
        "retrieval_problems",
        "retrieval_samples",
        "samples",
    )

    def __init__(self, on_malformed: Callable[[int, str], None] | None = None):
        # group key -> [cost, prompt, completion, requests, errors, latest end time (s)]
        self.groups: dict[tuple[str, str, str], list] = {}
        # (team, prompt name | None, version | None) -> [requests, latest end time (s)], eval
        # traffic excluded (counted in eval_requests)
        self.prompts: dict[tuple[str, str | None, int | None], list] = {}
        self.eval_requests = 0
        # group key -> ([newest document age (s)], [oldest document age (s)]), one pair per request
        self.retrieval: dict[tuple[str, str, str], tuple[list[float], list[float]]] = {}
        # Retrieval metadata that could not be read: the record's cost still counts.
        self.retrieval_problems = 0
        self.retrieval_samples: list[tuple[int, str]] = []
        self.records = 0
        self.malformed = 0
        self.samples: list[tuple[int, str]] = []
        self.on_malformed = on_malformed
        self._route_cache: dict[tuple[object, object], str] = {}

    # -- input ---------------------------------------------------------------------------

    def bad(self, line_no: int, reason: str) -> None:
        self.malformed += 1
        if len(self.samples) < MAX_MALFORMED_SAMPLES:
            self.samples.append((line_no, reason))
        if self.on_malformed is not None:
            self.on_malformed(line_no, reason)

    def add(self, record: SpendFields | object, line_no: int = 1) -> bool:
        """Adds one decoded record; returns False (and counts it) when it is malformed."""
        if type(record) is not SpendFields:
            if not isinstance(record, dict):
                self.bad(line_no, f"expected a JSON object, got {type(record).__name__}")
                return False
            record = _fields_of(record)
        cost = record.response_cost
        if cost is msgspec.UNSET:  # every StandardLoggingPayload has it, even failures
            self.bad(line_no, "not a LiteLLM spend-log record (no response_cost)")
            return False
        prompt = record.prompt_tokens
        completion = record.completion_tokens
        # None means "not computed" (LiteLLM logs failures without usage): counts as zero.
        if cost is None:
            cost = 0.0
        if prompt is None:
            prompt = 0
        if completion is None:
            completion = 0
        # type() is exact: bool (a subclass of int) and numeric strings are malformed.
        if (
            type(cost) not in (float, int)
            or type(prompt) is not int
            or type(completion) is not int
            or not 0 <= cost < _INF  # also rejects NaN, which json accepts
            or prompt < 0
            or completion < 0
        ):
            self.bad(line_no, _number_problem(cost, prompt, completion))
            return False
        team = _team_of(record.metadata, record.request_tags)
        model = record.model_group or record.model
        provider = record.custom_llm_provider
        api_base = record.api_base
        try:
            route = self._route_cache[(provider, api_base)]
        except KeyError:
            route = route_of(provider, api_base)
            self._route_cache[(provider, api_base)] = route
        except TypeError:  # unhashable provider/api_base: not what LiteLLM writes
            self.bad(line_no, "custom_llm_provider and api_base must be strings")
            return False
        key = (_dimension(team, UNASSIGNED), _dimension(model, UNKNOWN_MODEL), route)
        end = record.endTime
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = [0.0, 0, 0, 0, 0, 0.0]
        group[0] += cost
        group[1] += prompt
        group[2] += completion
        group[3] += 1
        if record.status == "failure":
            group[4] += 1
        if type(end) in (float, int) and end > group[5]:
            group[5] = end
        requester = record.metadata.requester_metadata if record.metadata is not None else None
        if is_eval_traffic(requester):
            self.eval_requests += 1
        else:
            ref = (key[0], *prompt_of(requester))
            usage = self.prompts.get(ref)
            if usage is None:
                usage = self.prompts[ref] = [0, 0.0]
            usage[0] += 1
            if type(end) in (float, int) and end > usage[1]:
                usage[1] = end
        if requester is not None and requester.retrieval is not None:
            self._add_retrieval(key, requester.retrieval, record.startTime, line_no)
        self.records += 1
        return True

    def _add_retrieval(
        self, key: tuple[str, str, str], retrieval: object, start: object, line_no: int
    ) -> None:
        """Ages at request time of the newest and oldest retrieved document (future times read as 0:
        clock skew). Never raises: a problem is counted in retrieval_problems, the cost is kept."""
        problem = None
        if type(retrieval) is not dict:
            problem = "must be an object"
        elif type(start) not in (float, int) or not 0 < start < _INF:
            problem = "record has no startTime to measure the age from"
        else:
            raw = (retrieval.get("newest_source_updated_at"), retrieval.get("oldest_source_updated_at"))
            if raw == (None, None):
                return  # no dated documents retrieved: nothing to measure
            newest, oldest = _epoch(raw[0]), _epoch(raw[1])
            if newest is None or oldest is None or oldest > newest:
                problem = "newest/oldest_source_updated_at must both be RFC 3339 times, oldest <= newest"
            else:
                ages = self.retrieval.get(key)
                if ages is None:
                    ages = self.retrieval[key] = ([], [])
                ages[0].append(max(0.0, start - newest))
                ages[1].append(max(0.0, start - oldest))
                return
        self.retrieval_problems += 1
        if len(self.retrieval_samples) < MAX_MALFORMED_SAMPLES:
            self.retrieval_samples.append((line_no, f"metadata.requester_metadata.retrieval: {problem}"))

    def add_lines(self, lines: Iterable[bytes | str], first_line: int = 1) -> None:
        """JSON Lines: one record per line; blank lines are ignored, bad ones counted."""
        decode = decode_record
        add = self.add
        line_no = first_line - 1
        for line in lines:
            line_no += 1
            try:
                record = decode(line)
            except ValueError as err:
                if line.strip():
                    self.bad(line_no, f"not valid JSON ({_short(err)})")
                continue
            add(record, line_no)

    def add_document(self, data: bytes) -> None:
        """A `.json` object: one record (LiteLLM's s3_v2 layout). JSON Lines content is accepted."""
        try:
            record = decode_record(data)
        except ValueError as err:
            if "Extra data" in str(err):  # several records, one per line
                self.add_lines(data.splitlines())
            elif data.strip():
                self.bad(1, f"not valid JSON ({_short(err)})")
            return
        self.add(record, 1)

    def add_stream(self, stream: IO[bytes] | object, name: str) -> None:
        """Reads a file-like object (local file, S3 body); gzip is detected by its magic bytes.

        `name` decides the layout: `*.json` / `*.json.gz` is one document, anything else lines.
        """
        for kind, source in open_spend_log(stream, name):
            if kind == "document":
                data = source.read(MAX_DOCUMENT_BYTES + 1)
                if len(data) > MAX_DOCUMENT_BYTES:
                    self.bad(1, f"single-record .json object larger than {MAX_DOCUMENT_BYTES} bytes")
                else:
                    self.add_document(data)
            else:
                self.add_lines(source)

    # -- output --------------------------------------------------------------------------

    def totals(self) -> dict[str, float]:
        sums = [0.0, 0, 0, 0, 0]
        for group in self.groups.values():
            for i in range(5):
                sums[i] += group[i]
        return {name: sums[i] for i, (name, _) in enumerate(METRICS)}

    def emf_records(
        self, environment: str, source: str | None = None, now: float | None = None
    ) -> list[dict]:
        """One EMF record per group, sorted by (team, model, route); then, for the groups whose
        requests carried retrieval metadata, retrieval-age records (one value per request, up to
        MAX_EMF_VALUES per record).

        The timestamp is the group's latest request end time (so replays land where the cost
        was incurred), or `now` when no record carried one.
        """
        fallback_ms = int((time.time() if now is None else now) * 1000)
        out = []
        for (team, model, route), group in sorted(self.groups.items()):
            record: dict = {
                "_aws": {
                    "Timestamp": int(group[5] * 1000) if group[5] else fallback_ms,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": NAMESPACE,
                            "Dimensions": DIMENSION_SETS,
                            "Metrics": [{"Name": n, "Unit": u} for n, u in METRICS],
                        }
                    ],
                },
                "Environment": environment,
                "Team": team,
                "Model": model,
                "Route": route,
                "CostUSD": group[0],
                "PromptTokens": group[1],
                "CompletionTokens": group[2],
                "Requests": group[3],
                "Errors": group[4],
            }
            if source:
                record["SourceObject"] = source  # a property, not a dimension: no metric cost
            out.append(record)
        for key, (newest, oldest) in sorted(self.retrieval.items()):
            end = self.groups[key][5]
            for start in range(0, len(newest), MAX_EMF_VALUES):
                record = {
                    "_aws": {
                        "Timestamp": int(end * 1000) if end else fallback_ms,
                        "CloudWatchMetrics": [
                            {
                                "Namespace": NAMESPACE,
                                "Dimensions": RETRIEVAL_DIMENSION_SETS,
                                "Metrics": [{"Name": n, "Unit": u} for n, u in RETRIEVAL_METRICS],
                            }
                        ],
                    },
                    "Environment": environment,
                    "Team": key[0],
                    "Model": key[1],
                    "Route": key[2],
                    RETRIEVAL_METRICS[0][0]: newest[start : start + MAX_EMF_VALUES],
                    RETRIEVAL_METRICS[1][0]: oldest[start : start + MAX_EMF_VALUES],
                }
                if source:
                    record["SourceObject"] = source
                out.append(record)
        return out

    def prompt_versions(self) -> set[tuple[str, int]]:
        """Every (prompt, version) the counted requests name: what `coverage_records` asks about."""
        return {
            (name, version) for _, name, version in self.prompts if name is not None and version is not None
        }

    def coverage_records(
        self,
        environment: str,
        covered: Callable[[str, int], bool],
        source: str | None = None,
        now: float | None = None,
    ) -> list[dict]:
        """One EMF record per (team, prompt, version), sorted; `covered(name, version)` says whether
        the version's latest eval record `covers` it. Requests that name no valid prompt version are
        never covered. Prompt, PromptVersion and UncoveredRequests are properties, not dimensions:
        free, and what Logs Insights lists the uncovered prompt versions by."""
        fallback_ms = int((time.time() if now is None else now) * 1000)
        out = []
        for (team, name, version), (requests, end) in sorted(
            self.prompts.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2] or 0)
        ):
            is_covered = name is not None and version is not None and covered(name, version)
            record: dict = {
                "_aws": {
                    "Timestamp": int(end * 1000) if end else fallback_ms,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": NAMESPACE,
                            "Dimensions": COVERAGE_DIMENSION_SETS,
                            "Metrics": [{"Name": n, "Unit": u} for n, u in COVERAGE_METRICS],
                        }
                    ],
                },
                "Environment": environment,
                "Team": team,
                "CoverageRequests": requests,
                "EvalCoveredRequests": requests if is_covered else 0,
                "UncoveredRequests": 0 if is_covered else requests,
            }
            if name is not None:
                record["Prompt"] = name
            if version is not None:
                record["PromptVersion"] = version
            if source:
                record["SourceObject"] = source
            out.append(record)
        return out


def _epoch(value: object) -> float | None:
    """An RFC 3339 string as epoch seconds (naive means UTC); None for anything else."""
    if type(value) is not str:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def open_spend_log(stream: IO[bytes] | object, name: str) -> Iterator[tuple[str, IO[bytes]]]:
    """Yields one ("document" | "lines", binary stream) for the object, gunzipped if needed."""
    # Always our own 1 MiB buffer: a line is ~11 KB, and reading lines through a default 8 KiB
    # buffer (open()'s) costs as much as decoding them.
    raw = io.BufferedReader(_Readable(stream), READ_BUFFER)
    if raw.peek(2)[:2] == GZIP_MAGIC:
        raw = io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), READ_BUFFER)
    base = name[:-3] if name.endswith(".gz") else name
    yield ("document" if base.endswith(".json") else "lines"), raw


class _Readable(io.RawIOBase):
    """Adapts anything with read(n) (botocore StreamingBody, open files) to io.RawIOBase."""

    def __init__(self, stream: object):
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


def _number_problem(cost: object, prompt: object, completion: object) -> str:
    for field, value, kinds in (
        ("response_cost", cost, (float, int)),
        ("prompt_tokens", prompt, (int,)),
        ("completion_tokens", completion, (int,)),
    ):
        if type(value) not in kinds:
            return f"{field} must be a number, got {json.dumps(value)[:40]}"
        if not 0 <= value < _INF:
            return f"{field} must be a finite number >= 0, got {value}"
    return "bad numbers"


def _short(err: ValueError) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at column {err.colno}"
    return str(err)[:80]  # e.g. bytes that are not UTF-8


# -- parallel replay (CLI backfills and the benchmark; the Lambda reads one object at a time) --


def merge(into: Aggregator, other: Aggregator) -> None:
    """Adds `other`'s sums into `into` (for aggregating parts of one file separately)."""
    for key, group in other.groups.items():
        mine = into.groups.get(key)
        if mine is None:
            into.groups[key] = list(group)
            continue
        for i in range(5):
            mine[i] += group[i]
        mine[5] = max(mine[5], group[5])
    for ref, usage in other.prompts.items():
        mine = into.prompts.setdefault(ref, [0, 0.0])
        mine[0] += usage[0]
        mine[1] = max(mine[1], usage[1])
    for key, (newest, oldest) in other.retrieval.items():
        mine = into.retrieval.setdefault(key, ([], []))
        mine[0].extend(newest)
        mine[1].extend(oldest)
    into.retrieval_problems += other.retrieval_problems
    into.retrieval_samples.extend(
        other.retrieval_samples[: max(0, MAX_MALFORMED_SAMPLES - len(into.retrieval_samples))]
    )
    into.eval_requests += other.eval_requests
    into.records += other.records
    into.malformed += other.malformed
    into.samples.extend(other.samples[: max(0, MAX_MALFORMED_SAMPLES - len(into.samples))])


class _Range(io.RawIOBase):
    """Bytes [start, end) of a file."""

    def __init__(self, path: str, start: int, end: int):
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        n = self._file.readinto(view)
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _line_starts(path: str, parts: int) -> list[int]:
    """Offsets that split an uncompressed JSON Lines file into `parts` ranges at line starts."""
    import os

    size = os.path.getsize(path)
    offsets = [0]
    with open(path, "rb") as f:
        for i in range(1, parts):
            f.seek(max(offsets[-1], size * i // parts))
            f.readline()
            offsets.append(min(f.tell(), size))
    offsets.append(size)
    return offsets


def _aggregate_range(args: tuple[str, int, int]) -> Aggregator:
    path, start, end = args
    aggregator = Aggregator()
    with io.BufferedReader(_Range(path, start, end), READ_BUFFER) as reader:
        aggregator.add_lines(reader)
    return aggregator


def parallel_aggregate(path: str, workers: int) -> Aggregator:
    """Aggregates an uncompressed `.jsonl` file in `workers` processes (line numbers in
    malformed-line samples are then relative to each part)."""
    from concurrent.futures import ProcessPoolExecutor

    offsets = _line_starts(path, workers)
    ranges = [(path, offsets[i], offsets[i + 1]) for i in range(workers)]
    total = Aggregator()
    with ProcessPoolExecutor(workers) as pool:
        for part in pool.map(_aggregate_range, ranges):
            merge(total, part)
    return total
