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
"""Host scorers: interchangeable functions with one signature.

Every scorer is ``scorer(index, request, chosen) -> float`` where ``index``
is the host's :class:`~.host_index.HostIndex`, ``request`` the
:class:`~.model.GPURequest` and ``chosen`` the :class:`~.feasibility.GPUSet`
the filter picked for this host (``None`` for a request without GPUs or a
host without a feasible set). The result is in [0.0, 1.0], higher is a
better host. Values are raw and comparable between hosts: nova's weight
handler normalises the weigher's sum over the candidate hosts, so a scorer
must not normalise per host. A scorer that has no opinion on a request
returns the same constant for every host (:data:`NEUTRAL`).

The GPUPassthroughWeigher loads them by name from the stevedore namespace
:data:`NAMESPACE` (``[gpu_passthrough] scorers``) and sums them, each times
its ``[gpu_passthrough] scorer_multipliers`` entry.

Pure module: no nova, oslo or openstacksdk import.
"""

import collections
import math

from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.policy import workload_profile

#: Stevedore namespace of the scorers (``setup.cfg`` entry points).
NAMESPACE = 'gpu_passthrough_filter.scorers'

#: Score of a scorer without an opinion (same for every host).
NEUTRAL = 0.0

#: Fragmentation loss, in GPUs, that halves the fragmentation score: a
#: whole 8-GPU host broken for a small guest.
FRAGMENTATION_SCALE = 8.0

#: Weight of one stranded GPU in the fragmentation loss: a stranded GPU
#: is lost for the guest's lifetime, a broken block is only smaller.
STRANDED_WEIGHT = 4.0

#: Penalty per free GPU for a guest without GPUs that strands nothing:
#: hosts without free GPUs still win ties.
RESERVE_TOUCH = 0.02


def _matching_free(index, request):
    demands = [d for d in request.demands if d.count > 0]
    return sum(1 for address in index.usable
               if any(d.accepts(index.gpus[address].model)
                      for d in demands))


def best_fit(index, request, chosen):
    """Packing: the host left with the fewest matching free GPUs wins.

    Rule: ``1 / (1 + left)`` where ``left`` is the number of free GPUs of
    the requested models still free after placement (GPUs stranded by the
    placement count as left: stranding is not packing). 1.0 for a host
    the guest fills exactly. Neutral for guests without GPUs.

    :param index: the host's :class:`~.host_index.HostIndex`.
    :param request: the :class:`~.model.GPURequest`.
    :param chosen: the :class:`~.feasibility.GPUSet` picked, or None.
    """
    if not request.wants_gpus or chosen is None:
        return NEUTRAL
    left = max(_matching_free(index, request) - len(chosen), 0)
    return 1.0 / (1.0 + left)


def locality(index, request, chosen):
    """Quality of the chosen set's PCIe/NUMA locality.

    Rule: for multi-GPU guests one switch 1.0, one NUMA node 0.5, across
    NUMA nodes 0.0; for a 1-GPU guest 1.0 when the GPU's NUMA node is
    known, 0.0 otherwise. Neutral for guests without GPUs.

    :param index: the host's :class:`~.host_index.HostIndex`.
    :param request: the :class:`~.model.GPURequest`.
    :param chosen: the :class:`~.feasibility.GPUSet` picked, or None.
    """
    if not request.wants_gpus or chosen is None:
        return NEUTRAL
    if request.gpu_count < 2:
        return 1.0 if chosen.numa_node is not None else 0.0
    return {feasibility.SetLocality.SWITCH: 1.0,
            feasibility.SetLocality.NUMA: 0.5,
            feasibility.SetLocality.CROSS: 0.0}[chosen.level]


def fragmentation(index, request, chosen):
    """Keep the largest aligned free blocks whole.

    Rule: the aligned blocks are PCIe switches, NUMA nodes and the host.
    A placement that touches a fully free block without taking all of it
    breaks it and loses the block's size (the 2-, 4- and 8-GPU guests it
    could have held); a block taken whole is a perfect fit and loses
    nothing; every stranded GPU loses :data:`STRANDED_WEIGHT`. Score
    ``1 / (1 + loss / FRAGMENTATION_SCALE)``: 1.0 breaks nothing.
    Neutral for guests without GPUs.

    :param index: the host's :class:`~.host_index.HostIndex`.
    :param request: the :class:`~.model.GPURequest`.
    :param chosen: the :class:`~.feasibility.GPUSet` picked, or None.
    """
    if not request.wants_gpus or chosen is None:
        return NEUTRAL
    loss = chosen.broken + STRANDED_WEIGHT * chosen.stranded
    return 1.0 / (1.0 + loss / FRAGMENTATION_SCALE)


