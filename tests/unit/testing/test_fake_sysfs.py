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
"""The fake-sysfs builder writes what the real captured tree has."""

import os
import re

import fixtures
from oslotest import base

from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter import tags
from gpu_passthrough_filter.testing import fake_sysfs
from gpu_passthrough_filter.testing import topologies

REAL = os.path.join(os.path.dirname(__file__), '..', '..', 'data', 'sysfs',
                    '32intel64-2p8co2t+8ve')
#: A real endpoint and a real switch port of the captured tree.
REAL_ENDPOINT = '0000:1b:00.0'
REAL_BRIDGE = '0000:19:08.0'

#: Formats of the attribute files, as the kernel writes them.
FORMATS = {
    'vendor': r'0x[0-9a-f]{4}\n',
    'device': r'0x[0-9a-f]{4}\n',
    'subsystem_vendor': r'0x[0-9a-f]{4}\n',
    'subsystem_device': r'0x[0-9a-f]{4}\n',
    'class': r'0x[0-9a-f]{6}\n',
    'numa_node': r'-?\d+\n',
    'local_cpulist': r'[\d,-]+\n',
    'local_cpus': r'[0-9a-f]{1,8}(,[0-9a-f]{8})*\n',
    'current_link_width': r'\d+\n',
    'max_link_width': r'\d+\n',
    'current_link_speed': r'\d+(\.\d)? GT/s( PCIe)?\n',
    'resource': r'(0x[0-9a-f]{16} 0x[0-9a-f]{16} 0x[0-9a-f]{16}\n){13,17}',
}
#: A link below ``sys/``: ``../`` as many times as the link is deep.
DRIVER_LINK = re.compile(r'^(\.\./)+bus/pci/drivers/[\w-]+$')
BUS_LINK = re.compile(r'^\.\./\.\./\.\./devices/pci[0-9a-f]{4}:[0-9a-f]{2}'
                      r'(/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.\d)+$')


def _function_dir(root, address):
    return os.path.realpath(os.path.join(root, 'sys', 'bus', 'pci',
                                         'devices', address))


def _read(path):
    with open(path) as stream:
        return stream.read()


class FakeTreeTestCase(base.BaseTestCase):

    def write(self, host):
        root = self.useFixture(fixtures.TempDir()).path
        return fake_sysfs.write(host, root)


class SameShapeAsRealTreeTest(FakeTreeTestCase):
    """Files, formats and link shapes match the captured tree's."""

    def setUp(self):
        super(SameShapeAsRealTreeTest, self).setUp()
        self.root = self.write(topologies.h100_8gpu_2numa_4switch())

    def test_attribute_formats_match_the_real_tree(self):
        for address in (REAL_ENDPOINT, REAL_BRIDGE):
            real = _function_dir(REAL, address)
            for name, pattern in FORMATS.items():
                self.assertRegex(_read(os.path.join(real, name)),
                                 '^%s$' % pattern, 'real %s' % name)
        for address in ('0000:03:00.0', '0000:01:00.0', '0000:00:01.0'):
            fake = _function_dir(self.root, address)
            for name, pattern in FORMATS.items():
                self.assertRegex(_read(os.path.join(fake, name)),
                                 '^%s$' % pattern, 'fake %s' % name)

    def test_every_real_attribute_the_reader_uses_is_written(self):
        real = set(os.listdir(_function_dir(REAL, REAL_ENDPOINT)))
        fake = set(os.listdir(_function_dir(self.root, '0000:03:00.0')))
        needed = set(FORMATS) | {'driver', 'subsystem', 'max_link_speed'}
        self.assertEqual(set(), needed - real)
        self.assertEqual(set(), needed - fake)

    def test_bus_links_have_the_kernels_shape(self):
        for root in (REAL, self.root):
            devices = os.path.join(root, 'sys', 'bus', 'pci', 'devices')
            for name in os.listdir(devices):
                target = os.readlink(os.path.join(devices, name))
                self.assertRegex(target, BUS_LINK)
                self.assertTrue(target.endswith('/' + name))

    def test_driver_links_climb_exactly_to_sys(self):
        for root, address in ((REAL, REAL_ENDPOINT),
                              (self.root, '0000:03:00.0')):
            function = _function_dir(root, address)
            target = os.readlink(os.path.join(function, 'driver'))
            self.assertRegex(target, DRIVER_LINK)
            depth = os.path.relpath(
                function, os.path.realpath(os.path.join(root, 'sys'))
            ).count('/') + 1
            self.assertEqual(depth, target.count('../'))

    def test_every_fake_link_resolves(self):
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    self.assertFalse(os.path.isabs(os.readlink(path)), path)
                    self.assertTrue(os.path.exists(path), path)

    def test_iommu_group_links_both_ways(self):
        function = _function_dir(self.root, '0000:03:00.0')
        group = os.path.realpath(os.path.join(function, 'iommu_group'))
        self.assertEqual(
            os.path.join(os.path.realpath(self.root), 'sys', 'kernel',
                         'iommu_groups'), os.path.dirname(group))
        member = os.path.join(group, 'devices', '0000:03:00.0')
        self.assertEqual(function, os.path.realpath(member))

    def test_numa_nodes_as_the_kernel_writes_them(self):
        node = os.path.join(self.root, 'sys', 'devices', 'system', 'node')
        self.assertEqual('0-1\n', _read(os.path.join(node, 'online')))
        self.assertEqual('10 21\n',
                         _read(os.path.join(node, 'node0', 'distance')))
        real_meminfo = _read(os.path.join(
            REAL, 'sys', 'devices', 'system', 'node', 'node0', 'meminfo'))
        fake_meminfo = _read(os.path.join(node, 'node0', 'meminfo'))
        pattern = r'Node 0 MemTotal:\s+\d+ kB'
        self.assertRegex(real_meminfo, pattern)
        self.assertRegex(fake_meminfo, pattern)


