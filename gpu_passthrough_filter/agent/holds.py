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
"""Holding a GPU back from new guests through its Placement provider.

With PCI in Placement (nova's ``[pci] report_in_placement``), nova-compute
gives each passthrough device a child resource provider of the compute
node, named ``<compute node>_<PCI ADDRESS>``, with an inventory of one. A
held GPU (unhealthy or cordoned, :func:`.selection.held_reason`) gets
``reserved = total`` on that inventory: Placement then offers it in no
allocation candidate, so the scheduler never chooses it, at once and
without a restart of nova-compute. A guest already on it keeps its
allocation and keeps running (Placement accepts a capacity below the
usage). Nova leaves ``reserved`` to the operator: its PCI inventory names
only ``total`` and ``max_unit`` (verified on Nova 34 in the functional
tests, through nova-compute's periodic update and a restart).

The agent owns ``reserved`` on the providers of the GPUs it publishes:
``total`` when held, 0 otherwise. (nova's ``one_time_use`` devices reserve
themselves; the agent's device_spec never sets that flag.) Each write sends
the provider generation; a conflict re-reads and decides again.
"""

from oslo_log import log as logging

from gpu_passthrough_filter.agent import client as client_mod
from gpu_passthrough_filter.agent import exception

LOG = logging.getLogger(__name__)

#: Read-decide-write rounds per provider before giving up this cycle.
MAX_ATTEMPTS = 8


def provider_address(provider_name, host):
    """The PCI address in a nova PCI provider's name, or None.

    :param provider_name: e.g. ``compute1_0000:81:00.0``.
    :param host: the compute node's provider name, e.g. ``compute1``.
    """
    prefix = host + '_'
    if not provider_name.startswith(prefix):
        return None
    return provider_name[len(prefix):].lower()


def publish_holds(client, root_uuid, host, holds):
    """Make the reserved amounts of the host's PCI providers match ``holds``.

    :param client: a :class:`~.client.PlacementClient`.
    :param root_uuid: the compute node's provider.
    :param host: its name.
    :param holds: PCI address -> why it is held, or None when it is not,
        for every GPU the agent publishes.
    :returns: a list of words, one per change (``held 0000:81:00.0``).
    """
    response = client.request('GET', '/resource_providers?in_tree=%s'
                              % root_uuid)
    providers, = client_mod.json_fields(response, 'resource_providers')
    changes = []
    for provider in providers:
        address = provider_address(provider.get('name') or '', host)
        if address not in holds:
            continue
        if set_reserved(client, provider['uuid'], bool(holds[address])):
            verb = 'held' if holds[address] else 'released'
            LOG.info('%(verb)s GPU %(address)s (resource provider '
                     '%(uuid)s)%(why)s', {
                         'verb': verb.capitalize(), 'address': address,
                         'uuid': provider['uuid'],
                         'why': ': %s' % holds[address] if holds[address]
                         else ''})
            changes.append('%s %s' % (verb, address))
    return changes


def set_reserved(client, uuid, hold):
    """Reserve all of (or none of) every inventory of provider ``uuid``.

    :returns: True when something was written.
    """
    url = '/resource_providers/%s/inventories' % uuid
    for _attempt in range(MAX_ATTEMPTS):
        inventories, generation = client_mod.json_fields(
            client.request('GET', url), 'inventories',
            'resource_provider_generation')
        target = {rc: dict(inv, reserved=inv['total'] if hold else 0)
                  for rc, inv in inventories.items()}
        if target == inventories:
            return False
        response = client.request(
            'PUT', url, body={'inventories': target,
                              'resource_provider_generation': generation},
            ok=(200, 409),
            microversion=client_mod.RESERVE_ALL_MICROVERSION)
        if response.status_code == 200:
            return True
        if client_mod.error_code(response) not in (
                None, client_mod.CONCURRENT_UPDATE):
            raise exception.PlacementError(
                status=409, method='PUT', url=url,
                detail=client_mod.error_detail(response))
    raise exception.ConcurrentUpdate(uuid=uuid, attempts=MAX_ATTEMPTS)
