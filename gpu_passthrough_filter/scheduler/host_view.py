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
"""Nova's ``HostState`` as the policy core's host.

What nova's scheduler sees of a host's GPUs (verified on Nova 34):

* ``HostState.pci_stats.pools`` holds one pool (a dict) per PCI address
  (nova splits pools by address for PCI-in-Placement), with ``vendor_id``,
  ``product_id``, ``numa_node``, ``address``, ``count`` and every
  ``[pci] device_spec`` tag as a string key; with ``[pci]
  report_in_placement`` also ``rp_uuid``. The scheduler's pools carry no
  device objects.
* Pools hold *available* devices only: nova-compute drops a device's pool
  when the device is claimed, and the scheduler's ``consume_from_request``
  drops it during a multi-create. A GPU given to a guest is invisible, so
  the occupancy of an IOMMU group comes from the agent's
  :data:`~gpu_passthrough_filter.tags.GROUP_GPUS` tag: a group with fewer
  visible GPUs than the tag says holds a busy GPU, and this module adds
  placeholder busy GPUs for it.

:func:`host_facts` builds a :class:`HostFacts` (the core's
:class:`~gpu_passthrough_filter.policy.host_index.HostIndex` plus the nova
facts the adapters need) once per host state and keeps it on the host
state until the pools or the host's free resources change. The request
side is :mod:`.request_view`.
"""

import collections
import dataclasses
import typing

from oslo_log import log as logging

from gpu_passthrough_filter.policy import host_index
from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter.scheduler import values
from gpu_passthrough_filter import tags

#: Attribute of the ``HostState`` that holds its facts: Nova 34 builds new
#: host states for every request, so this serves the weigher after the
#: filter and instances 2..n of a multi-create; :data:`FACTS_BY_VALUE`
#: serves the next requests.
CACHE_ATTRIBUTE = '_gpu_passthrough_facts'
#: Attribute of the ``HostState`` that holds its pools' values
#: (:func:`pool_values_of`).
POOLS_ATTRIBUTE = '_gpu_passthrough_pool_values'

LOG = logging.getLogger(__name__)

#: The most devices one PCI pool may stand for (the VFs of one PF: at most
#: a few hundred; a type-PCI GPU pool counts 1).
MAX_POOL_DEVICES = 256

#: ``untagged_host_policy`` value trusting untagged GPUs as isolated.
UNTAGGED_ISOLATED = 'isolated'

_PROJECT_TAGS = frozenset(tags.ALL_TAGS)


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """What the filter and weigher know about one host state.

    :param index: the core's :class:`~.host_index.HostIndex` of the host.
    :param rp_addresses: Placement provider uuid -> PCI address of the
        GPU pools that carry ``rp_uuid`` (PCI-in-Placement).
    :param tagged_models: GPU models (``"vendor:product"``) of the pools
        that carry the agent's tags.
    :param untagged: number of GPUs taken from pools without the agent's
        tags (handled by ``untagged_host_policy``).
    :param rp_kinds: Placement provider uuid -> kind of the GPU pools in
        ``rp_addresses``. Two providers of one kind have the same resource
        class and traits, so they match the same Placement request groups.
        Nova keeps neither the device_spec's ``resource_class`` nor its
        ``traits`` in the scheduler's pools; the agent derives both from
        the GPU's model and isolation verdict (:mod:`gpu_passthrough_filter.
        agent.nova_pci`), so for a pool it tagged the kind is ``(vendor,
        product, verdict)``. An untagged pool (device_spec written by hand)
        has kind ``(vendor, product, None)``: its traits are unknown.
    """
    index: host_index.HostIndex
    rp_addresses: typing.Mapping[str, str]
    tagged_models: typing.FrozenSet[str]
    untagged: int = 0
    rp_kinds: typing.Mapping[str, tuple] = dataclasses.field(
        default_factory=dict)


# -- host state -> host view --------------------------------------------------

def host_facts(host_state, opts):
    """The cached :class:`HostFacts` of ``host_state``, built if stale.

    :param host_state: a nova ``HostState``.
    :param opts: the ``CONF.gpu_passthrough`` group (reads
        ``untagged_host_policy`` and ``gpu_vendor_ids``).
    :returns: a :class:`HostFacts`.
    """
    options = (opts.untagged_host_policy, tuple(opts.gpu_vendor_ids or ()))
    cached = getattr(host_state, CACHE_ATTRIBUTE, None)
    pool_values = pool_values_of(host_state)
    resources = _resources(host_state)
    if (cached is not None and cached[0] is pool_values and
            cached[1] == (resources, options)):
        return cached[2]
    value_key = (getattr(host_state, 'uuid', None), _host_name(host_state),
                 pool_values, resources, options)
    facts = FACTS_BY_VALUE.get(value_key)
    if facts is None:
        facts = build_host_facts(host_state, opts)
        FACTS_BY_VALUE.put(value_key, facts, opts.host_cache_size)
    setattr(host_state, CACHE_ATTRIBUTE, (pool_values, (resources, options),
                                          facts))
    return facts


