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
"""Quality metrics of one run, from the placements and the fleet.

Definitions (also in ``doc/source/admin/simulator.rst``):

* *arrived demand*: GPUs asked for by the requests arrived so far, as a
  percentage of the fleet's GPUs; *allocation ratio*: GPUs given, same
  unit. Both are sampled at every whole percent of arrived demand.
* *unallocated GPUs at X%*: fleet GPUs minus GPUs given when the arrived
  demand first reaches X%.
* *isolation breaks*: GPU VMs that got a GPU whose IOMMU group holds a GPU
  given to another VM, or a GPU whose isolation is ``unknown``. A boot
  onto a GPU whose group another guest holds fails in real Nova ("group is
  not viable"): the simulator counts it as a
* *failed boots*: boot attempts that failed that way (each one a retry on
  the next alternate host; a VM whose attempts all fail is not placed).
* *1 NUMA / 1 switch*: share of the placed multi-GPU VMs whose GPUs sit
  on one NUMA node (under one PCIe switch), among those VMs the fleet
  allows there (no more GPUs than its largest one-node or one-switch
  block of an accepted model).
* *nova PCI ms*, *project ms*: mean time per request inside nova's PCI
  scheduling (PciPassthroughFilter, NUMATopologyFilter, PCIWeigher) and
  inside this project's GPUPassthroughFilter and GPUPassthroughWeigher.
* *stranded GPUs*: free GPUs, at the end, on hosts whose free vCPUs or
  free RAM are below the median 1-GPU request of the workload (no typical
  1-GPU VM can use them any more).

Pure module: reads placements and fleet data only.
"""

import collections
import dataclasses
import statistics
import typing

from gpu_passthrough_filter import tags


@dataclasses.dataclass
class Summary:
    """The headline numbers of one policy's run."""
    policy: str
    requests: int
    placed: int
    gpus_total: int
    allocated: int
    unallocated_at: typing.Dict[int, typing.Optional[int]]
    failed_by_gpus: typing.Dict[int, int]
    multi_gpu_vms: int
    one_numa_share: typing.Optional[float]
    one_switch_share: typing.Optional[float]
    isolation_breaks: int
    stranded_gpus: int
    ms_per_request: float
    us_per_host: float
    curve: typing.List[typing.Tuple[int, float]]
    seconds: float = 0.0
    nova_pci_ms: float = 0.0
    project_ms: float = 0.0
    failed_boots: int = 0


#: Nova's own PCI scheduling: its PCI and NUMA filters (or their fast
#: forms) and PCI weigher.
NOVA_PCI_PARTS = ('PciPassthroughFilter', 'NUMATopologyFilter',
                  'FastPciPassthroughFilter', 'FastNUMATopologyFilter',
                  'PCIWeigher')

#: This project's scheduler plugins.
PROJECT_PARTS = ('GPUPassthroughFilter', 'GPUPassthroughWeigher')


def part_ms(placements, names):
    """Mean milliseconds per request spent in the named plugins."""
    if not placements:
        return 0.0
    total = sum(seconds for placement in placements
                for name, seconds in placement.parts.items()
                if name in names)
    return 1000.0 * total / len(placements)


def gpu_index(fleet):
    """``{(host, address): SimGPU}`` of the fleet."""
    return {(host.name, gpu.address): gpu
            for host in fleet.hosts for gpu in host.gpus}


def allocation_curve(placements, gpus_total, upto=130):
    """``[(percent of arrived demand, allocation ratio %)]``, 1% steps."""
    curve, asked, given, step = [], 0, 0, 1
    for placement in placements:
        asked += placement.request.gpus
        given += len(placement.gpus)
        while step <= upto and asked * 100 >= step * gpus_total:
            curve.append((step, 100.0 * given / gpus_total))
            step += 1
    return curve


def unallocated_at(curve, gpus_total, percents=(100, 130)):
    """Unallocated GPUs when demand first reaches each percent."""
    by_step = dict(curve)
    return {percent: (None if percent not in by_step else
                      round(gpus_total * (1 - by_step[percent] / 100.0)))
            for percent in percents}


def failed_by_gpus(placements):
    """``{GPU count: failed requests}``."""
    failed = collections.Counter(p.request.gpus for p in placements
                                 if p.host is None)
    return dict(sorted(failed.items()))


def largest_blocks(gpus):
    """Largest one-NUMA-node and one-switch GPU blocks per GPU model.

    :param gpus: ``{(host, address): SimGPU}`` from :func:`gpu_index`.
    :returns: ``({model name: GPUs}, {model name: GPUs})``: the most GPUs
        of a model on one NUMA node of one host, and under one switch.
    """
    per_numa = collections.Counter()
    per_switch = collections.Counter()
    for (host, _), gpu in gpus.items():
        per_numa[(gpu.model.name, host, gpu.numa_node)] += 1
        if gpu.switch != tags.NO_SWITCH:
            per_switch[(gpu.model.name, host, gpu.switch)] += 1
    return _largest_by_model(per_numa), _largest_by_model(per_switch)


