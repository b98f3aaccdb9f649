# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.
"""Plain data of the decision core: what a host offers, what a guest asks.

The nova adapters translate ``HostState``/``RequestSpec`` into these types;
the simulator and the tests build them directly. Pure module: no nova, oslo
or openstacksdk import.
"""

import dataclasses
import enum
import typing

from gpu_passthrough_filter import tags


# NOTE: what each value means is written once, in
# extra_specs.PolicySpec.value_descriptions (validators, options, docs).

class Isolation(str, enum.Enum):
    """``gpu_passthrough:isolation`` extra spec values."""
    STRICT = 'strict'
    ANY = 'any'


class NumaAffinity(str, enum.Enum):
    """``gpu_passthrough:numa_affinity`` extra spec values."""
    REQUIRED = 'required'
    PREFERRED = 'preferred'
    NONE = 'none'


class Locality(str, enum.Enum):
    """``gpu_passthrough:locality`` extra spec values (multi-GPU guests)."""
    SWITCH = 'switch'
    NUMA = 'numa'
    ANY = 'any'


@dataclasses.dataclass(frozen=True)
class GPUView:
    """One passthrough GPU of a host, as the scheduler sees it.

    :param address: PCI address, lower-case, e.g. ``"0000:81:00.0"``.
    :param model: ``"<vendor_id>:<product_id>"`` in lower-case hex.
    :param numa_node: host NUMA node, or None when unknown.
    :param iommu_group: IOMMU group identifier, or None when unknown.
    :param isolation: one of :data:`gpu_passthrough_filter.tags.
        ISOLATION_VERDICTS`.
    :param switch: identifier of the PCIe switch above the GPU, or None
        when it hangs off a root port directly or nothing is known.
    :param root: identifier of the root port/complex, or None.
    :param free: False when the GPU is given to a guest (or reserved).
    """
    address: str
    model: str
    numa_node: typing.Optional[int] = None
    iommu_group: typing.Optional[str] = None
    isolation: str = tags.UNKNOWN
    switch: typing.Optional[str] = None
    root: typing.Optional[str] = None
    free: bool = True


@dataclasses.dataclass(frozen=True)
class HostView:
    """The GPU-relevant state of one host.

    :param name: host name, for log messages.
    :param gpus: every passthrough GPU of the host, free or not.
    :param free_vcpus: vCPUs still free (None: unknown or not limited).
    :param free_ram_mb: RAM still free in MiB (None: unknown).
    :param total_vcpus: vCPUs of the host (None: unknown).
    :param total_ram_mb: RAM of the host in MiB (None: unknown).
    """
    name: str
    gpus: typing.Tuple[GPUView, ...] = ()
    free_vcpus: typing.Optional[float] = None
    free_ram_mb: typing.Optional[float] = None
    total_vcpus: typing.Optional[float] = None
    total_ram_mb: typing.Optional[float] = None


@dataclasses.dataclass(frozen=True)
class GPUDemand:
    """GPUs of one PCI alias: ``count`` GPUs of any of ``models``.

    :param count: number of GPUs asked for.
    :param models: accepted models (``"vendor:product"``); empty means any.
    """
    count: int
    models: typing.FrozenSet[str] = frozenset()

    def accepts(self, gpu_model):
        """True when a GPU of ``gpu_model`` may serve this demand."""
        return not self.models or gpu_model in self.models


@dataclasses.dataclass(frozen=True)
class GPURequest:
    """What one guest asks for.

    :param demands: one entry per PCI alias of the flavor; empty for a
        guest without GPUs.
    :param isolation: IOMMU isolation policy.
    :param numa_affinity: NUMA policy for the GPUs.
    :param locality: PCIe locality requirement for multi-GPU guests.
    :param vcpus: vCPUs of the guest.
    :param ram_mb: RAM of the guest in MiB.
    """
    demands: typing.Tuple[GPUDemand, ...] = ()
    isolation: Isolation = Isolation.STRICT
    numa_affinity: NumaAffinity = NumaAffinity.PREFERRED
    locality: Locality = Locality.ANY
    vcpus: float = 0
    ram_mb: float = 0

    @property
    def gpu_count(self):
        return sum(demand.count for demand in self.demands)

    @property
    def wants_gpus(self):
        return self.gpu_count > 0
