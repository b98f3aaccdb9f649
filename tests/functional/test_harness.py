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
"""The functional harness itself, proven inside a real in-process Nova.

Each test starts real nova services (a few seconds each), so each proves
several things about the harness at once.
"""

import json

import testtools

from gpu_passthrough_filter import tags
from tests import fake_gpus
from tests.functional import base

FakeGPU = fake_gpus.FakeGPU


def _tag_values(pool):
    """The agent's tags in one scheduler pool."""
    return {key: value for key, value in pool.items()
            if key.startswith(tags.TAG_PREFIX)}


class HarnessTest(base.GPUServersTestBase):

    def test_server_lands_on_the_host_with_the_requested_model(self):
        """Only host2 has an H100: the server gets host2's H100."""
        self.start_gpu_compute('host1', [
            FakeGPU('0000:81:00.0', model=fake_gpus.A100)])
        self.start_gpu_compute('host2', [
            FakeGPU('0000:82:00.0', numa_node=1)])
        flavor = self.create_gpu_flavor('h100:1')
        log = self.capture_scheduler_log()

        server = self.boot_server(flavor)

        self.assert_server_gpus(server, 'host2', ['0000:82:00.0'])
        self.assertEqual([], self.free_gpu_addresses('host2'))
        self.assertEqual(['0000:81:00.0'], self.free_gpu_addresses('host1'))
        # The rejection is logged at DEBUG, which nova's stdlog drops.
        rejections = [line for line in log.output.splitlines()
                      if "doesn't have the required PCI devices" in line]
        self.assertEqual(1, len(rejections), log.output)
        self.assertIn('(host1, host1)', rejections[0])
        # The only H100 is taken now.
        self.boot_server_expecting_no_valid_host(flavor)

    def test_device_spec_tags_reach_the_scheduler_pools(self):
        """Each host's own tags arrive, one pool per GPU address."""
        self.start_gpu_compute('tagged', [
            FakeGPU('0000:81:00.0', numa_node=0, iommu_group=12,
                    switch='0000:80:00.0'),
            FakeGPU('0000:c1:00.0', numa_node=1, iommu_group=40),
            FakeGPU('0000:c2:00.0', numa_node=1, iommu_group=40,
                    model=fake_gpus.A100),
        ])
        self.start_gpu_compute(
            'by-hand', [FakeGPU('0000:81:00.0')], tagged=False)

        pools = self.scheduler_pools('tagged')

        self.assertEqual(
            ['0000:81:00.0', '0000:c1:00.0', '0000:c2:00.0'],
            [pool['address'] for pool in pools])
        self.assertEqual([1, 1, 1], [pool['count'] for pool in pools])
        self.assertEqual(['2330', '2330', '20b2'],
                         [pool['product_id'] for pool in pools])
        self.assertEqual({
            tags.IOMMU_GROUP: '12', tags.ISOLATION: tags.ISOLATED,
            tags.SWITCH: '0000:80:00.0', tags.ROOT: 'pci0000:00',
            tags.NUMA_NODE: '0', tags.MODEL: '10de:2330',
            tags.GROUP_GPUS: '1',
        }, _tag_values(pools[0]))
        self.assertEqual({
            tags.IOMMU_GROUP: '40', tags.ISOLATION: tags.SHARED,
            tags.SWITCH: tags.NO_SWITCH, tags.ROOT: 'pci0000:80',
            tags.NUMA_NODE: '1', tags.MODEL: '10de:20b2',
            tags.GROUP_GPUS: '2',
        }, _tag_values(pools[2]))
        self.assertEqual(1, pools[1]['numa_node'])
        self.assertNotIn('rp_uuid', pools[0])
        # The second host was started with its own device_spec.
        by_hand = self.scheduler_pools('by-hand')
        self.assertEqual(['0000:81:00.0'],
                         [pool['address'] for pool in by_hand])
        self.assertEqual({}, _tag_values(by_hand[0]))
        # A restart re-reads device_spec: the host gets its own back.
        self.restart_gpu_compute('tagged')
        self.assertEqual(pools, self.scheduler_pools('tagged'))

    def test_scheduler_options(self):
        """Filters and weighers follow the class and configure_scheduler."""
        manager = self.scheduler.manager.host_manager
        self.assertEqual(
            list(base.NOVA_DEFAULT_FILTERS) + list(base.GPU_FILTERS),
            [type(f).__name__ for f in manager.enabled_filters])

        self.configure_scheduler(
            extra_filters=['AggregateInstanceExtraSpecsFilter'],
            weight_classes=['nova.scheduler.weights.pci.PCIWeigher'])

        manager = self.scheduler.manager.host_manager
        self.assertEqual(
            'AggregateInstanceExtraSpecsFilter',
            type(manager.enabled_filters[-1]).__name__)
        self.assertEqual(
            ['PCIWeigher'], [type(w).__name__ for w in manager.weighers])


