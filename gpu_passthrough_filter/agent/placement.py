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
"""The ``placement`` publisher: host traits on the compute node provider.

The traits go on the compute node's *root* resource provider, found by its
name, the hypervisor hostname (``[agent] host``): nova-compute keeps custom
traits there across its periodic updates and restarts (verified on Nova
34), while it wipes traits added from outside to its per-device PCI
providers, so the agent never writes those.

Only traits with the agent's prefix (:func:`gpu_passthrough_filter.traits.
is_owned`) are added or removed; every other trait of the provider (nova's
``COMPUTE_*``, an operator's ``CUSTOM_*``) is written back unchanged.
Writing is a read-modify-write of the whole trait list with the provider
generation: a 409 ``placement.concurrent_update`` means somebody else
changed the provider between the read and the write, so the agent re-reads
and decides again (never resends a stale generation). Nothing is written
when the traits already match: a steady state costs two GET calls.

With ``[nova_pci] report_in_placement`` the publisher also holds the
unhealthy and cordoned GPUs back from new guests by reserving their PCI
providers (:mod:`.holds`): one more GET for the tree, and one per GPU.
"""

from urllib import parse

from oslo_log import log as logging

from gpu_passthrough_filter.agent import base
from gpu_passthrough_filter.agent import client as client_mod
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.agent import holds
from gpu_passthrough_filter.agent import selection
from gpu_passthrough_filter import traits

LOG = logging.getLogger(__name__)

#: Read-decide-write rounds before giving up on a provider whose traits
#: keep changing (the daemon retries the whole publish later).
MAX_ATTEMPTS = 8


def desired_traits(inventory, include_shared_groups=False,
                   hold_in_placement=False):
    """The agent-owned traits the host should carry.

    :param inventory: the discovered :class:`~gpu_passthrough_filter.
        inventory.model.HostInventory`.
    :param include_shared_groups: as ``[nova_pci] include_shared_groups``:
        decides which GPUs are offered (:mod:`.selection`).
    :param hold_in_placement: as ``[nova_pci] report_in_placement``.
    :returns: a set of trait names, all :func:`traits.is_owned`.
    """
    gpus = selection.offered(selection.choose(
        inventory, include_shared_groups, hold_in_placement))
    return _traits_of(inventory, gpus)


def _traits_of(inventory, gpus):
    """The owned traits of a host that offers ``gpus``."""
    wanted = set()
    if inventory.iommu_enabled:
        wanted.add(traits.IOMMU_ENABLED)
    if any(gpu.vfio_ready for gpu in gpus):
        wanted.add(traits.PASSTHROUGH_READY)
    switches = [gpu.switch for gpu in gpus if gpu.switch]
    if len(switches) > len(set(switches)):
        wanted.add(traits.SHARED_SWITCH)
    wanted.update(traits.model_trait(gpu.vendor, gpu.device) for gpu in gpus)
    return wanted


def merge(current, wanted):
    """``current`` with its owned traits replaced by ``wanted``.

    :param current: every trait the provider has now.
    :param wanted: the owned traits it should have.
    """
    return {name for name in current if not traits.is_owned(name)} | set(
        wanted)


class PlacementPublisher(base.Publisher):
    """Publishes :func:`desired_traits` on the host's root provider.

    :param conf: the agent's ``ConfigOpts``.
    :param connection: an openstacksdk connection; None: built from
        ``conf`` on first use (:func:`.client.connect`).
    """

    def __init__(self, conf, connection=None):
        super().__init__(conf)
        self._connection = connection

    @property
    def client(self):
        if self._connection is None:
            self._connection = client_mod.connect(self.conf)
        return client_mod.PlacementClient(self._connection)

    def publish(self, inventory):
        nova_pci = self.conf.nova_pci
        choices = selection.choose(inventory, nova_pci.include_shared_groups,
                                   nova_pci.report_in_placement)
        client = self.client
        uuid = self.find_provider(client, self.conf.agent.host)
        changed, summary = self.publish_traits(
            client, uuid, _traits_of(inventory, selection.offered(choices)))
        if nova_pci.report_in_placement:
            held = holds.publish_holds(client, uuid, self.conf.agent.host, {
                choice.gpu.address: choice.held
                for choice in choices if choice.offered})
            if held:
                changed = True
                summary += '; %s' % ', '.join(held)
        return base.PublishResult(changed=changed, summary=summary)

    def publish_traits(self, client, uuid, wanted):
        """Give provider ``uuid`` the owned traits ``wanted``.

        :returns: ``(changed, summary)``.
        """
        created = set()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            current, generation = self.read_traits(client, uuid)
            target = merge(current, wanted)
            if target == current:
                return False, 'traits of %s up to date' % uuid
            for name in sorted(target - current - created):
                self.ensure_trait(client, name)
                created.add(name)
            if self.write_traits(client, uuid, target, generation):
                return True, _describe(uuid, current, target)
            LOG.info('Traits of resource provider %(uuid)s changed under '
                     'the agent (generation %(gen)d, attempt %(n)d of '
                     '%(max)d); reading them again.',
                     {'uuid': uuid, 'gen': generation, 'n': attempt,
                      'max': MAX_ATTEMPTS})
        raise exception.ConcurrentUpdate(uuid=uuid, attempts=MAX_ATTEMPTS)

    @staticmethod
    def find_provider(client, host):
        """UUID of the root provider named ``host``.

        :raises exception.ProviderNotFound: no provider has that name.
        """
        response = client.request('GET', '/resource_providers?name=%s'
                                  % _quote(host))
        providers, = client_mod.json_fields(response, 'resource_providers')
        if not providers:
            raise exception.ProviderNotFound(host=host)
        try:
            return providers[0]['uuid']
        except (KeyError, IndexError, TypeError) as exc:
            raise exception.MalformedAnswer(
                method='GET', url='/resource_providers?name=%s' % host,
                status=response.status_code,
                reason='no provider uuid (%r)' % exc)

    @staticmethod
    def read_traits(client, uuid):
        """``(set of traits, generation)`` of provider ``uuid``."""
        response = client.request('GET', '/resource_providers/%s/traits'
                                  % uuid)
        traits, generation = client_mod.json_fields(
            response, 'traits', 'resource_provider_generation')
        return set(traits), generation

    @staticmethod
    def ensure_trait(client, name):
        """Create custom trait ``name`` unless it exists (idempotent)."""
        if name.startswith('CUSTOM_'):
            client.request('PUT', '/traits/%s' % name, ok=(201, 204))

    @staticmethod
    def write_traits(client, uuid, names, generation):
        """Replace the provider's traits if its generation is unchanged.

        :returns: True when written; False on a generation conflict.
        """
        response = client.request(
            'PUT', '/resource_providers/%s/traits' % uuid,
            body={'traits': sorted(names),
                  'resource_provider_generation': generation},
            ok=(200, 409))
        if response.status_code == 200:
            return True
        code = client_mod.error_code(response)
        if code not in (None, client_mod.CONCURRENT_UPDATE):
            raise exception.PlacementError(
                status=409, method='PUT',
                url='/resource_providers/%s/traits' % uuid,
                detail=client_mod.error_detail(response))
        return False


def _describe(uuid, before, after):
    added = sorted(after - before)
    removed = sorted(before - after)
    return 'traits of %s: added %s; removed %s' % (
        uuid, ', '.join(added) or 'none', ', '.join(removed) or 'none')


def _quote(text):
    return parse.quote(text, safe='')
