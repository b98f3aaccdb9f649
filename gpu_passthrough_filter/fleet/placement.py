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
"""The compute hosts and their GPUs, as Placement holds them now.

Needs PCI in Placement (nova's ``[pci] report_in_placement``): each GPU is
a child provider of its compute node, named ``<node>_<PCI ADDRESS>``, and
the agent's device_spec gives it traits that name its model, IOMMU verdict,
NUMA node, PCIe switch and group (:func:`gpu_passthrough_filter.traits.
device_traits`). A GPU is free when its provider has room for one more
allocation; held when it is reserved (cordoned or unhealthy: the agent's
:mod:`~gpu_passthrough_filter.agent.holds`).

Cost: one GET for the provider list, then two per compute node
(inventories, usages) and three per GPU (traits, inventories, usages),
sent by :data:`WORKERS` threads at a time.
"""

import concurrent.futures

from gpu_passthrough_filter.agent import client as client_mod
from gpu_passthrough_filter.agent import holds
from gpu_passthrough_filter.policy import capacity
from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter import tags
from gpu_passthrough_filter import traits

#: Hosts read at the same time (each in its own thread, on the one
#: keystoneauth session: requests' connection pool is thread-safe).
WORKERS = 8

#: The resource classes of a compute node that a flavor asks for.
HOST_CLASSES = ('VCPU', 'PCPU', 'MEMORY_MB', 'DISK_GB')


def read_hosts(client, only=None, workers=WORKERS):
    """Every compute host, sorted by name.

    :returns: :class:`~gpu_passthrough_filter.policy.capacity.CloudHost`
        objects.

    :param client: a :class:`~gpu_passthrough_filter.agent.client.
        PlacementClient`.
    :param only: a host name: read that one only.
    :param workers: hosts read at the same time.
    """
    providers, = client_mod.json_fields(
        client.request('GET', '/resource_providers'), 'resource_providers')
    roots = sorted((p for p in providers
                    if p['uuid'] == p.get('root_provider_uuid')),
                   key=lambda p: p['name'])
    children = {}
    for provider in providers:
        if provider['uuid'] != provider.get('root_provider_uuid'):
            children.setdefault(provider['root_provider_uuid'], []).append(
                provider)
    wanted = [root for root in roots if only in (None, root['name'])]
    with concurrent.futures.ThreadPoolExecutor(max(workers, 1)) as pool:
        return list(pool.map(
            lambda root: _host(client, root, children.get(root['uuid'], [])),
            wanted))


def _host(client, root, children):
    room = _room(*_inventory_and_usage(client, root['uuid']))
    gpus = []
    held = 0
    for child in sorted(children, key=lambda p: p['name']):
        address = holds.provider_address(child['name'], root['name'])
        if address is None:
            continue
        gpu, is_held = _gpu(client, child['uuid'], address)
        if gpu is not None:
            gpus.append(gpu)
            held += is_held
    return capacity.CloudHost(model.HostView(root['name'], tuple(gpus)),
                              room, held)


def _inventory_and_usage(client, uuid):
    inventories, = client_mod.json_fields(client.request(
        'GET', '/resource_providers/%s/inventories' % uuid), 'inventories')
    usages, = client_mod.json_fields(client.request(
        'GET', '/resource_providers/%s/usages' % uuid), 'usages')
    return inventories, usages


def _room(inventories, usages):
    free, max_unit = {}, {}
    for name in HOST_CLASSES:
        inventory = inventories.get(name)
        if inventory is None:
            continue
        free[name] = _capacity(inventory) - usages.get(name, 0)
        max_unit[name] = inventory.get('max_unit', inventory['total'])
    return capacity.Room(free, max_unit)


def _capacity(inventory):
    return ((inventory['total'] - inventory.get('reserved', 0))
            * inventory.get('allocation_ratio', 1.0))


def _gpu(client, uuid, address):
    """``(GPU, held)`` of one PCI provider.

    ``(None, False)`` when its traits name no GPU model (a NIC, a device
    the agent did not write).
    """
    names, = client_mod.json_fields(client.request(
        'GET', '/resource_providers/%s/traits' % uuid), 'traits')
    facts = traits.read_device_traits(names)
    if facts['model'] is None:
        return None, False
    inventories, usages = _inventory_and_usage(client, uuid)
    total = sum(inv['total'] for inv in inventories.values())
    reserved = sum(inv.get('reserved', 0) for inv in inventories.values())
    used = sum(usages.values())
    gpu = model.GPUView(
        address=address, model=facts['model'], numa_node=facts['numa_node'],
        iommu_group=facts['iommu_group'],
        isolation=facts['isolation'] or tags.UNKNOWN,
        switch=facts['switch'], free=total - reserved - used >= 1)
    return gpu, bool(reserved) and not used
