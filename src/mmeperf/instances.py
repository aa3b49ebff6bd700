"""SageMaker instance types: size, price, and how the local MME emulates each one.

Prices are on-demand real-time inference rates in us-east-1, USD per instance-hour, as listed
on the public SageMaker pricing page when ``PRICES_AS_OF`` says; they change, so every report
prints that date and users can pass their own catalog (``InstanceCatalog.from_file``).

Emulation (what ``mmeperf serve --instance-profile`` does on a smaller machine): the memory
budget of the model cache is the instance's memory less a container base overhead, and every
loaded model is charged a per-model overhead on top of its own bytes, because SageMaker's
CPU containers (MMS) run a worker process per loaded model. That accounting, not the host's
RAM, decides when models are unloaded. CPU is *not* emulated: the local server uses the host's
cores, and its inference pool gets ``min(vcpus, host cores)`` threads. Reports label it.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmeperf._files import read_list
from mmeperf._types import PathLike
from mmeperf.errors import ConfigurationError

__all__ = ["DEFAULT_CATALOG", "PRICES_AS_OF", "InstanceCatalog", "InstanceProfile"]

#: When the prices below were read from the public price list (approximate month).
PRICES_AS_OF = "2024-06"
_GiB = 2**30
_MiB = 2**20


class InstanceProfile(BaseModel):
    """One SageMaker instance type."""

    model_config = ConfigDict(frozen=True)

    name: str
    """SageMaker name, e.g. ``ml.c5.xlarge``."""
    vcpus: int
    """Virtual CPUs."""
    memory_gib: float
    """Instance memory in GiB."""
    gpus: int = 0
    """Number of GPUs."""
    gpu_model: str | None = None
    """GPU model, e.g. ``T4``."""
    gpu_memory_gib: float = 0.0
    """Memory of each GPU in GiB."""
    price_per_hour_usd: float
    """On-demand real-time inference price, us-east-1, USD per hour."""
    price_as_of: str = PRICES_AS_OF
    """When the price was read."""
    base_overhead_bytes: int = Field(default=1 * _GiB)
    """Memory the OS, the model server and its front end hold before any model is loaded."""
    per_model_overhead_bytes: int = Field(default=200 * _MiB)
    """Memory each loaded model costs beyond its own bytes (a CPU container's worker process)."""
    usable_memory_fraction: float = 0.9
    """Share of memory the MME lets models use before it unloads (headroom for requests)."""

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * _GiB)

    @property
    def memory_budget_bytes(self) -> int:
        """The model-cache budget the local MME uses to emulate this instance."""
        budget = int(self.memory_bytes * self.usable_memory_fraction) - self.base_overhead_bytes
        return max(budget, 0)

    def models_that_fit(self, model_bytes: int) -> int:
        """How many models of ``model_bytes`` the emulated cache holds at once."""
        return self.memory_budget_bytes // max(model_bytes + self.per_model_overhead_bytes, 1)

    def cost_per_million(self, requests_per_second: float, *, instance_count: int = 1) -> float:
        """USD per million inferences at a sustained ``requests_per_second``."""
        if requests_per_second <= 0:
            return float("inf")
        hourly = self.price_per_hour_usd * instance_count
        return hourly / (requests_per_second * 3600) * 1e6


def _cpu(name: str, vcpus: int, memory_gib: float, price: float) -> InstanceProfile:
    return InstanceProfile(name=name, vcpus=vcpus, memory_gib=memory_gib, price_per_hour_usd=price)


def _gpu(
    name: str, vcpus: int, memory_gib: float, gpus: int, gpu: str, gpu_gib: float, price: float
) -> InstanceProfile:
    # GPU containers (Triton) hold models in one process: no per-model worker overhead.
    return InstanceProfile(
        name=name, vcpus=vcpus, memory_gib=memory_gib, gpus=gpus, gpu_model=gpu,
        gpu_memory_gib=gpu_gib, price_per_hour_usd=price, per_model_overhead_bytes=0,
    )


_BUILTIN: tuple[InstanceProfile, ...] = (
    _cpu("ml.c5.large", 2, 4, 0.102),
    _cpu("ml.c5.xlarge", 4, 8, 0.204),
    _cpu("ml.c5.2xlarge", 8, 16, 0.408),
    _cpu("ml.c5.4xlarge", 16, 32, 0.816),
    _cpu("ml.c5.9xlarge", 36, 72, 1.836),
    _cpu("ml.m5.large", 2, 8, 0.115),
    _cpu("ml.m5.xlarge", 4, 16, 0.23),
    _cpu("ml.m5.2xlarge", 8, 32, 0.461),
    _cpu("ml.m5.4xlarge", 16, 64, 0.922),
    _cpu("ml.m5.12xlarge", 48, 192, 2.765),
    _cpu("ml.r5.large", 2, 16, 0.151),
    _cpu("ml.r5.xlarge", 4, 32, 0.302),
    _cpu("ml.r5.2xlarge", 8, 64, 0.605),
    _cpu("ml.r5.4xlarge", 16, 128, 1.21),
    _gpu("ml.g4dn.xlarge", 4, 16, 1, "T4", 16, 0.7364),
    _gpu("ml.g4dn.2xlarge", 8, 32, 1, "T4", 16, 0.94),
    _gpu("ml.g4dn.4xlarge", 16, 64, 1, "T4", 16, 1.505),
    _gpu("ml.g4dn.8xlarge", 32, 128, 1, "T4", 16, 2.72),
    _gpu("ml.g4dn.12xlarge", 48, 192, 4, "T4", 16, 4.89),
    _gpu("ml.g5.xlarge", 4, 16, 1, "A10G", 24, 1.408),
    _gpu("ml.g5.2xlarge", 8, 32, 1, "A10G", 24, 1.515),
    _gpu("ml.g5.4xlarge", 16, 64, 1, "A10G", 24, 2.03),
    _gpu("ml.g5.8xlarge", 32, 128, 1, "A10G", 24, 3.06),
    _gpu("ml.g5.12xlarge", 48, 192, 4, "A10G", 24, 7.09),
    _gpu("ml.p3.2xlarge", 8, 61, 1, "V100", 16, 3.825),
)


class InstanceCatalog:
    """Instance types by name; the built-in table, or one loaded from a JSON/YAML file."""

    def __init__(self, profiles: tuple[InstanceProfile, ...] | list[InstanceProfile]) -> None:
        self._by_name = {p.name: p for p in profiles}

    @classmethod
    def from_file(cls, path: PathLike) -> InstanceCatalog:
        """A list of InstanceProfile fields in JSON or YAML."""
        rows = read_list(path, "instance catalog")
        try:
            return cls([InstanceProfile.model_validate(row) for row in rows])
        except ValidationError as exc:
            raise ConfigurationError(f"Invalid instance profile in {path}: {exc}") from exc

    def get(self, name: str) -> InstanceProfile:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigurationError(
                f"Unknown instance type {name!r}; expected one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return list(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[InstanceProfile]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


DEFAULT_CATALOG = InstanceCatalog(_BUILTIN)
