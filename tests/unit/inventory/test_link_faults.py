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
"""Links that lie: the reader trusts no single view of an IOMMU group.

A fake tree written like the kernel's (an isolated GPU in group 7, a NIC
in group 9), then one link changed with :class:`FakeSysfs`.
"""

import fixtures
from oslotest import base

from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter import tags
from gpu_passthrough_filter.testing import fake_sysfs
from tests.unit.inventory import tree as sysfs_tree

GPU = '0000:02:00.0'
NIC = '0000:03:00.0'


class LinkFaultTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.tree = sysfs_tree.two_root_ports(
            self.root, fake_sysfs.nvidia_gpu(GPU, iommu_group=7),
            fake_sysfs.nic(NIC, iommu_group=9))

    def read(self):
        inventory = sysfs.read_inventory(self.root, hostname='h')
        return inventory, inventory.gpu(GPU)

    def test_intact_tree_is_isolated(self):
        _, gpu = self.read()
        self.assertEqual(tags.ISOLATED, gpu.isolation)

    def test_a_device_claiming_the_group_unlisted_breaks_the_proof(self):
        """The NIC's link names group 7; group 7's listing omits it."""
        self.tree.relink(NIC, 'iommu_group', '../../../../kernel/'
                         'iommu_groups/7')
        inventory, gpu = self.read()
        self.assertEqual(tags.UNKNOWN, gpu.isolation)
        self.assertIn('sysfs disagrees about %s' % NIC, gpu.isolation_reason)
        self.assertIsNotNone(inventory.function(NIC))

    def test_a_driver_link_to_itself_is_no_driver(self):
        self.tree.relink(GPU, 'driver', 'driver')
        inventory, gpu = self.read()
        self.assertIsNone(inventory.function(GPU).driver)
        self.assertIn((GPU, 'driver'), [(e.address, e.file)
                                        for e in inventory.errors])

    def test_an_iommu_group_link_to_a_non_group(self):
        self.tree.relink(GPU, 'iommu_group', '../../../../kernel')
        inventory, gpu = self.read()
        self.assertEqual(tags.UNKNOWN, gpu.isolation)
        self.assertIn('not at an IOMMU group', ' '.join(
            e.message for e in inventory.errors if e.address == GPU))


class MemoryOnlyNodeTest(base.BaseTestCase):
    """POWER9-like: GPU memory in CPU-less NUMA nodes (250, 251)."""

    def test_gpu_on_a_memory_node_gets_its_cpu_node(self):
        root = self.useFixture(fixtures.TempDir()).path
        fake_sysfs.write(fake_sysfs.Host(
            numa_nodes=[fake_sysfs.NumaNode(0, '0-3'),
                        fake_sysfs.NumaNode(8, '4-7'),
                        fake_sysfs.NumaNode(250, ''),
                        fake_sysfs.NumaNode(251, '')],
            root_complexes=[fake_sysfs.RootComplex(
                '0030:00', numa_node=8, local_cpulist='4-7', children=[
                    fake_sysfs.RootPort('0030:00:00.0', children=[
                        fake_sysfs.nvidia_gpu('0030:01:00.0',
                                              numa_node=250,
                                              local_cpulist='4-7')])])]), root)
        inventory = sysfs.read_inventory(root, hostname='p9')
        self.assertEqual([True, True, False, False],
                         [n.has_cpus for n in inventory.numa_nodes])
        gpu, = inventory.gpus
        self.assertEqual(8, gpu.numa_node)
        self.assertIn('node 250 has no CPUs', ' '.join(
            e.message for e in inventory.errors))
