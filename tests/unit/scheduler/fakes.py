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
"""Real nova objects for the scheduler adapter tests.

A host is described with :class:`~tests.fake_gpus.FakeGPU`
values (the same declarative GPUs as the functional harness). The pools are
built the way nova builds them: nova-compute's ``PciDeviceStats`` reads the
host's tagged ``[pci] device_spec`` and adds each *available*
``objects.PciDevice``; the pools travel as a ``PciDevicePoolList``; the
scheduler's ``HostState.pci_stats`` is a ``PciDeviceStats`` built from it.
Host states are nova's own ``FakeHostState``; requests come from nova's
``get_pci_requests_from_flavor`` with the ``[pci] alias`` of each model.
"""

import itertools

import nova.conf
from nova import objects
from nova.objects import fields
from nova.pci import request as pci_request
from nova.pci import stats
from nova.pci import whitelist
from nova.tests.unit.scheduler import fakes as nova_fakes
from oslo_config import fixture as config_fixture
from oslo_utils import uuidutils
from oslotest import base

from gpu_passthrough_filter import conf as project_conf

from tests import fake_gpus

objects.register_all()

FakeGPU = fake_gpus.FakeGPU
H100 = fake_gpus.H100
A100 = fake_gpus.A100

#: A NIC model, for PCI requests that are none of this project's business.
NIC = fake_gpus.GPUModel('cx7', '15b3', '1021', 'MT2910 [ConnectX-7]')

#: ``[pci] alias`` values for every model above.
ALIASES = [m.alias_json() for m in (H100, A100, NIC)]


def _device(gpu, compute_node_id=1):
    extra_info = {}
    if gpu.rp_uuid:
        extra_info['rp_uuid'] = gpu.rp_uuid
    bus, slot, function = gpu.gpu.bus_slot_function
    return objects.PciDevice(
        compute_node_id=compute_node_id, address=gpu.gpu.address,
        vendor_id=gpu.gpu.model.vendor_id,
        product_id=gpu.gpu.model.product_id,
        dev_type=fields.PciDeviceType.STANDARD,
        status=fields.PciDeviceStatus.AVAILABLE,
        numa_node=gpu.gpu.numa_node, parent_addr=None,
        extra_info=extra_info,
        dev_id='pci_0000_%02x_%02x_%x' % (bus, slot, function),
        label='label_%s_%s' % (gpu.gpu.model.vendor_id,
                               gpu.gpu.model.product_id),
        request_id=None, instance_uuid=None)


class _Placed(object):
    def __init__(self, gpu, rp_uuid):
        self.gpu = gpu
        self.rp_uuid = rp_uuid


def pci_stats(gpus, busy=(), tagged=True, in_placement=False):
    """The scheduler's ``PciDeviceStats`` of a host, built as nova does.

    :param gpus: the host's :class:`FakeGPU` values (IOMMU groups are
        assigned as in the functional harness).
    :param busy: addresses of GPUs given to guests: nova-compute keeps
        them out of the pools.
    :param tagged: False writes device_spec without the agent's tags.
    :param in_placement: give each device a Placement provider
        (``rp_uuid``), as ``[pci] report_in_placement`` does.
    :returns: ``(PciDeviceStats, {address: rp_uuid})``.
    """
    gpus = fake_gpus.assign_iommu_groups(gpus)
    specs = fake_gpus.host_device_specs(gpus, tagged=tagged)
    dev_filter = whitelist.Whitelist(specs)
    compute_side = stats.PciDeviceStats(None, dev_filter=dev_filter)
    providers = {}
    for gpu in gpus:
        rp_uuid = uuidutils.generate_uuid() if in_placement else None
        providers[gpu.address] = rp_uuid
        if gpu.address not in busy:
            compute_side.add_device(_device(_Placed(gpu, rp_uuid)))
    compute_side.populate_pools_metadata_from_assigned_devices()
    scheduler_side = stats.PciDeviceStats(
        None, stats=compute_side.to_device_pools_obj(),
        dev_filter=dev_filter)
    return scheduler_side, providers


def host_state(name, gpus=(), busy=(), tagged=True, in_placement=False,
               vcpus=64, vcpus_used=0, ram_mb=512 * 1024, free_ram_mb=None,
               aggregates=()):
    """A nova ``FakeHostState`` with real PCI pools.

    :param name: host and node name.
    :param gpus: the host's :class:`FakeGPU` values.
    :param busy: addresses of GPUs given to guests.
    :param tagged: False: device_spec without the agent's tags.
    :param in_placement: pools carry ``rp_uuid``; the host state then has
        ``providers`` (address -> rp uuid) for building candidates.
    :param vcpus: physical vCPUs of the host (allocation ratio 1.0).
    :param vcpus_used: vCPUs used.
    :param ram_mb: RAM of the host in MiB.
    :param free_ram_mb: free RAM; all of it when None.
    :param aggregates: nova ``Aggregate`` objects of the host.
    """
    pools, providers = pci_stats(gpus, busy, tagged, in_placement)
    state = nova_fakes.FakeHostState(name, name, {
        'pci_stats': pools, 'vcpus_total': vcpus, 'vcpus_used': vcpus_used,
        'cpu_allocation_ratio': 1.0, 'ram_allocation_ratio': 1.0,
        'total_usable_ram_mb': ram_mb,
        'free_ram_mb': ram_mb if free_ram_mb is None else free_ram_mb,
        'aggregates': list(aggregates),
    })
    state.providers = providers
    return state