def gpu_host_reserve(index, request, chosen):
    """Guests without GPUs keep off hosts with free GPUs.

    Rule: each free GPU needs its share of the host's vCPUs and RAM
    (host total / number of GPUs). A guest without GPUs that takes more
    than the spare beyond those shares strands GPUs: ``stranded`` is the
    number of GPU shares it eats (the worse of CPU and RAM). Score
    ``1 / (1 + stranded + RESERVE_TOUCH * free GPUs)``; 1.0 for a host
    without free GPUs. When a host total is unknown the guest's share of
    the free amount stands in. Neutral (1.0) for guests with GPUs.

    :param index: the host's :class:`~.host_index.HostIndex`.
    :param request: the :class:`~.model.GPURequest`.
    :param chosen: unused (guests without GPUs get no set).
    """
    free_gpus = index.free
    if request.wants_gpus or free_gpus == 0:
        return 1.0
    host = index.host
    stranded = max(
        _stranded_gpus(request.vcpus, host.free_vcpus, host.total_vcpus,
                       free_gpus, index.total),
        _stranded_gpus(request.ram_mb, host.free_ram_mb, host.total_ram_mb,
                       free_gpus, index.total))
    return 1.0 / (1.0 + stranded + RESERVE_TOUCH * free_gpus)


def resource_balance(index, request, chosen):
    """GPU guests keep enough CPU and RAM beside the GPUs they leave free.

    Rule: the GPUs still free after the placement each need their share of
    the host's vCPUs and RAM (host total / number of GPUs), as in
    :func:`gpu_host_reserve`. A GPU guest that takes more CPU or RAM than
    its own GPUs' shares plus the host's spare eats the shares of free
    GPUs and strands them. Score ``1 / (1 + stranded)``: 1.0 strands
    nothing, or leaves no free GPU. Neutral (1.0) for guests without GPUs
    (see :func:`gpu_host_reserve`) and hosts without a feasible set.

    :param index: the host's :class:`~.host_index.HostIndex`.
    :param request: the :class:`~.model.GPURequest`.
    :param chosen: the :class:`~.feasibility.GPUSet` picked, or None.
    """
    if not request.wants_gpus or chosen is None:
        return 1.0
    left = index.free - len(chosen) - chosen.stranded
    if left <= 0:
        return 1.0
    host = index.host
    stranded = max(
        _stranded_gpus(request.vcpus, host.free_vcpus, host.total_vcpus,
                       left, index.total),
        _stranded_gpus(request.ram_mb, host.free_ram_mb, host.total_ram_mb,
                       left, index.total))
    return 1.0 / (1.0 + stranded)


def _stranded_gpus(wanted, free, total, free_gpus, total_gpus):
    # GPUs (possibly fractional) whose CPU or RAM share ``wanted`` eats.
    wanted = max(float(wanted or 0), 0.0)
    if wanted == 0.0 or free is None:
        return 0.0
    free = max(float(free), 0.0)
    per_gpu = (float(total) / total_gpus
               if total is not None and total_gpus > 0 else 0.0)
    # NOTE: a tiny total (hypothesis found 5e-324) underflows to a zero
    # share per GPU: treated like an unknown total.
    if per_gpu <= 0.0:
        share = 1.0 if free <= 0.0 else min(wanted / free, 1.0)
        return free_gpus * share
    reserved = free_gpus * per_gpu
    spare = max(free - reserved, 0.0)
    eaten = min(max(wanted - spare, 0.0), reserved)
    return eaten / per_gpu


