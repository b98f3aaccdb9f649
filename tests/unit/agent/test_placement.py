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
"""The placement publisher against placement's real WSGI application."""

from oslotest import base

from gpu_passthrough_filter.agent import cordon
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.agent import placement
from gpu_passthrough_filter import traits
from tests.unit.agent import fixtures as agent_fixtures

M = agent_fixtures.MACHINES
DGX_TRAITS = {traits.IOMMU_ENABLED, traits.PASSTHROUGH_READY,
              traits.SHARED_SWITCH, traits.model_trait('10de', '20b0')}
#: Traits that belong to others: nova's and an operator's.
FOREIGN = {'COMPUTE_NODE', 'HW_CPU_X86_AVX2', 'CUSTOM_RACK_7'}


class DesiredTraitsTest(base.BaseTestCase):
    """Which owned traits each named machine gets."""

    def desired(self, machine, include_shared=False):
        inventory = agent_fixtures.machine_inventory(self, machine)
        return placement.desired_traits(inventory, include_shared)

    def test_dgx(self):
        self.assertEqual(DGX_TRAITS, self.desired(M.dgx_a100_like))

    def test_rtx4090_shares_no_switch(self):
        # Not bound to vfio-pci (no driver in the tree): unbound GPUs are
        # ready too; no two GPUs under one switch.
        self.assertEqual(
            {traits.IOMMU_ENABLED, traits.PASSTHROUGH_READY,
             traits.model_trait('10de', '2684')},
            self.desired(M.pcie_8gpu_rtx4090))

    def test_gpu_sharing_group_with_nic_gives_no_gpu_trait(self):
        self.assertEqual({traits.IOMMU_ENABLED},
                         self.desired(M.intel_pch_no_acs))

    def test_two_gpus_one_group_only_when_shared_groups_offered(self):
        self.assertEqual({traits.IOMMU_ENABLED},
                         self.desired(M.two_gpus_one_group))
        self.assertEqual(
            {traits.IOMMU_ENABLED, traits.PASSTHROUGH_READY,
             traits.SHARED_SWITCH, traits.model_trait('10de', '2330')},
            self.desired(M.two_gpus_one_group, include_shared=True))

    def test_vm_without_iommu_gets_nothing(self):
        self.assertEqual(set(), self.desired(M.no_gpu_virtio_vm))

    def test_all_desired_traits_are_owned(self):
        for machine in M.MACHINES:
            for name in self.desired(machine, include_shared=True):
                self.assertTrue(traits.is_owned(name), name)


class PlacementPublisherTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.placement = self.useFixture(
            agent_fixtures.InProcessPlacement())
        self.uuid = self.placement.create_provider('gpu-host')
        self.conf = agent_fixtures.agent_conf(self, self.placement)
        self.publisher = placement.PlacementPublisher(self.conf)
        self.dgx = agent_fixtures.machine_inventory(self, M.dgx_a100_like)

    def test_adds_owned_traits_keeps_foreign_removes_stale(self):
        stale = traits.model_trait('10de', '1e04')
        self.placement.set_traits(self.uuid, FOREIGN | {stale})
        result = self.publisher.publish(self.dgx)
        self.assertTrue(result.changed)
        self.assertFalse(result.restart_needed)
        self.assertEqual(FOREIGN | DGX_TRAITS,
                         self.placement.traits(self.uuid)[0])

    def test_steady_state_costs_no_write(self):
        self.publisher.publish(self.dgx)
        self.placement.requests[:] = []
        result = self.publisher.publish(self.dgx)
        self.assertFalse(result.changed)
        self.assertEqual([], self.placement.writes())
        self.assertEqual(2, len(self.placement.requests))

    def test_inventory_change_replaces_owned_traits(self):
        self.publisher.publish(self.dgx)
        rtx = agent_fixtures.machine_inventory(self, M.pcie_8gpu_rtx4090)
        self.assertTrue(self.publisher.publish(rtx).changed)
        self.assertEqual(
            {traits.IOMMU_ENABLED, traits.PASSTHROUGH_READY,
             traits.model_trait('10de', '2684')},
            self.placement.traits(self.uuid)[0])

    def test_conflict_rereads_and_keeps_the_other_writer_change(self):
        """A concurrent writer between read and write: 409, re-read.

        The agent must keep the other writer's trait and add its own.
        """
        def concurrent_writer(method, path):
            if method == 'PUT' and path.endswith('/traits') and not fired:
                fired.append(path)
                self.placement.set_traits(self.uuid, {'CUSTOM_RACK_7'})
        fired = []
        self.placement.hooks.append(concurrent_writer)
        self.assertTrue(self.publisher.publish(self.dgx).changed)
        self.assertEqual({'CUSTOM_RACK_7'} | DGX_TRAITS,
                         self.placement.traits(self.uuid)[0])
        trait_puts = [r for r in self.placement.writes()
                      if r[1].endswith('/traits')]
        self.assertEqual(2, len(trait_puts))

    def test_endless_conflicts_give_up_transient_without_owned_traits(self):
        def meddler(method, path):
            if method == 'PUT' and path.endswith('/traits'):
                meddled.append(path)
                self.placement.set_traits(
                    self.uuid, {'CUSTOM_RACK_%d' % len(meddled)})
        meddled = []
        self.placement.hooks.append(meddler)
        exc = self.assertRaises(exception.ConcurrentUpdate,
                                self.publisher.publish, self.dgx)
        self.assertTrue(exc.transient)
        self.assertEqual(placement.MAX_ATTEMPTS, len(meddled))
        self.assertEqual({'CUSTOM_RACK_%d' % placement.MAX_ATTEMPTS},
                         self.placement.traits(self.uuid)[0])

    def test_provider_not_found(self):
        conf = agent_fixtures.agent_conf(self, self.placement,
                                         host='not-registered')
        exc = self.assertRaises(exception.ProviderNotFound,
                                placement.PlacementPublisher(conf).publish,
                                self.dgx)
        self.assertIn("'not-registered'", str(exc))
        self.assertFalse(exc.transient)

    def test_server_error_is_transient_and_writes_nothing(self):
        self.placement.hooks.append(
            lambda method, path: 503 if path.endswith('/traits') else None)
        exc = self.assertRaises(exception.PlacementUnavailable,
                                self.publisher.publish, self.dgx)
        self.assertTrue(exc.transient)
        self.assertEqual([], self.placement.writes())
        self.assertEqual(set(), self.placement.traits(self.uuid)[0])

    def test_success_status_with_a_proxy_page_is_a_clear_transient_error(self):
        """HTTP 200 with an HTML body, or JSON without the fields.

        Before: JSONDecodeError / KeyError escaped the publisher and ended
        the daemon.
        """
        for body, ctype, fragment in (
                (b'<html>maintenance</html>', 'text/html', 'not JSON'),
                (b'{"traits": []}', 'application/json',
                 'no resource_provider_generation')):
            hook = (lambda method, path, body=body, ctype=ctype:
                    (200, body, ctype) if path.endswith('/traits') and
                    method == 'GET' else None)
            self.placement.hooks[:] = [hook]
            exc = self.assertRaises(exception.MalformedAnswer,
                                    self.publisher.publish, self.dgx)
            self.assertTrue(exc.transient)
            self.assertIn(fragment, str(exc))
            self.assertIn('HTTP 200', str(exc))
            self.assertEqual([], self.placement.writes())

    def test_forbidden_token(self):
        conf = agent_fixtures.agent_conf(
            self, self.placement, placement={'token': 'demo'})
        exc = self.assertRaises(exception.AuthError,
                                placement.PlacementPublisher(conf).publish,
                                self.dgx)
        self.assertIn('HTTP 403', str(exc))
        self.assertFalse(exc.transient)

    def test_unreachable_is_transient(self):
        conf = agent_fixtures.agent_conf(
            self, None, placement={'auth_type': 'admin_token',
                                   'endpoint': 'http://127.0.0.1:9/',
                                   'token': 'admin', 'timeout': 2})
        exc = self.assertRaises(exception.PlacementUnavailable,
                                placement.PlacementPublisher(conf).publish,
                                self.dgx)
        self.assertTrue(exc.transient)

    def test_missing_auth_is_a_config_error(self):
        conf = agent_fixtures.agent_conf(self, None)
        self.assertRaises(exception.ConfigError,
                          placement.PlacementPublisher(conf).publish,
                          self.dgx)


