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
"""Nova's real scheduler objects for a simulated fleet.

Each host goes through the path nova-compute and nova-scheduler use:

1. one ``[pci] device_spec`` entry per GPU, tagged as the agent tags it
   (:mod:`gpu_passthrough_filter.tags`), parsed by nova's ``Whitelist``;
2. real ``objects.PciDevice`` objects added to a compute-side
   ``PciDeviceStats`` (one pool per device address, tags included), turned
   into ``objects.PciDevicePoolList`` as the resource tracker reports it;
3. a real ``objects.ComputeNode`` with that pool list and a JSON
   ``objects.NUMATopology`` (cells with cpuset, memory and sockets);
4. ``HostState.update(compute=...)``: nova's own
   ``_update_from_compute_node`` builds the scheduler-side pci_stats.

Requests are real ``objects.RequestSpec`` from a real ``objects.Flavor``
through ``RequestSpec.from_components`` (the conductor's path), with PCI
requests from ``nova.pci.request.get_pci_requests_from_flavor`` and the
guest NUMA topology from ``nova.virt.hardware.numa_get_constraints``.
Filtering, weighing and consumption are nova's handlers and
``HostState.consume_from_request``; see :mod:`.runner` for the loop.
"""

import collections
import datetime
import json
import uuid

from oslo_config import cfg

from nova import context as nova_context
from nova import objects
from nova.objects import fields
from nova.pci import request as pci_request
from nova.pci import stats as pci_stats
from nova.pci import whitelist
from nova.scheduler import host_manager
from nova.virt import hardware

from gpu_passthrough_filter.agent import selection

CONF = cfg.CONF
#: Namespace of the simulator's deterministic UUIDs.
_UUID_NS = uuid.UUID('4d1b7a52-0a4c-4b7e-9a53-6f7e0c1e5a10')
#: Resource class of every GPU when PCI is tracked in Placement (nova's
#: advice: one resource class on several device_spec matchers).
GPU_RESOURCE_CLASS = 'CUSTOM_GPU'
#: Alias of requests that accept any GPU model.
ANY_ALIAS = 'gpu'

objects.register_all()


def sim_uuid(*parts):
    """A UUID that depends only on ``parts`` (deterministic runs)."""
    return str(uuid.uuid5(_UUID_NS, '/'.join(str(part) for part in parts)))


def alias_name(models):
    """The ``[pci] alias`` name for a set of accepted models."""
    if not models:
        return ANY_ALIAS
    return '_'.join(sorted(model.lower() for model in models))


def trait_for(models):
    """The Placement trait that marks GPUs of one accepted-model set."""
    return 'CUSTOM_GPUSET_' + alias_name(models).upper()


class AliasBook(object):
    """The ``[pci] alias`` entries for the model sets a workload uses.

    :param fleet_models: ``{name: GPUModel}`` of the fleet.
    :param model_sets: the accepted-model tuples of the requests.
    """

    def __init__(self, fleet_models, model_sets):
        self.fleet_models = dict(fleet_models)
        self.model_sets = sorted({tuple(sorted(s)) for s in model_sets if s})

    def traits_of(self, model_name):
        """Traits of a GPU of ``model_name`` (PCI-in-Placement)."""
        return [trait_for(models) for models in self.model_sets
                if model_name in models]

    def alias_json(self, pci_in_placement):
        """The ``[pci] alias`` option value (a list of JSON strings)."""
        entries = []
        if pci_in_placement:
            entries.append({'name': ANY_ALIAS,
                            'resource_class': GPU_RESOURCE_CLASS})
            for models in self.model_sets:
                entries.append({'name': alias_name(models),
                                'resource_class': GPU_RESOURCE_CLASS,
                                'traits': trait_for(models)})
        else:
            for model in self.fleet_models.values():
                entries.append(_legacy_alias(ANY_ALIAS, model))
            for models in self.model_sets:
                known = [self.fleet_models[name] for name in models
                         if name in self.fleet_models]
                # NOTE: a flavor may name a model the (sampled) fleet lacks;
                # its alias must still exist, or nova refuses the flavor
                # (PciRequestAliasNotDefined) instead of finding no host.
                for model in known or [_ABSENT_MODEL]:
                    entries.append(_legacy_alias(alias_name(models), model))
        return [json.dumps(entry) for entry in entries]


#: The device ids of a model set with no GPU in the fleet: ids no device
#: has (PCI vendor 0xffff is "no device"), so the request finds no host.
_ABSENT_MODEL = collections.namedtuple('Ids', 'vendor_id product_id')(
    'ffff', 'ffff')


def _legacy_alias(name, model):
    return {'name': name, 'vendor_id': model.vendor_id,
            'product_id': model.product_id,
            'device_type': fields.PciDeviceType.STANDARD}


