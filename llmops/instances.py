"""EC2 instance facts and regional list prices the settings checks and the cost estimate rely on.

The data lives next to this module, in llmops/pricing/: `catalogue.yaml` (hardware facts, the same
everywhere) and one `<region>.yaml` per priced region, each made of tables that name their source,
the date recorded and whether the figures were checked against that source (`verified`). A region
without a file is not priced: callers say so instead of borrowing another region's prices.

An instance type is *offered* in a region when the region's `offerings` table lists it (EC2
DescribeInstanceTypeOfferings, as recorded by moto); that is what the GPU-pool availability check
reads. Its price comes from the `ec2` table (verified list prices), else `ec2-estimated` or
`ec2-cpu` (figures derived from us-east-1's, marked unverified). Spot and reserved capacity are
priced at On-Demand: an upper bound, since spot prices vary by the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).parent / "pricing"
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpus: int
    gpu_model: str  # empty for CPU-only types
    gpu_memory_gib: int  # per GPU
    vcpus: int
    memory_gib: float
    arch: str  # "x86_64" | "arm64"

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    def usd_per_hour(self, region: str) -> float | None:
        """On-Demand Linux list price in `region`, or None (not priced or not offered there)."""
        table = region_prices(region)
        return table.instance_price(self.name) if table else None

    def usd_per_gpu_hour(self, region: str) -> float | None:
        price = self.usd_per_hour(region)
        return price / self.gpus if price is not None and self.gpus else None


@dataclass(frozen=True)
class Price:
    usd: float
    table: str
    source: str
    recorded: str | None
    verified: bool
    note: str

    @property
    def cite(self) -> str:
        when = f", recorded {self.recorded}" if self.recorded else ""
        return f"{self.source}{when}{'' if self.verified else ' (unverified)'}"


@dataclass(frozen=True)
class RegionPrices:
    region: str
    tables: dict[str, dict]

    def price(self, table: str, key: str) -> Price | None:
        data = self.tables.get(table)
        if not data or key not in data.get("prices", {}):
            return None
        return Price(
            float(data["prices"][key]),
            table,
            data["source"],
            data.get("recorded"),
            bool(data.get("verified")),
            data.get("note", ""),
        )

    def instance(self, name: str) -> Price | None:
        """An instance type's price: from the verified `ec2` table first, then the estimated ones."""
        for table in ("ec2", "ec2-estimated", "ec2-cpu"):
            found = self.price(table, name)
            if found:
                return found
        return None

    def instance_price(self, name: str) -> float | None:
        found = self.instance(name)
        return found.usd if found else None

    def offered(self, name: str) -> bool:
        """Whether `name` is offered in the region (its offerings table)."""
        return name in self.tables["offerings"]["types"]


_CATALOGUE = yaml.safe_load((DATA_DIR / "catalogue.yaml").read_text())
INSTANCE_TYPES: dict[str, InstanceType] = {row[0]: InstanceType(*row) for row in _CATALOGUE["types"]}
# Share of each vCPU a burstable type may use on average before it spends (or bills) CPU credits.
BURSTABLE_BASELINE: dict[str, float] = _CATALOGUE["burstable_baseline"]
GPU_INSTANCE_TYPES = {n: t for n, t in INSTANCE_TYPES.items() if t.gpus}
GPU_FAMILIES = sorted({t.family for t in GPU_INSTANCE_TYPES.values()})
PRICED_REGIONS = sorted(p.stem for p in DATA_DIR.glob("*-*-*.yaml"))


@cache
def region_prices(region: str) -> RegionPrices | None:
    """The region's price tables, or None when the region has no file (it is not priced)."""
    path = DATA_DIR / f"{region}.yaml"
    if region not in PRICED_REGIONS or not path.is_file():
        return None
    data = yaml.safe_load(path.read_text())
    return RegionPrices(data["region"], data["tables"])


def types_in_pool(instance_types: list[str], instance_families: list[str]) -> list[InstanceType]:
    """The known GPU instance types a pool may launch, from explicit types or whole families,
    in every region (see offered_in for one region's)."""
    chosen = [GPU_INSTANCE_TYPES[n] for n in instance_types if n in GPU_INSTANCE_TYPES]
    chosen += [t for t in GPU_INSTANCE_TYPES.values() if t.family in instance_families]
    return sorted(set(chosen), key=lambda t: (t.gpus, t.vcpus, t.name))


def offered_in(types: list[InstanceType], region: str) -> list[InstanceType]:
    """The types offered in `region`; all of them when the region is not priced (nothing known)."""
    table = region_prices(region)
    return types if table is None else [t for t in types if table.offered(t.name)]


def price_source(region: str) -> str:
    """The source and date of the region's verified EC2 prices."""
    table = region_prices(region)
    if table is None:
        return f"no price table for {region}"
    ec2 = table.tables["ec2"]
    return f"{ec2['source']}, recorded {ec2.get('recorded')}"


def availability_date(region: str) -> str:
    """Where the region's offerings were recorded."""
    table = region_prices(region)
    return f"offerings from {table.tables['offerings']['recorded']}" if table else "not recorded"