def pool_values_of(host_state):
    """Every key and value of the host's PCI pools, hashable.

    Computed once per ``HostState`` and pool contents: nova builds new host
    states for every request, and the filters of one request (this
    project's and :mod:`.nova_filters`) all key their caches on it.
    """
    pci_stats = getattr(host_state, 'pci_stats', None)
    pools = _pools_of(pci_stats)
    signature = _signature(pools)
    cached = getattr(host_state, POOLS_ATTRIBUTE, None)
    # NOTE: the cache keeps references to the pci_stats object and its
    # pool list and compares them by identity: nova replaces pci_stats
    # whenever the compute node reports, and an id() of a freed object
    # could be reused by its successor.
    if (cached is not None and cached[0] is pci_stats and
            cached[1] is pools and cached[2] == signature):
        return cached[3]
    values = _pool_values(pools)
    setattr(host_state, POOLS_ATTRIBUTE, (pci_stats, pools, signature,
                                          values))
    return values


FACTS_BY_VALUE = values.ValueCache()


def _pool_values(pools):
    """Every key and value of the pools, hashable (a bad value by repr)."""
    return tuple(
        tuple(sorted((str(k), v if isinstance(v, _PLAIN) else repr(v))
                     for k, v in pool.items()))
        if isinstance(pool, dict) else repr(pool) for pool in pools)


_PLAIN = (str, int, float, bool, type(None))


def _pools_of(pci_stats):
    pools = getattr(pci_stats, 'pools', None) if pci_stats else None
    return pools if isinstance(pools, list) else []


def _signature(pools):
    # Cheap, exact enough: nova removes a pool when its last device goes
    # and decrements counts otherwise; tags never change without a new
    # pci_stats object.
    return tuple((pool.get('address'), pool.get('count'))
                 if isinstance(pool, dict) else None for pool in pools)


def _resources(host_state):
    return tuple(getattr(host_state, name, None) for name in (
        'vcpus_total', 'vcpus_used', 'cpu_allocation_ratio',
        'total_usable_ram_mb', 'free_ram_mb', 'ram_allocation_ratio'))


def build_host_facts(host_state, opts):
    """Translate one host state (no cache).

    :param host_state: a nova ``HostState``.
    :param opts: the ``CONF.gpu_passthrough`` group.
    :returns: a :class:`HostFacts`.
    """
    vendors = frozenset(values.hex_id(v) for v in (opts.gpu_vendor_ids or ()))
    untagged_isolation = (
        tags.ISOLATED if opts.untagged_host_policy == UNTAGGED_ISOLATED
        else tags.UNKNOWN)
    gpus, group_sizes, rp_addresses, rp_kinds = [], {}, {}, {}
    tagged_models, untagged = set(), 0
    for pool in _pools_of(getattr(host_state, 'pci_stats', None)):
        if not isinstance(pool, dict):
            continue
        is_tagged = any(key in _PROJECT_TAGS for key in pool)
        vendor = values.hex_id(pool.get('vendor_id'))
        if not is_tagged and vendor not in vendors:
            continue
        pool_gpus = _pool_gpus(pool, is_tagged, untagged_isolation)
        gpus.extend(pool_gpus)
        if is_tagged:
            tagged_models.update(gpu.model for gpu in pool_gpus)
            _note_group_size(pool, pool_gpus, group_sizes)
        else:
            untagged += len(pool_gpus)
        rp_uuid = pool.get('rp_uuid')
        if isinstance(rp_uuid, str) and len(pool_gpus) == 1:
            rp_addresses[rp_uuid] = pool_gpus[0].address
            rp_kinds[rp_uuid] = (str(pool.get('vendor_id')),
                                 str(pool.get('product_id')),
                                 _kind_verdict(pool))
    gpus.extend(_busy_group_mates(gpus, group_sizes))
    view = model.HostView(
        name=_host_name(host_state), gpus=tuple(gpus),
        **_host_resources(host_state))
    return HostFacts(host_index.HostIndex(view), rp_addresses,
                     frozenset(tagged_models), untagged, rp_kinds)


def _kind_verdict(pool):
    """The isolation tag as part of a kind: None untagged, bad ones apart."""
    if tags.ISOLATION not in pool:
        return None
    value = pool[tags.ISOLATION]
    return value if isinstance(value, str) else '<malformed>'


