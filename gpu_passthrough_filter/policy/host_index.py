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
"""A per-host precomputed view of a :class:`~.model.HostView`.

:class:`HostIndex` is built once per host state in O(number of GPUs) and
answers the questions every request asks again: which GPUs may be given
(IOMMU groups are units), how many are free per PCIe switch and per NUMA
node, which aligned blocks are still entirely free. The nova adapters cache
one per ``HostState`` and drop it when the host's PCI pools change; the
simulator does the same per simulated host.

Pure module: no nova, oslo or openstacksdk import.
"""

import dataclasses

from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter import tags

#: How many request results one index remembers; an index lives as long as
#: its host state, which sees a handful of distinct requests at most.
_CACHE_SIZE = 64


class Unit(object):
    """GPUs that are given to a guest together, or not at all.

    Under strict isolation a unit is a whole IOMMU group; with isolation
    ``any`` each GPU is its own unit (its free group mates are then
    stranded, see ``strands``). Attributes are computed once, here: the
    set search reads them in its inner loop.

    :param gpus: the GPUs of the unit, sorted by address.
    :param strands: free, usable GPUs that taking this unit alone would
        make unusable (group mates outside the unit).
    """

    __slots__ = ('gpus', 'strands', 'size', 'switch', 'numa_node')

    def __init__(self, gpus, strands=0):
        self.gpus = tuple(gpus)
        self.strands = strands
        self.size = len(self.gpus)
        #: The one switch all GPUs of the unit sit under, or None.
        self.switch = _only({gpu.switch for gpu in self.gpus})
        #: The one NUMA node of all GPUs of the unit, or None.
        self.numa_node = _only({gpu.numa_node for gpu in self.gpus})

    def __repr__(self):
        return 'Unit(%s)' % ', '.join(gpu.address for gpu in self.gpus)


def _only(values):
    return values.pop() if len(values) == 1 else None


def _normalised(gpu):
    # NOTE: the tags spell "no switch" as "none" and "unknown NUMA node" as
    # -1; the adapters should translate them to None, but a GPU that
    # slipped through must not make every switch-less GPU "one switch".
    if gpu.switch == tags.NO_SWITCH or (
            gpu.numa_node is not None and gpu.numa_node < 0):
        numa_node = gpu.numa_node
        if numa_node is not None and numa_node < 0:
            numa_node = None
        switch = None if gpu.switch == tags.NO_SWITCH else gpu.switch
        return dataclasses.replace(gpu, switch=switch, numa_node=numa_node)
    return gpu


def _group_key(gpu):
    # NOTE: a GPU without a known IOMMU group is a group of its own: it
    # cannot be proven to share one, and strict isolation refuses it
    # unless the agent proved it isolated.
    if gpu.iommu_group is None:
        return ('address', gpu.address)
    return ('group', str(gpu.iommu_group))