def _largest_by_model(counts):
    largest = {}
    for (model_name, _, _), count in counts.items():
        largest[model_name] = max(count, largest.get(model_name, 0))
    return largest


def _fits(request, largest):
    # Whether some host of the fleet has a block big enough for the VM,
    # of a model the VM accepts (any model when it names none).
    sizes = [size for model_name, size in largest.items()
             if not request.models or model_name in request.models]
    return bool(sizes) and request.gpus <= max(sizes)


def locality_shares(placements, gpus):
    """(multi-GPU VMs, % on one NUMA node, % under one switch).

    Each share counts only the VMs that the fleet allows there: a VM
    asking for more GPUs than the fleet's largest one-NUMA-node (or
    one-switch) block of an accepted model cannot be on one node (or
    switch) whatever the policy, e.g. an 8-GPU VM on 8-GPU hosts with
    two NUMA nodes. A share is None when no placed VM qualifies.
    """
    multi = [p for p in placements if p.host and len(p.gpus) > 1]
    if not multi:
        return 0, None, None
    numa_blocks, switch_blocks = largest_blocks(gpus)
    numa_vms = numa_hits = switch_vms = switch_hits = 0
    for placement in multi:
        sims = [gpus[(placement.host, address)] for address in placement.gpus]
        if _fits(placement.request, numa_blocks):
            numa_vms += 1
            numa_hits += len({gpu.numa_node for gpu in sims}) == 1
        if _fits(placement.request, switch_blocks):
            switch_vms += 1
            switches = {gpu.switch for gpu in sims}
            switch_hits += (len(switches) == 1 and
                            tags.NO_SWITCH not in switches)
    return (len(multi), _percent(numa_hits, numa_vms),
            _percent(switch_hits, switch_vms))


def _percent(part, whole):
    return 100.0 * part / whole if whole else None


def isolation_breaks(placements, gpus):
    """GPU VMs whose GPUs are not theirs alone to own (see module doc)."""
    owners = collections.defaultdict(set)
    for placement in placements:
        for address in placement.gpus:
            gpu = gpus[(placement.host, address)]
            owners[(placement.host, gpu.iommu_group)].add(placement.index)
    breaks = 0
    for placement in placements:
        for address in placement.gpus:
            gpu = gpus[(placement.host, address)]
            if (gpu.isolation == tags.UNKNOWN or
                    len(owners[(placement.host, gpu.iommu_group)]) > 1):
                breaks += 1
                break
    return breaks


def stranded_gpus(result, fleet, typical_shape):
    """Free GPUs on hosts without room for a typical 1-GPU VM."""
    vcpus, memory_mb = typical_shape
    stranded = 0
    for host in fleet.hosts:
        state = result.states[host.name]
        free = sum(pool['count'] for pool in (state.pci_stats.pools
                                              if state.pci_stats else ()))
        if not free:
            continue
        free_vcpus = (state.vcpus_total * (state.cpu_allocation_ratio or 1)
                      - state.vcpus_used)
        if free_vcpus < vcpus or state.free_ram_mb < memory_mb:
            stranded += free
    return stranded


def summarize(result, fleet, typical_shape, upto=130):
    """A :class:`Summary` of one :class:`~.runner.RunResult`."""
    placements = result.placements
    gpus = gpu_index(fleet)
    total = fleet.gpu_count
    curve = allocation_curve(placements, total, upto)
    multi, numa_share, switch_share = locality_shares(placements, gpus)
    seconds = [p.seconds for p in placements]
    per_host = [p.seconds / p.hosts_seen for p in placements if p.hosts_seen]
    return Summary(
        policy=result.policy.name, requests=len(placements),
        placed=sum(1 for p in placements if p.host),
        gpus_total=total,
        allocated=sum(len(p.gpus) for p in placements),
        unallocated_at=unallocated_at(curve, total),
        failed_by_gpus=failed_by_gpus(placements),
        multi_gpu_vms=multi, one_numa_share=numa_share,
        one_switch_share=switch_share,
        isolation_breaks=isolation_breaks(placements, gpus),
        stranded_gpus=stranded_gpus(result, fleet, typical_shape),
        ms_per_request=1000 * statistics.fmean(seconds) if seconds else 0,
        us_per_host=1e6 * statistics.fmean(per_host) if per_host else 0,
        curve=curve, seconds=result.seconds,
        nova_pci_ms=part_ms(placements, NOVA_PCI_PARTS),
        project_ms=part_ms(placements, PROJECT_PARTS),
        failed_boots=sum(p.failed_boots for p in placements))


def upper_bound_curve(placements, gpus_total, upto=130):
    """The bound no policy beats: min(arrived GPU demand, capacity)."""
    curve, asked, step = [], 0, 1
    for placement in placements:
        asked += placement.request.gpus
        while step <= upto and asked * 100 >= step * gpus_total:
            curve.append((step, 100.0 * min(asked, gpus_total) / gpus_total))
            step += 1
    return curve
