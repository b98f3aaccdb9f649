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
"""GPU health from sysfs, one injected fault per test.

A fake tree written like the kernel's (two isolated GPUs on vfio-pci),
then one file changed with :class:`FakeSysfs`, then read back by the real
reader; the agent's selection must not offer an unhealthy GPU.
"""

import fixtures
from oslotest import base

from gpu_passthrough_filter.agent import selection
from gpu_passthrough_filter.inventory import health
from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter.testing import fake_sysfs
from tests.unit.inventory import tree as sysfs_tree

GPU = '0000:02:00.0'
OTHER = '0000:03:00.0'


class HealthTreeCase(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.tree = sysfs_tree.two_root_ports(
            self.root, fake_sysfs.nvidia_gpu(GPU, iommu_group=7),
            fake_sysfs.nvidia_gpu(OTHER, iommu_group=9))

    def read(self):
        return sysfs.read_inventory(self.root, hostname='h')

    def gpu(self, inventory=None):
        return (inventory or self.read()).gpu(GPU)

    def assert_health(self, state, fragment):
        gpu = self.gpu()
        self.assertEqual(state, gpu.health, gpu.health_reasons)
        self.assertIn(fragment, ' '.join(gpu.health_reasons))


class HealthTest(HealthTreeCase):

    def test_intact_gpus_are_ready_and_offered(self):
        inventory = self.read()
        self.assertEqual([health.READY] * 2,
                         [g.health for g in inventory.gpus])
        self.assertEqual(2, len(selection.offered(selection.choose(
            inventory))))

    def test_config_space_all_ones(self):
        self.tree.corrupt(GPU, 'config', b'\xff' * 64)
        self.assert_health(health.UNHEALTHY, 'config space reads all ones')

    def test_fatal_aer_errors(self):
        self.tree.corrupt(GPU, 'aer_dev_fatal',
                          'Undefined 0\nDLP 1\nTOTAL_ERR_FATAL 1\n')
        self.assert_health(health.UNHEALTHY, '1 fatal PCIe AER error')

    def test_no_reset_method(self):
        self.tree.corrupt(GPU, 'reset_method', '\n')
        self.assert_health(health.UNHEALTHY, 'no reset method')

    def test_link_below_capability_is_degraded_but_offered(self):
        self.tree.corrupt(GPU, 'current_link_width', '8\n')
        self.assert_health(health.DEGRADED, 'capable of')
        choices = {c.gpu.address: c for c in selection.choose(self.read())}
        self.assertTrue(choices[GPU].offered)

    def test_host_driver_is_degraded(self):
        self.tree.relink(GPU, 'driver', '../../../../bus/pci/drivers/nvidia')
        self.assert_health(health.DEGRADED, 'bound to nvidia')

    def test_an_unhealthy_gpu_is_not_offered(self):
        self.tree.corrupt(GPU, 'config', b'\xff' * 64)
        choices = {c.gpu.address: c for c in selection.choose(self.read())}
        self.assertFalse(choices[GPU].offered)
        self.assertIn('unhealthy: config space', choices[GPU].reason)
        self.assertTrue(choices[OTHER].offered)

    def test_a_gone_device(self):
        inventory = self.read()
        self.tree.vanish(GPU)
        gone = self.read()
        self.assertIsNone(gone.gpu(GPU))
        self.assertEqual(health.UNHEALTHY, health.assess(
            inventory.gpu(GPU), gone).state)


class TrackerTest(HealthTreeCase):
    """What needs history: rising counters and flap damping."""

    def test_rising_correctable_errors_degrade(self):
        tracker = health.HealthTracker()
        self.tree.corrupt(GPU, 'aer_dev_correctable', 'TOTAL_ERR_COR 4\n')
        self.assertEqual(health.READY,
                         self.gpu(tracker.assess(self.read())).health)
        self.tree.corrupt(GPU, 'aer_dev_correctable', 'TOTAL_ERR_COR 9\n')
        gpu = self.gpu(tracker.assess(self.read()))
        self.assertEqual(health.DEGRADED, gpu.health)
        self.assertIn('correctable AER errors rising (+5)',
                      gpu.health_reasons)

    def test_a_recovered_gpu_waits_settle_cycles(self):
        tracker = health.HealthTracker(settle_cycles=3)
        self.tree.corrupt(GPU, 'config', b'\xff' * 64)
        self.assertEqual(health.UNHEALTHY,
                         self.gpu(tracker.assess(self.read())).health)
        self.tree.corrupt(GPU, 'config', b'\xde\x10\x30\x23' + bytes(60))
        states = [self.gpu(tracker.assess(self.read())).health
                  for _ in range(4)]
        self.assertEqual([health.UNHEALTHY, health.UNHEALTHY, health.READY,
                          health.READY], states)