class HostIndex(object):
    """Precomputed facts of one host, shared by every request.

    Build it with ``HostIndex(host_view)``; it never changes afterwards
    (a host whose GPUs change gets a new index).

    :param host: the :class:`~.model.HostView` to index.
    """

    def __init__(self, host):
        self.host = host
        #: address -> GPU (first one wins if an address repeats).
        self.gpus = {}
        for gpu in host.gpus:
            self.gpus.setdefault(gpu.address, _normalised(gpu))
        #: address -> IOMMU group key.
        self.group_key = {}
        #: group key -> tuple of GPU addresses in the group.
        self.group_members = {}
        self._index_groups()
        #: addresses of free GPUs whose IOMMU group holds no busy GPU:
        #: what VFIO could hand to one guest, whatever the policy.
        self.usable = frozenset(
            address for address, gpu in self.gpus.items()
            if gpu.free and self._group_is_free(self.group_key[address]))
        #: group keys that strict isolation accepts as a whole.
        self.strict_groups = frozenset(
            key for key in self.group_members if self._strict_ok(key))
        #: addresses of GPUs usable under strict isolation.
        self.strict_usable = frozenset(
            address for address in self.usable
            if self.group_key[address] in self.strict_groups)
        self.switch_total = {}
        self.switch_free = {}
        self.numa_total = {}
        self.numa_free = {}
        self._count_blocks()
        #: number of GPUs of the host, free or not.
        self.total = len(self.gpus)
        #: number of usable (free, group not busy) GPUs of the host.
        self.free = len(self.usable)
        self._units = {}
        self._cache = {}

    # -- construction helpers -------------------------------------------

    def _index_groups(self):
        members = {}
        for address, gpu in self.gpus.items():
            key = _group_key(gpu)
            self.group_key[address] = key
            members.setdefault(key, []).append(address)
        self.group_members = {
            key: tuple(sorted(addresses))
            for key, addresses in members.items()}

    def _group_is_free(self, key):
        return all(self.gpus[a].free for a in self.group_members[key])

    def _strict_ok(self, key):
        # A group is acceptable under strict isolation when every GPU of it
        # is free and proven isolated or shared with GPUs only; a shared
        # GPU whose group is unknown cannot be taken "whole".
        gpus = [self.gpus[a] for a in self.group_members[key]]
        if not all(gpu.free for gpu in gpus):
            return False
        if any(gpu.isolation not in tags.PROVEN_VERDICTS for gpu in gpus):
            return False
        if key[0] == 'address':
            return gpus[0].isolation == tags.ISOLATED
        return True

    def _count_blocks(self):
        for address, gpu in self.gpus.items():
            is_free = address in self.usable
            if gpu.switch is not None:
                self.switch_total[gpu.switch] = (
                    self.switch_total.get(gpu.switch, 0) + 1)
                self.switch_free[gpu.switch] = (
                    self.switch_free.get(gpu.switch, 0) + is_free)
            if gpu.numa_node is not None:
                self.numa_total[gpu.numa_node] = (
                    self.numa_total.get(gpu.numa_node, 0) + 1)
                self.numa_free[gpu.numa_node] = (
                    self.numa_free.get(gpu.numa_node, 0) + is_free)

    # -- queries ----------------------------------------------------------

    @property
    def name(self):
        return self.host.name

    def usable_for(self, isolation):
        """Addresses of the GPUs that ``isolation`` allows to give.

        :param isolation: a :class:`~.model.Isolation`.
        """
        if isolation == model.Isolation.STRICT:
            return self.strict_usable
        return self.usable

    @property
    def host_fully_free(self):
        return self.total > 0 and self.free == self.total

    def units(self, isolation):
        """Units that ``isolation`` allows, best to take first.

        The order is the best-fit rule of the whole core: units that strand
        nothing first, then units in the switch, then the NUMA node, with
        the fewest free GPUs (so fully free blocks stay whole for the big
        guests), then bigger units (a shared group serves only guests that
        take it whole, single GPUs serve everyone); GPUs of one IOMMU group
        stay next to each other.

        :param isolation: a :class:`~.model.Isolation`.
        :returns: a tuple of :class:`Unit`.
        """
        key = model.Isolation(isolation)
        units = self._units.get(key)
        if units is None:
            units = self._build_units(key)
            self._units[key] = units
        return units

    def _build_units(self, isolation):
        if isolation == model.Isolation.STRICT:
            units = [
                Unit(tuple(self.gpus[a] for a in members))
                for key, members in self.group_members.items()
                if key in self.strict_groups]
        else:
            units = [
                Unit((self.gpus[address],), self._strands(address))
                for address in self.usable]
        units.sort(key=self._unit_order)
        return tuple(units)

    def _strands(self, address):
        mates = self.group_members[self.group_key[address]]
        return sum(1 for mate in mates
                   if mate != address and mate in self.usable)

    def _unit_order(self, unit):
        first = unit.gpus[0]
        switch_free = (self.switch_free.get(unit.switch, 0)
                       if unit.switch is not None else 0)
        numa_free = (self.numa_free.get(unit.numa_node, 0)
                     if unit.numa_node is not None else 0)
        return (unit.strands, switch_free, numa_free, -unit.size,
                str(unit.numa_node), str(unit.switch),
                self.group_key[first.address], first.address)

    def cached(self, key, compute):
        """Memoise a per-request result on this index.

        :param key: a hashable key describing the request.
        :param compute: a function of no arguments computing the value.
        """
        try:
            return self._cache[key]
        except KeyError:
            pass
        value = compute()
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = value
        return value


def as_index(host):
    """Return ``host`` as a :class:`HostIndex` (built if it is a view).

    :param host: a :class:`HostIndex` or a :class:`~.model.HostView`.
    """
    if isinstance(host, HostIndex):
        return host
    return HostIndex(host)