class NamedTopologiesTest(FakeTreeTestCase):
    """The reader's verdicts on the named machines are the documented ones."""

    def gpus(self, name):
        root = self.write(topologies.NAMED[name]())
        inventory = sysfs.read_inventory(root)
        return {gpu.address: gpu for gpu in inventory.gpus}, inventory

    def test_h100_host_all_isolated_in_switch_pairs(self):
        gpus, _ = self.gpus('h100_8gpu_2numa_4switch')
        self.assertEqual({tags.ISOLATED},
                         {gpu.isolation for gpu in gpus.values()})
        pairs = {}
        for gpu in gpus.values():
            pairs.setdefault(gpu.switch, []).append(gpu.address)
        self.assertEqual(
            [['0000:03:00.0', '0000:04:00.0'], ['0000:07:00.0',
                                                '0000:08:00.0'],
             ['0000:83:00.0', '0000:84:00.0'], ['0000:87:00.0',
                                                '0000:88:00.0']],
            sorted(sorted(pair) for pair in pairs.values()))
        self.assertEqual({0: 4, 1: 4}, {
            node: sum(1 for g in gpus.values() if g.numa_node == node)
            for node in (0, 1)})

    def test_two_gpus_in_one_group_are_shared(self):
        gpus, _ = self.gpus('two_gpus_one_group')
        self.assertEqual({tags.SHARED},
                         {gpu.isolation for gpu in gpus.values()})

    def test_virtio_vm_has_no_gpu_and_no_iommu(self):
        gpus, inventory = self.gpus('no_gpu_virtio_vm')
        self.assertEqual({}, gpus)
        self.assertFalse(inventory.iommu_enabled)

    def test_iommu_off_leaves_every_gpu_unknown(self):
        host = topologies.h100_8gpu_2numa_4switch()
        host.iommu = False
        root = self.write(host)
        self.assertFalse(os.path.exists(
            os.path.join(root, 'sys', 'kernel', 'iommu_groups')))
        inventory = sysfs.read_inventory(root)
        self.assertEqual({tags.UNKNOWN},
                         {gpu.isolation for gpu in inventory.gpus})

    def test_command_line_writes_a_named_tree(self):
        root = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', open(os.devnull,
                                                                'w')))
        self.assertEqual(0, fake_sysfs.main(
            ['--topology', 'pcie_4gpu_dual_socket_l40s', '--output', root]))
        inventory = sysfs.read_inventory(root)
        self.assertEqual(4, len(inventory.gpus))
