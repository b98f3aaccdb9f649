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
"""The real Placement service in this process, with GPU hosts in it.

For the Placement benchmark and the tests that check the simulator's
model of Placement against the real one. :class:`RealPlacement` runs
Placement's own WSGI application (``placement.deploy.loadapp``) with its
own configuration object and an SQLite database, and calls it without a
socket (one ``webob`` request per call: what Placement does per call is
all that is measured). :meth:`RealPlacement.add_gpu_host` registers a
compute node the way nova-compute does with ``[pci] report_in_placement``
(``nova/compute/pci_placement_translator.py``): a root provider with VCPU,
MEMORY_MB and DISK_GB, one child provider ``<host>_<ADDRESS>`` per GPU
with one unit of the GPU's resource class and the traits of its
device_spec plus ``COMPUTE_MANAGED_PCI_DEVICE``.

Needs ``openstack-placement`` (a test dependency); nothing here is
imported by the agent or the scheduler plugins.
"""

import json
import uuid

#: Microversion of every call: allocation candidates with mappings (1.34),
#: provider summaries of whole trees (1.29), consumer types (1.38).
MICROVERSION = '1.39'
#: Trait nova-compute puts on every PCI device provider.
MANAGED_TRAIT = 'COMPUTE_MANAGED_PCI_DEVICE'


class PlacementError(RuntimeError):
    """Placement answered a call with an error status."""


class RealPlacement(object):
    """Placement's WSGI application with a private configuration and DB.

    Use as a context manager. ``options`` are Placement options, e.g.
    ``{('placement', 'max_allocation_candidates'): 1000}``; change them
    later with :meth:`configure` (Placement reads them on every request).

    :param options: ``{(group, name): value}``.
    :param database: an SQLAlchemy URL; the default is an in-memory SQLite
        database (Placement's own test fixture).
    """

    def __init__(self, options=None, database=None):
        self._options = dict(options or {})
        self._database = database
        self._fixtures = []
        self.app = None
        self.conf = None

    def __enter__(self):
        # NOTE: imported here so that importing this module needs no
        # placement (the module is collected with the rest of testing/).
        from oslo_config import cfg
        from oslo_config import fixture as config_fixture
        from placement import deploy
        from placement.tests.functional.fixtures import placement as pfix

        conf_fixture = config_fixture.Config(cfg.ConfigOpts())
        conf_fixture.setUp()
        self._fixtures.append(conf_fixture)
        database = self._database

        class _Fixture(pfix.PlacementFixture):
            def _configure_placement(self, conf_fixture):
                if database:
                    conf_fixture.config(connection=database,
                                        group='placement_database')

        fixture = _Fixture(conf_fixture=conf_fixture, use_intercept=False)
        fixture.setUp()
        self._fixtures.append(fixture)
        self.conf = conf_fixture
        self.configure(self._options)
        self.app = deploy.loadapp(conf_fixture.conf)
        return self

    def __exit__(self, *exc_info):
        while self._fixtures:
            self._fixtures.pop().cleanUp()
        return False

    def configure(self, options):
        """Set Placement options: ``{(group, name): value}``."""
        for (group, name), value in options.items():
            self.conf.config(group=group, **{name: value})

    def use(self, options):
        """Exactly ``options`` among those that shape candidates.

        The options of :data:`~gpu_passthrough_filter.recommended.
        PLACEMENT_OPTIONS` not in ``options`` go back to Placement's own
        defaults.
        """
        from gpu_passthrough_filter import recommended

        for option in recommended.PLACEMENT_OPTIONS:
            self.conf.conf.clear_override(option.name, group=option.group)
        self.configure(options)

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        """One API call; returns the decoded JSON body (or None).

        :raises PlacementError: for a status not in ``expect``.
        """
        import webob

        request = webob.Request.blank(path, method=method)
        request.headers['X-Auth-Token'] = 'admin'
        request.headers['OpenStack-API-Version'] = (
            'placement %s' % MICROVERSION)
        request.headers['Accept'] = 'application/json'
        if body is not None:
            request.body = json.dumps(body).encode()
            request.content_type = 'application/json'
        response = request.get_response(self.app)
        if response.status_int not in expect:
            raise PlacementError('%s %s: %s %s' % (
                method, path, response.status, response.text[:500]))
        return response.json if response.body else None

    def _provider(self, name, parent=None, rp_uuid=None):
        body = {'name': name, 'uuid': rp_uuid or str(uuid.uuid4())}
        if parent:
            body['parent_provider_uuid'] = parent
        return self.call('POST', '/resource_providers', body)

    def _inventories(self, provider, inventories):
        self.call('PUT', '/resource_providers/%s/inventories'
                  % provider['uuid'],
                  {'inventories': inventories,
                   'resource_provider_generation': provider['generation']})
        provider['generation'] += 1

    def _traits(self, provider, traits):
        self.call('PUT', '/resource_providers/%s/traits' % provider['uuid'],
                  {'traits': sorted(traits),
                   'resource_provider_generation': provider['generation']})
        provider['generation'] += 1

    def ensure_classes(self, resource_classes=(), traits=()):
        """Create custom resource classes and traits (idempotent)."""
        for name in resource_classes:
            self.call('PUT', '/resource_classes/%s' % name)
        for name in traits:
            self.call('PUT', '/traits/%s' % name)

    def add_gpu_host(self, hostname, gpus, vcpus=64, memory_mb=524288,
                     disk_gb=4096, root_uuid=None, provider_uuids=None):
        """Register one compute node as nova-compute does.

        :param hostname: the compute node's name (its root provider's).
        :param gpus: ``[(address, resource_class, traits)]`` in the order
            nova-compute reports them; custom classes and traits must exist
            (:meth:`ensure_classes`).
        :param root_uuid: the compute node's uuid (random by default).
        :param provider_uuids: ``{address: uuid}`` of the GPU providers
            (nova-compute takes the PCI device's uuid); random by default.
        :returns: ``(root uuid, {address: provider uuid})``.
        """
        provider_uuids = provider_uuids or {}
        root = self._provider(hostname, rp_uuid=root_uuid)
        self._inventories(root, {
            'VCPU': {'total': vcpus},
            'MEMORY_MB': {'total': memory_mb},
            'DISK_GB': {'total': disk_gb}})
        providers = {}
        for address, resource_class, traits in gpus:
            child = self._provider('%s_%s' % (hostname, address.upper()),
                                   parent=root['uuid'],
                                   rp_uuid=provider_uuids.get(address))
            self._inventories(child, {resource_class: {
                'total': 1, 'max_unit': 1, 'min_unit': 1, 'step_size': 1,
                'reserved': 0, 'allocation_ratio': 1.0}})
            self._traits(child, set(traits) | {MANAGED_TRAIT})
            providers[address] = child['uuid']
        return root['uuid'], providers

    def allocation_candidates(self, querystring):
        """``GET /allocation_candidates?<querystring>``, decoded."""
        return self.call('GET', '/allocation_candidates?%s' % querystring)

    def allocate(self, consumer, allocation_request, project='p', user='u'):
        """Claim one allocation request for a consumer, as nova does."""
        body = {'allocations': allocation_request['allocations'],
                'project_id': project, 'user_id': user,
                'consumer_generation': None, 'consumer_type': 'INSTANCE'}
        self.call('PUT', '/allocations/%s' % consumer, body)
