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
"""PCIe switch/root detection, NUMA derivation and pair locality."""

import fixtures
from oslotest import base

from gpu_passthrough_filter.inventory import locality
from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter.testing import fake_sysfs
from tests.unit.inventory import pairs

# Paths as the reader builds them from realpaths.
DIRECT = ['pci0000:00', '0000:00:01.0']
ONE_SWITCH = ['pci0000:17', '0000:17:00.0', '0000:18:00.0', '0000:19:08.0']
CASCADED = ['pci0000:40', '0000:40:01.1', '0000:41:00.0', '0000:42:00.0',
            '0000:43:00.0', '0000:44:10.0']
ON_UPSTREAM_BUS = ['pci0000:17', '0000:17:00.0', '0000:18:00.0']
VMD = ['pci0000:00', '0000:00:0e.0', 'pci10000:00', '10000:00:02.0']


class PathTest(base.BaseTestCase):

    def test_gpu_on_root_port_has_no_switch(self):
        self.assertIsNone(locality.switch_upstream_port(DIRECT))
        self.assertEqual('0000:00:01.0', locality.root_port(DIRECT))
        self.assertEqual('pci0000:00', locality.root_complex(DIRECT))

    def test_switch_is_named_by_its_upstream_port(self):
        self.assertEqual('0000:18:00.0',
                         locality.switch_upstream_port(ONE_SWITCH))
        self.assertEqual('0000:17:00.0', locality.root_port(ONE_SWITCH))

    def test_cascaded_switches_give_the_nearest(self):
        self.assertEqual('0000:43:00.0',
                         locality.switch_upstream_port(CASCADED))
        self.assertEqual('0000:40:01.1', locality.root_port(CASCADED))

    def test_function_on_switch_internal_bus(self):
        """Right below an upstream port that has downstream ports."""
        self.assertEqual('0000:18:00.0', locality.switch_upstream_port(
            ON_UPSTREAM_BUS, frozenset(['0000:18:00.0'])))

    def test_one_plain_bridge_is_no_switch(self):
        """A PCI-to-PCI bridge with the device alone below it."""
        self.assertIsNone(locality.switch_upstream_port(ON_UPSTREAM_BUS))

    def test_ports_above_bridges(self):
        bridge = '060400'
        functions = [
            model.PciFunction('0000:17:00.0', class_code=bridge,
                              parents=['pci0000:17']),
            model.PciFunction('0000:18:00.0', class_code=bridge,
                              parents=['pci0000:17', '0000:17:00.0']),
            model.PciFunction('0000:19:08.0', class_code=bridge,
                              parents=['pci0000:17', '0000:17:00.0',
                                       '0000:18:00.0']),
            model.PciFunction('0000:1a:00.0', class_code='030200',
                              parents=['pci0000:17', '0000:17:00.0',
                                       '0000:18:00.0', '0000:19:08.0'])]
        self.assertEqual({'0000:17:00.0', '0000:18:00.0'},
                         locality.ports_above_bridges(functions))

    def test_root_bus_device(self):
        path = ['pci0000:00']
        self.assertIsNone(locality.root_port(path))
        self.assertIsNone(locality.switch_upstream_port(path))
        self.assertEqual('pci0000:00', locality.root_complex(path))

    def test_vmd_domain_is_the_root(self):
        self.assertEqual('pci10000:00', locality.root_complex(VMD))
        self.assertEqual('10000:00:02.0', locality.root_port(VMD))
        self.assertIsNone(locality.switch_upstream_port(VMD))


class CpulistTest(base.BaseTestCase):

    def test_ranges_and_singles(self):
        self.assertEqual([0, 1, 2, 5, 8, 9],
                         locality.parse_cpulist('0-2,5,8-9\n'))

    def test_empty(self):
        self.assertEqual([], locality.parse_cpulist(''))

    def test_garbage(self):
        for text in ('a-b', '3-1', '1,,x', '-1'):
            self.assertRaises(ValueError, locality.parse_cpulist, text)


TWO_NODES = [model.NumaNode(0, [0, 1, 2, 3]), model.NumaNode(1, [4, 5, 6, 7])]