class HoldsTest(base.BaseTestCase):
    """Held GPUs reserved on their nova PCI providers, in real Placement."""

    RC = 'CUSTOM_PCI_10DE_26B9'

    def setUp(self):
        super().setUp()
        self.placement = self.useFixture(
            agent_fixtures.InProcessPlacement())
        self.root = self.placement.create_provider('gpu-host')
        self.conf = agent_fixtures.agent_conf(
            self, self.placement, nova_pci={'report_in_placement': True})
        self.publisher = placement.PlacementPublisher(self.conf)
        self.inventory = agent_fixtures.machine_inventory(
            self, M.pcie_4gpu_dual_socket_l40s)
        self.gpus = [gpu.address for gpu in self.inventory.gpus]
        # As nova-compute names them: <compute node>_<ADDRESS IN CAPITALS>.
        self.pci = {address: self.pci_provider(address)
                    for address in self.gpus}

    def pci_provider(self, address):
        status, body = self.placement.call('POST', '/resource_providers', {
            'name': 'gpu-host_%s' % address.upper(),
            'parent_provider_uuid': self.root})
        self.assertEqual(200, status, body)
        self.placement.call('PUT', '/resource_classes/%s' % self.RC)
        status, _ = self.placement.call(
            'PUT', '/resource_providers/%s/inventories' % body['uuid'], {
                'resource_provider_generation': body['generation'],
                'inventories': {self.RC: {'total': 1, 'max_unit': 1}}})
        self.assertEqual(200, status)
        return body['uuid']

    def reserved(self):
        found = {}
        for address, uuid in self.pci.items():
            _, body = self.placement.call(
                'GET', '/resource_providers/%s/inventories' % uuid)
            found[address] = body['inventories'][self.RC]['reserved']
        return found

    def publish(self, cordons):
        cordon.apply(self.inventory, cordons)
        return self.publisher.publish(self.inventory)

    def test_hold_release_and_steady_state(self):
        first = self.gpus[0]
        result = self.publish({first: cordon.Cordon(first, 'RMA', 0.0)})
        self.assertTrue(result.changed)
        self.assertIn('held %s' % first, result.summary)
        self.assertEqual({a: int(a == first) for a in self.gpus},
                         self.reserved())
        del self.placement.requests[:]
        self.assertFalse(self.publish({first: cordon.Cordon(
            first, 'RMA', 0.0)}).changed)
        self.assertEqual([], self.placement.writes())
        result = self.publish({})
        self.assertIn('released %s' % first, result.summary)
        self.assertEqual(dict.fromkeys(self.gpus, 0), self.reserved())

    def test_a_guest_on_a_held_gpu_keeps_its_allocation(self):
        first = self.gpus[0]
        consumer = '5ee4c8b0-1111-4222-8333-944445555666'
        status, body = self.placement.call(
            'PUT', '/allocations/%s' % consumer, {
                'allocations': {self.pci[first]: {
                    'resources': {self.RC: 1}}},
                'project_id': consumer, 'user_id': consumer})
        self.assertEqual(204, status, body)
        self.publish({cordon.HOST: cordon.Cordon(cordon.HOST, 'rack', 0.0)})
        self.assertEqual(dict.fromkeys(self.gpus, 1), self.reserved())
        _, body = self.placement.call('GET', '/allocations/%s' % consumer)
        self.assertEqual({self.pci[first]}, set(body['allocations']))
        # Nothing left to give: no allocation candidate for the class.
        _, body = self.placement.call(
            'GET', '/allocation_candidates?resources=%s:1' % self.RC)
        self.assertEqual([], body['allocation_requests'])

    def test_legacy_mode_touches_no_pci_provider(self):
        conf = agent_fixtures.agent_conf(self, self.placement)
        first = self.gpus[0]
        cordon.apply(self.inventory, {first: cordon.Cordon(first, 'x', 0.)})
        placement.PlacementPublisher(conf).publish(self.inventory)
        self.assertEqual(dict.fromkeys(self.gpus, 0), self.reserved())