def numa_topology(host):
    """The host's ``objects.NUMATopology``: CPUs and RAM split evenly."""
    cells, per_cell = [], max(1, host.vcpus // host.numa_nodes)
    memory = host.memory_mb // host.numa_nodes
    for cell in range(host.numa_nodes):
        cpus = set(range(cell * per_cell, (cell + 1) * per_cell))
        cells.append(objects.NUMACell(
            id=cell, cpuset=cpus, pcpuset=set(), memory=memory,
            cpu_usage=0, memory_usage=0, pinned_cpus=set(),
            # NOTE: no SMT sibling sets: they matter only to pinned
            # guests and make every copy of the topology (one per host and
            # request in NUMATopologyFilter and PciPassthroughFilter)
            # several times slower.
            siblings=[],
            mempages=[objects.NUMAPagesTopology(
                size_kb=4, total=memory * 256, used=0)],
            network_metadata=objects.NetworkMetadata(
                physnets=set(), tunneled=False),
            socket=cell))
    return objects.NUMATopology(cells=cells)


def device_spec(gpu, host, aliases, pci_in_placement):
    """The agent's ``[pci] device_spec`` entry for one GPU, as a dict."""
    spec = {'address': gpu.address}
    spec.update(gpu.device_spec_tags())
    if pci_in_placement:
        spec['resource_class'] = GPU_RESOURCE_CLASS
        traits = aliases.traits_of(gpu.model.name)
        if traits:
            spec['traits'] = ','.join(traits)
    return spec


def pci_device(gpu, host, compute_id):
    """A real ``objects.PciDevice`` for one GPU, as the compute reports it."""
    device = objects.PciDevice(
        compute_node_id=compute_id, address=gpu.address,
        vendor_id=gpu.model.vendor_id, product_id=gpu.model.product_id,
        dev_type=fields.PciDeviceType.STANDARD,
        status=fields.PciDeviceStatus.AVAILABLE,
        dev_id='pci_%s' % gpu.address.replace(':', '_').replace('.', '_'),
        label='label_%s_%s' % (gpu.model.vendor_id, gpu.model.product_id),
        numa_node=gpu.numa_node, parent_addr=None, request_id=None,
        instance_uuid=None, uuid=sim_uuid(host.name, gpu.address),
        extra_info={})
    return device


def gpu_rp_uuid(host, gpu):
    """UUID of the Placement provider of one GPU (PCI-in-Placement)."""
    return sim_uuid('rp', host.name, gpu.address)


def offered_gpus(host):
    """The GPUs of ``host`` the agent would list in ``device_spec``."""
    return [gpu for gpu in host.gpus
            if selection.offers(gpu.isolation, include_shared_groups=True)]


def pci_pools(host, topology, aliases, pci_in_placement, compute_id):
    """The compute node's ``PciDevicePoolList``, built the compute's way.

    Only the GPUs the agent offers are in ``device_spec``
    (:func:`~gpu_passthrough_filter.agent.selection.offers`, with shared
    groups offered whole: the simulated operator sets ``[nova_pci]
    include_shared_groups``); a GPU of unknown isolation is never offered.
    """
    gpus = offered_gpus(host)
    specs = [json.dumps(device_spec(gpu, host, aliases, pci_in_placement))
             for gpu in gpus]
    stats = pci_stats.PciDeviceStats(
        topology, dev_filter=whitelist.Whitelist(specs))
    for gpu in gpus:
        device = pci_device(gpu, host, compute_id)
        if pci_in_placement:
            device.extra_info = {'rp_uuid': gpu_rp_uuid(host, gpu)}
        stats.add_device(device)
    if pci_in_placement:
        stats.populate_pools_metadata_from_assigned_devices()
    return stats.to_device_pools_obj()


def compute_node(host, index, aliases, pci_in_placement, cpu_ratio=1.0,
                 ram_ratio=1.0):
    """A real ``objects.ComputeNode`` for a simulated host, unused.

    As nova-compute's resource tracker reports an idle host: the RAM
    ``[DEFAULT] reserved_host_memory_mb`` keeps for the host counts as used
    (and Placement's MEMORY_MB inventory reserves it).
    """
    topology = numa_topology(host)
    reserved = min(CONF.reserved_host_memory_mb, host.memory_mb)
    return objects.ComputeNode(
        id=index + 1, uuid=sim_uuid('cn', host.name), host=host.name,
        hypervisor_hostname=host.name, vcpus=host.vcpus, vcpus_used=0,
        memory_mb=host.memory_mb, free_ram_mb=host.memory_mb - reserved,
        memory_mb_used=reserved, local_gb=host.disk_gb, local_gb_used=0,
        free_disk_gb=host.disk_gb, disk_available_least=host.disk_gb,
        cpu_allocation_ratio=cpu_ratio, ram_allocation_ratio=ram_ratio,
        disk_allocation_ratio=1.0, running_vms=0, current_workload=0,
        hypervisor_type='QEMU', hypervisor_version=8002000,
        host_ip='192.0.2.%d' % (index % 250 + 1), cpu_info='{}',
        supported_hv_specs=[objects.HVSpec.from_list(
            ['x86_64', 'kvm', 'hvm'])],
        numa_topology=topology._to_json(), stats={}, metrics='[]',
        pci_device_pools=pci_pools(host, topology, aliases,
                                   pci_in_placement, index + 1),
        updated_at=None, service_id=None, mapped=1)


def host_state(host, index, aliases, pci_in_placement, cpu_ratio=1.0,
               ram_ratio=1.0):
    """A real ``HostState`` updated from the host's ``ComputeNode``."""
    return state_from_record(host.name, compute_node(
        host, index, aliases, pci_in_placement, cpu_ratio, ram_ratio))


def state_from_record(host_name, node):
    """A new ``HostState`` from a compute node record, as nova builds it.

    What ``HostManager._get_host_states`` does for every node of every
    request in Nova 34: a new ``HostState``, then ``update()`` from the
    record (new ``PciDeviceStats`` and ``NUMATopology`` objects).
    """
    state = host_manager.HostState(host_name, host_name, sim_uuid('cell1'))
    service = {'host': host_name, 'binary': 'nova-compute',
               'disabled': False, 'disabled_reason': None,
               'forced_down': False, 'last_seen_up': _STARTED,
               'created_at': _STARTED, 'updated_at': _STARTED,
               'version': 66}
    state.update(compute=node, service=service, aggregates=[],
                 inst_dict={})
    return state


class ComputeRecords(object):
    """The ``compute_nodes`` table as nova-scheduler reads it.

    Nova 34 keeps no host state between requests: every request reads the
    records and builds new ``HostState`` objects (:meth:`host_states`).
    After a boot, nova-compute's resource tracker writes the host's new
    usage back (:meth:`write_back`); the model takes the usage the
    scheduler consumed on its host state (the claim succeeded) and a build
    that is over (no I/O operation in flight, as ``io_workload`` counts
    only builds, resizes and snapshots under way).

    :param hosts: the :class:`~.fleet.SimHost` list.
    :param aliases: the :class:`AliasBook`.
    :param pci_in_placement: whether GPUs are Placement providers.
    """

    def __init__(self, hosts, aliases, pci_in_placement, cpu_ratio=1.0,
                 ram_ratio=1.0):
        self.hosts = list(hosts)
        self.records = [compute_node(host, index, aliases, pci_in_placement,
                                     cpu_ratio, ram_ratio)
                        for index, host in enumerate(self.hosts)]
        self._by_name = {host.name: index
                         for index, host in enumerate(self.hosts)}
        self._writes = 0

    def host_states(self):
        """New host states, one per record (nova's ``_get_host_states``)."""
        return [state_from_record(host.name, record)
                for host, record in zip(self.hosts, self.records)]

    def write_back(self, state):
        """Record ``state``'s usage, as the resource tracker reports it."""
        record = self.records[self._by_name[state.host]]
        self._writes += 1
        record.vcpus_used = state.vcpus_used
        record.free_ram_mb = state.free_ram_mb
        record.memory_mb_used = record.memory_mb - state.free_ram_mb
        record.local_gb_used = state.disk_mb_used // 1024
        record.free_disk_gb = state.free_disk_mb // 1024
        record.disk_available_least = record.free_disk_gb
        record.running_vms = state.num_instances
        record.current_workload = 0
        record.stats = {'num_instances': str(state.num_instances),
                        'io_workload': '0'}
        if state.numa_topology is not None:
            record.numa_topology = state.numa_topology._to_json()
        record.pci_device_pools = state.pci_stats.to_device_pools_obj()
        record.updated_at = _STARTED + datetime.timedelta(
            seconds=self._writes)


def flavor(request, extra_specs):
    """A real ``objects.Flavor`` for a VM request.

    :param request: a :class:`~gpu_passthrough_filter.sim.workload.
        VMRequest`.
    :param extra_specs: policy extra specs added to GPU flavors.
    """
    specs = {}
    if request.gpus:
        specs.update(extra_specs)
        specs['pci_passthrough:alias'] = '%s:%d' % (
            alias_name(request.models), request.gpus)
    return objects.Flavor(
        id=1, flavorid='sim-%dc-%dm-%dg' % (request.vcpus, request.memory_mb,
                                            request.gpus),
        name='sim', vcpus=request.vcpus, memory_mb=request.memory_mb,
        root_gb=0, ephemeral_gb=0, swap=0, rxtx_factor=1.0,
        vcpu_weight=0, disabled=False, is_public=True,
        extra_specs=specs, description=None)


_CONTEXT = None
#: Heartbeat time of every simulated nova-compute service.
_STARTED = datetime.datetime(2026, 1, 1)


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = nova_context.RequestContext(
            user_id='sim', project_id='sim', is_admin=True)
    return _CONTEXT


def request_spec(request, index, extra_specs):
    """A real ``objects.RequestSpec``, built as nova-conductor builds it.

    :param request: the VM request.
    :param index: its position in the arrivals (for a stable UUID).
    :param extra_specs: policy extra specs added to GPU flavors.
    """
    flav = flavor(request, extra_specs)
    image_meta = objects.ImageMeta.from_dict({'properties': {}})
    instance_numa = hardware.numa_get_constraints(flav, image_meta)
    pci_requests = pci_request.get_pci_requests_from_flavor(flav)
    spec = objects.RequestSpec.from_components(
        _context(), sim_uuid('vm', index, request.name), {'properties': {}},
        flav, instance_numa, pci_requests, {}, None, None)
    return spec