class HarnessPCIInPlacementTest(base.GPUServersTestBase):

    PCI_IN_PLACEMENT = True

    def test_pools_carry_providers_and_servers_get_gpus(self):
        """Pools map to Placement providers; each claim follows them."""
        self.start_gpu_compute('host1', [
            FakeGPU('0000:81:00.0', numa_node=0),
            FakeGPU('0000:c1:00.0', numa_node=1),
        ])
        providers = self.gpu_provider_uuids('host1')
        pools = self.scheduler_pools('host1')
        self.assertEqual(
            {'0000:81:00.0', '0000:c1:00.0'}, set(providers))
        self.assertEqual(
            providers, {pool['address']: pool['rp_uuid'] for pool in pools})
        self.assertEqual(tags.ISOLATED, pools[0][tags.ISOLATION])

        servers = self.boot_servers(self.create_gpu_flavor('h100:1'), 2)

        addresses = []
        for server in servers:
            self.assertEqual('host1', self.server_host(server))
            [address] = self.server_pci_addresses(server)
            allocations = self._get_allocations_by_server_uuid(server['id'])
            self.assertEqual(
                {'CUSTOM_PCI_10DE_2330': 1},
                allocations[providers[address]]['resources'])
            addresses.append(address)
        self.assertEqual(['0000:81:00.0', '0000:c1:00.0'], sorted(addresses))


class FakeGPUsTest(testtools.TestCase):
    """The declarative side, without nova (fast)."""

    def test_eight_gpu_host_shape(self):
        gpus = fake_gpus.eight_gpu_host()
        self.assertEqual(8, len({gpu.address for gpu in gpus}))
        by_switch = {}
        for gpu in gpus:
            by_switch.setdefault(gpu.switch, set()).add(gpu.numa_node)
        self.assertEqual(4, len(by_switch))
        self.assertEqual([{0}, {0}, {1}, {1}],
                         sorted(by_switch.values(), key=min))
        self.assertEqual([4, 4], [sum(gpu.numa_node == node for gpu in gpus)
                                  for node in (0, 1)])

    def test_shared_group_is_derived_from_the_host(self):
        gpus = fake_gpus.assign_iommu_groups([
            FakeGPU('0000:81:00.0', iommu_group=7),
            FakeGPU('0000:82:00.0', iommu_group=7),
            FakeGPU('0000:83:00.0',
                    spec_extra={tags.SWITCH: None, 'traits': 'CUSTOM_X'}),
        ])
        specs = [json.loads(spec)
                 for spec in fake_gpus.host_device_specs(gpus)]
        self.assertEqual(
            [(tags.SHARED, '2'), (tags.SHARED, '2'), (tags.ISOLATED, '1')],
            [(spec[tags.ISOLATION], spec[tags.GROUP_GPUS])
             for spec in specs])
        self.assertEqual('100', specs[2][tags.IOMMU_GROUP])
        self.assertNotIn(tags.SWITCH, specs[2])
        self.assertEqual('CUSTOM_X', specs[2]['traits'])
        untagged = json.loads(fake_gpus.host_device_specs(
            gpus, tagged=False)[0])
        self.assertEqual({'vendor_id': '10de', 'product_id': '2330',
                          'address': '0000:81:00.0'}, untagged)

    def test_bad_address_is_refused(self):
        self.assertRaises(ValueError, FakeGPU, '0000:81:00')
        self.assertRaises(ValueError, FakeGPU, '0001:81:00.0')
