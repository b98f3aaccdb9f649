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
"""GPUPassthroughFilter on a resize and on PCIe switch locality, with
PCI-in-Placement, inside a real in-process Nova.

With ``[filter_scheduler] pci_in_placement = True`` the filter prunes and
reorders the allocation candidates, so it chooses the exact GPUs; these
tests assert the exact PCI addresses. Both hosts' GPU orders are laid out
so that Placement's own order of candidates (by provider) would split the
guest's GPUs: only the filter's reordering gives the right set.
"""

import fixtures

from tests import fake_gpus
from tests.functional import test_scheduler

FakeGPU = fake_gpus.FakeGPU

#: Two made-up PCIe switch upstream ports.
SWITCH_A = '0000:80:00.0'
SWITCH_B = '0000:90:00.0'


class LegacyResizeTest(test_scheduler.SchedulerTestBase):
    """A resize with ``[filter_scheduler] pci_in_placement = False``."""

    def test_resize_one_to_two_gpus_skips_split_host(self):
        """Resize h100:1 -> h100:2 (numa_affinity=required) lands on 'good'.

        'split' has two free GPUs on two NUMA nodes: nova's own filters
        pass it, GPUPassthroughFilter rejects it (its log says so). 'good'
        has two GPUs on node 1, the only policy-safe set, so the compute's
        own PCI claim can only pick that set. After confirm the server
        holds exactly c1 and c2 on 'good' and the source GPU is free.
        """
        self.start_gpu_compute('src', [FakeGPU('0000:41:00.0')])
        server = self.boot_server(self.create_gpu_flavor('h100:1'))
        self.assert_server_gpus(server, 'src', ['0000:41:00.0'])
        self.start_gpu_compute('split', [
            FakeGPU('0000:81:00.0', numa_node=0),
            FakeGPU('0000:c3:00.0', numa_node=1),
        ])
        self.start_gpu_compute('good', [
            FakeGPU('0000:c1:00.0', numa_node=1),
            FakeGPU('0000:c2:00.0', numa_node=1),
        ])
        flavor2 = self.create_gpu_flavor(
            'h100:2', extra_specs={'gpu_passthrough:numa_affinity':
                                   'required'})
        log = self.capture_scheduler_log()
        # NOTE: the fake libvirt has no disk files to copy; nova's own
        # move tests stub the disk copy out the same way.
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.driver.LibvirtDriver.'
            'migrate_disk_and_power_off', return_value='{}'))

        server = self._confirm_resize(self._resize_server(server, flavor2))

        self.assert_server_gpus(server, 'good',
                                ['0000:c1:00.0', '0000:c2:00.0'])
        self.assertIn('GPUPassthroughFilter rejected host split:',
                      log.output)
        self.assertEqual(['0000:41:00.0'], self.free_gpu_addresses('src'))
        self.assertEqual(['0000:81:00.0', '0000:c3:00.0'],
                         self.free_gpu_addresses('split'))


class PlacementSwitchLocalityTest(test_scheduler.SchedulerTestBase):
    """Switch locality with PCI in Placement: the filter picks the GPUs."""

    PCI_IN_PLACEMENT = True

    def test_switch_locality_pairs_under_one_switch(self):
        """locality=switch: each 2-GPU server gets a pair under one switch.

        Four GPUs on NUMA node 0 whose switches alternate with the
        addresses (81, 83 under A; 82, 84 under B), so NUMA does not
        decide and Placement's first candidate, 81+82, spans two
        switches. A multi-create of two servers gives {81, 83} and
        {82, 84}.
        """
        self.start_gpu_compute('host1', [
            FakeGPU('0000:81:00.0', switch=SWITCH_A),
            FakeGPU('0000:82:00.0', switch=SWITCH_B),
            FakeGPU('0000:83:00.0', switch=SWITCH_A),
            FakeGPU('0000:84:00.0', switch=SWITCH_B),
        ])
        flavor = self.create_gpu_flavor(
            'h100:2', extra_specs={'gpu_passthrough:locality': 'switch'})

        servers = self.boot_servers(flavor, 2)

        pairs = sorted(self.server_pci_addresses(s) for s in servers)
        self.assertEqual([['0000:81:00.0', '0000:83:00.0'],
                          ['0000:82:00.0', '0000:84:00.0']], pairs)
        self.assertEqual({'host1'}, {self.server_host(s) for s in servers})