def _pool_gpus(pool, is_tagged, untagged_isolation):
    """GPUs of one pool (one per free device; nova pools hold one)."""
    count = tags.decode_integer(pool.get('count'))
    if count is None or count < 1:
        return []
    if count > MAX_POOL_DEVICES:
        # NOTE: nova's pools of type-PCI devices count 1 each; a count in
        # the thousands is a corrupt pool and would cost seconds per host
        # and request to expand.
        LOG.warning('PCI pool %(address)s on a host reports %(count)d '
                    'devices; only %(max)d are considered',
                    {'address': pool.get('address'), 'count': count,
                     'max': MAX_POOL_DEVICES})
        count = MAX_POOL_DEVICES
    address = pool.get('address')
    address = address.lower() if isinstance(address, str) else (
        'pool-%x' % id(pool))
    gpu_model = '%s:%s' % (values.hex_id(pool.get('vendor_id')),
                           values.hex_id(pool.get('product_id')))
    if is_tagged:
        fields = _tagged_fields(pool)
    else:
        fields = dict(isolation=untagged_isolation,
                      numa_node=tags.decode_node(pool.get('numa_node')))
    # NOTE: pools of type-PCI devices are split by address and count 1;
    # a pool counting more (VFs of one PF) gets numbered extra members.
    addresses = [address] + ['%s#%d' % (address, i) for i in range(1, count)]
    return [model.GPUView(address=a, model=gpu_model, **fields)
            for a in addresses]


def _tagged_fields(pool):
    decoded = tags.decode(pool)
    numa_node = decoded.numa_node
    if numa_node is None:
        numa_node = tags.decode_node(pool.get('numa_node'))
    return dict(isolation=decoded.isolation, numa_node=numa_node,
                iommu_group=decoded.iommu_group, switch=decoded.switch,
                root=decoded.root)


def _note_group_size(pool, pool_gpus, group_sizes):
    size = tags.decode_integer(pool.get(tags.GROUP_GPUS))
    group = pool_gpus[0].iommu_group if pool_gpus else None
    if group is not None and size is not None and size > 0:
        group_sizes[group] = max(size, group_sizes.get(group, 0))


def _busy_group_mates(gpus, group_sizes):
    """Placeholders for the GPUs of a group that are given to guests.

    Rule: a group whose tag says N GPUs but whose pools show M < N holds
    N - M busy GPUs; they sit where their visible mates sit.
    """
    visible = collections.Counter(gpu.iommu_group for gpu in gpus)
    first = {}
    for gpu in gpus:
        first.setdefault(gpu.iommu_group, gpu)
    busy = []
    for group, size in sorted(group_sizes.items()):
        mate = first[group]
        for i in range(size - visible[group]):
            busy.append(dataclasses.replace(
                mate, address='busy:group-%s:%d' % (group, i), free=False))
    return busy


def _host_name(host_state):
    host = getattr(host_state, 'host', None)
    node = getattr(host_state, 'nodename', None)
    return '%s' % host if node in (None, host) else '%s/%s' % (host, node)


def _host_resources(host_state):
    """Free and total vCPUs and RAM as nova's CPU and RAM checks see them."""
    cpu_ratio = values.number(getattr(host_state, 'cpu_allocation_ratio',
                                      None))
    ram_ratio = values.number(getattr(host_state, 'ram_allocation_ratio',
                                      None))
    vcpus = values.number(getattr(host_state, 'vcpus_total', None))
    vcpus_used = values.number(getattr(host_state, 'vcpus_used', None)) or 0.0
    ram = values.number(getattr(host_state, 'total_usable_ram_mb', None))
    free_ram = values.number(getattr(host_state, 'free_ram_mb', None))
    total_vcpus = vcpus * (cpu_ratio or 1.0) if vcpus else None
    total_ram = ram * (ram_ratio or 1.0) if ram else None
    free_vcpus = total_vcpus - vcpus_used if total_vcpus else None
    free_ram_mb = None
    if total_ram and free_ram is not None:
        free_ram_mb = total_ram - (ram - free_ram)
    return dict(free_vcpus=free_vcpus, free_ram_mb=free_ram_mb,
                total_vcpus=total_vcpus, total_ram_mb=total_ram)


def placement_candidates(host_state, pci_in_placement):
    """The host's allocation candidates, or None without PCI in Placement.

    Nova claims the chosen host's first candidate only with ``[filter_
    scheduler] pci_in_placement``; otherwise the compute picks the devices
    and the candidates say nothing about GPUs.

    :param host_state: a nova ``HostState``.
    :param pci_in_placement: ``[filter_scheduler] pci_in_placement``.
    """
    if not pci_in_placement:
        return None
    candidates = getattr(host_state, 'allocation_candidates', None)
    return candidates if isinstance(candidates, list) else None


def vendor_ids(opts):
    """``[gpu_passthrough] gpu_vendor_ids`` as a lower-case frozenset."""
    return frozenset(v.strip().lower() for v in (opts.gpu_vendor_ids or ()))