class FragmentationGradient(object):
    """Place each guest where the expected fragmentation grows least.

    Rule (after Weng et al., ATC'23, for whole GPUs): the expected
    fragmentation of a host is the number of its free GPUs that guests
    drawn from the recent GPU request mix would leave unused, for lack of
    vCPUs, RAM or enough free GPUs of an accepted model (see
    :func:`.workload_profile.expected_fragmentation`). The score of a host is
    ``1 / (1 + 2 ** delta)`` where ``delta`` is the growth, in GPUs, that
    the placement causes: a guest that takes GPUs the mix could not use
    scores above 0.5, one that leaves free GPUs without the vCPUs or RAM
    the mix needs scores below. Guests without GPUs are scored too (they
    strand GPUs by eating vCPUs and RAM); only GPU guests shape the mix.
    Neutral for a GPU request without a feasible set on the host.

    Cold start: a scheduler that has just started (each nova-scheduler
    worker learns alone) knows nothing of the sizes to come. A prior mix
    stands in: guests of 1, 2, 4, 8, ... GPUs (up to the host's count) in
    equal shares, each GPU with the host's vCPU and RAM share per GPU. It
    is the whole mix until a GPU request is seen, and afterwards breaks
    the ties of the learned mix only (weight :data:`PRIOR_WEIGHT`): a mix
    of 1-GPU guests alone finds every placement equal, and the prior then
    packs them where they break no larger free block.

    Stateful: the weigher calls :meth:`observe` with every request (the
    ones GPUPassthroughFilter recorded, or its own) before it weighs that
    request's hosts, so the mix includes the guest being placed.

    :param window: GPU requests the profile remembers.
    """

    def __init__(self, window=1000):
        self.profile = workload_profile.WorkloadProfile(window)

    def observe(self, request):
        """Add one request to the workload profile.

        :param request: the :class:`~.model.GPURequest`.
        """
        self.profile.observe(workload_profile.shape_of(request))

    def __call__(self, index, request, chosen):
        if request.wants_gpus and chosen is None:
            return NEUTRAL
        learned = self.profile.mix()
        prior = index.cached(('fragmentation_gradient', 'prior'),
                             lambda: prior_mix(index))
        before = index.cached(('fragmentation_gradient', 'free'),
                              lambda: free_resources(index))
        taken = collections.Counter()
        if chosen is not None:
            taken.update(index.gpus[a].model for a in chosen.addresses)
            taken.update(index.gpus[a].model for a in
                         feasibility.stranded_mates(index, chosen.addresses))
        placed = workload_profile.after(before, request.vcpus,
                                        request.ram_mb, taken)
        # NOTE: the host's own fragmentation is not cached: the mix changes
        # with every GPU request.
        delta = workload_profile.fragmentation_delta(before, placed,
                                                     learned or prior)
        if learned:
            # NOTE: the expectation is linear in the mix, so the prior's
            # share is its own delta, scaled down to a tie-breaker.
            delta += PRIOR_WEIGHT * workload_profile.fragmentation_delta(
                before, placed, prior)
        # NOTE: bounded, monotone, 0.5 for no change; exp() would overflow
        # on a pathological delta.
        return 1.0 / (1.0 + math.pow(2.0, max(min(delta, 64.0), -64.0)))


#: Weight of the cold-start prior once a GPU request has been seen: far
#: below any difference the learned mix makes (a share of 1/window of one
#: GPU), so it decides only between placements the learned mix finds equal.
PRIOR_WEIGHT = 1e-6


def prior_mix(index):
    """The cold-start mix of one host: 1, 2, 4, ... GPUs, equal shares.

    Each GPU comes with the host's vCPU and RAM share per GPU (as
    gpu_host_reserve assumes); unknown totals count as 0. A host without
    GPUs gets one 1-GPU shape (it has no fragments either way).
    """
    host, gpus = index.host, max(index.total, 1)
    vcpus = float(host.total_vcpus or 0) / gpus
    ram_mb = float(host.total_ram_mb or 0) / gpus
    sizes = [1 << power for power in range(gpus.bit_length())]
    return tuple((workload_profile.Shape(size, vcpus * size, ram_mb * size),
                  1.0 / len(sizes)) for size in sizes)


def free_resources(index):
    """The :class:`~.workload_profile.Resources` a host has free now.

    :param index: the host's :class:`~.host_index.HostIndex`.
    """
    by_model = collections.Counter(index.gpus[a].model for a in index.usable)
    host = index.host
    return workload_profile.Resources(dict(by_model), host.free_vcpus,
                                      host.free_ram_mb)


#: Every scorer of this module by its entry-point name: a function, or a
#: class whose instances keep state (see :func:`instantiate`).
SCORERS = {
    'best_fit': best_fit,
    'locality': locality,
    'fragmentation': fragmentation,
    'gpu_host_reserve': gpu_host_reserve,
    'resource_balance': resource_balance,
    'fragmentation_gradient': FragmentationGradient,
}


def instantiate(plugin):
    """The scorer callable of an entry point.

    A function as it is, an instance for a class (one per weigher, as nova
    keeps one weigher per scheduler process).

    :param plugin: what the entry point loads.
    """
    return plugin() if isinstance(plugin, type) else plugin


def weighted_sum(index, request, chosen, scorers, multipliers=None):
    """Sum of ``scorers`` on one host, each times its multiplier.

    :param index: the host's :class:`~.host_index.HostIndex`.
    :param request: the :class:`~.model.GPURequest`.
    :param chosen: the :class:`~.feasibility.GPUSet` picked, or None.
    :param scorers: a mapping name -> scorer function.
    :param multipliers: a mapping name -> float; missing names weigh 1.0.
    """
    multipliers = multipliers or {}
    return sum(float(multipliers.get(name, 1.0)) *
               scorer(index, request, chosen)
               for name, scorer in scorers.items())