class DeriveNumaTest(base.BaseTestCase):

    def test_sysfs_value_wins(self):
        self.assertEqual(
            0, locality.derive_numa_node(0, [4, 5], TWO_NODES))

    def test_minus_one_derived_from_cpus_of_one_node(self):
        self.assertEqual(
            1, locality.derive_numa_node(None, [4, 5, 6, 7], TWO_NODES))

    def test_cpus_of_two_nodes_stay_unknown(self):
        self.assertIsNone(locality.derive_numa_node(
            None, list(range(8)), TWO_NODES))

    def test_no_cpus_stay_unknown(self):
        self.assertIsNone(locality.derive_numa_node(None, None, TWO_NODES))
        self.assertIsNone(locality.derive_numa_node(None, [], TWO_NODES))

    def test_no_numa_nodes_stay_unknown(self):
        self.assertIsNone(locality.derive_numa_node(None, [0], []))


def gpu(address, switch=None, root='pci0000:00', numa=0):
    return model.GPU(address=address, switch=switch, root_complex=root,
                     numa_node=numa)


class PairLocalityTest(base.BaseTestCase):
    """Closer pairs get lower levels."""

    CASES = [
        # (a, b, expected, why)
        (gpu('a', '0000:18:00.0', 'pci0000:17'),
         gpu('b', '0000:18:00.0', 'pci0000:17'),
         pairs.Locality.SAME_SWITCH, 'one switch'),
        (gpu('a', '0000:18:00.0', 'pci0000:17'),
         gpu('b', '0000:1f:00.0', 'pci0000:17'),
         pairs.Locality.SAME_ROOT, 'two switches, one root complex'),
        (gpu('a', None, 'pci0000:17'), gpu('b', None, 'pci0000:17'),
         pairs.Locality.SAME_ROOT, 'no switch is not a shared switch'),
        (gpu('a', None, 'pci0000:17'), gpu('b', None, 'pci0000:3a'),
         pairs.Locality.SAME_NUMA, 'two roots of one socket'),
        (gpu('a', None, 'pci0000:17', 0), gpu('b', None, 'pci0000:ae', 1),
         pairs.Locality.CROSS_NUMA, 'two sockets'),
        (gpu('a', None, 'pci0000:17', None),
         gpu('b', None, 'pci0000:ae', None),
         pairs.Locality.CROSS_NUMA, 'unknown NUMA is not proven close'),
    ]

    def test_table(self):
        for gpu_a, gpu_b, expected, why in self.CASES:
            self.assertEqual(expected, pairs.pair_locality(gpu_a, gpu_b),
                             why)
            self.assertEqual(expected, pairs.pair_locality(gpu_b, gpu_a),
                             why + ' (symmetric)')

    def test_order(self):
        levels = pairs.Locality
        self.assertLess(levels.SAME_SWITCH, levels.SAME_ROOT)
        self.assertLess(levels.SAME_ROOT, levels.SAME_NUMA)
        self.assertLess(levels.SAME_NUMA, levels.CROSS_NUMA)

    def test_switch_groups(self):
        gpus = [gpu('c', 's1'), gpu('a', 's1'), gpu('b', 's2'), gpu('d')]
        self.assertEqual({'s1': ['a', 'c'], 's2': ['b']},
                         pairs.switch_groups(gpus))


class BridgeOrSwitchOnTreesTest(base.BaseTestCase):
    """The same GPU under a plain bridge and under a switch, read back."""

    def read(self, below_root_port):
        root = self.useFixture(fixtures.TempDir()).path
        fake_sysfs.write(fake_sysfs.Host(
            numa_nodes=[fake_sysfs.NumaNode(0, '0-3')],
            root_complexes=[fake_sysfs.RootComplex('0000:00', children=[
                fake_sysfs.RootPort('0000:00:01.0',
                                    children=[below_root_port])])]), root)
        gpu, = sysfs.read_inventory(root, hostname='h').gpus
        return gpu

    def test_plain_bridge_is_no_switch(self):
        """A PCIe-to-PCI bridge with the GPU alone below it."""
        gpu = fake_sysfs.nvidia_gpu('0000:02:00.0')
        bridge = fake_sysfs.RootPort('0000:01:00.0', vendor=0x104c,
                                     device=0x8240, children=[gpu])
        self.assertIsNone(self.read(bridge).switch)

    def test_switch_is_its_upstream_port(self):
        switch = fake_sysfs.Switch('0000:01:00.0', downstream=[
            fake_sysfs.DownstreamPort('0000:02:08.0', children=[
                fake_sysfs.nvidia_gpu('0000:03:00.0')])]).as_bridge()
        self.assertEqual('0000:01:00.0', self.read(switch).switch)