def flavor(gpus='h100:1', vcpus=8, memory_mb=64 * 1024, **extra_specs):
    """A nova ``Flavor``; ``extra_specs`` keys use ``__`` for ``:``.

    :param gpus: the ``pci_passthrough:alias`` value, None for none.
    """
    specs = {key.replace('__', ':'): value
             for key, value in extra_specs.items()}
    if gpus:
        specs['pci_passthrough:alias'] = gpus
    return objects.Flavor(name='f-%s' % gpus, flavorid='f', vcpus=vcpus,
                          memory_mb=memory_mb, root_gb=10, ephemeral_gb=0,
                          swap=0, extra_specs=specs)


def request_spec(flavor_obj, rebuild=False):
    """A nova ``RequestSpec`` with nova's own PCI requests of the flavor.

    Needs ``[pci] alias`` set to :data:`ALIASES` (nova reads it).

    :param flavor_obj: a flavor from :func:`flavor`.
    :param rebuild: mark the request as a rebuild, as nova's API does.
    """
    hints = {'_nova_check_type': ['rebuild']} if rebuild else {}
    return objects.RequestSpec(
        flavor=flavor_obj, instance_uuid=uuidutils.generate_uuid(),
        num_instances=1,
        pci_requests=pci_request.get_pci_requests_from_flavor(flavor_obj),
        scheduler_hints=hints, numa_topology=None)


#: Resource class of the fake GPU providers (nova's default for an alias
#: without ``resource_class``: ``CUSTOM_PCI_<vendor>_<product>``; one class
#: here is enough, the tests never mix classes).
RESOURCE_CLASS = 'CUSTOM_PCI_10DE_2330'


def candidates(state, spec_obj, root='root-rp'):
    """Placement allocation candidates for the spec's PCI groups.

    As Placement returns them for nova's PCI request groups (one group per
    requested device, ``<request_id>-<i>``): every ordered choice of
    distinct providers of a matching model, in address order.

    :param state: a host state from :func:`host_state` with
        ``in_placement=True``.
    :param spec_obj: a request spec from :func:`request_spec`.
    """
    groups = []
    for req in spec_obj.pci_requests.requests:
        spec = req.spec[0]
        providers = [
            state.providers[pool['address']]
            for pool in sorted(state.pci_stats.pools,
                               key=lambda p: p['address'])
            if pool['vendor_id'] == spec['vendor_id'] and
            pool['product_id'] == spec['product_id']]
        groups.extend(('%s-%d' % (req.request_id, i), providers)
                      for i in range(req.count))
    result = []
    names = [name for name, _ in groups]
    for choice in itertools.product(*[p for _, p in groups]):
        if len(set(choice)) != len(choice):
            continue
        mappings = {'': [root]}
        mappings.update({n: [rp] for n, rp in zip(names, choice)})
        allocations = {root: {'resources': {
            'VCPU': spec_obj.flavor.vcpus,
            'MEMORY_MB': spec_obj.flavor.memory_mb}}}
        allocations.update({rp: {'resources': {RESOURCE_CLASS: 1}}
                            for rp in choice})
        result.append({'mappings': mappings, 'allocations': allocations})
    return result


def address_of(state, rp_uuid):
    """The PCI address of one of the host's providers."""
    return next(a for a, rp in state.providers.items() if rp == rp_uuid)


def candidate_addresses(state, candidate):
    """Sorted GPU addresses of one allocation candidate."""
    return sorted(address_of(state, rps[0])
                  for name, rps in candidate['mappings'].items() if name)


class TestCase(base.BaseTestCase):
    """Nova's ``CONF`` through a config fixture, with the GPU aliases."""

    def setUp(self):
        super(TestCase, self).setUp()
        project_conf.register_scheduler_opts(nova.conf.CONF)
        self.conf = self.useFixture(config_fixture.Config(nova.conf.CONF))
        self.conf.config(alias=ALIASES, group='pci')

    def flags(self, group='gpu_passthrough', **kwargs):
        """Set options of one group of nova's CONF for this test."""
        self.conf.config(group=group, **kwargs)
