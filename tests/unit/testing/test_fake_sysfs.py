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
"""The fake-sysfs builder writes what the real captured tree has.

Formats and link shapes are taken from the captured tree in
``tests/data/sysfs`` (a real ``hwloc-gather-topology`` dump) and every
check runs on both trees, so a check that the fake passes and the real
tree fails is a wrong check, not a pass.
"""

import atexit
import os
import re
import shutil
import tempfile

import fixtures
from oslotest import base

from gpu_passthrough_filter.testing import fake_sysfs as fs
from gpu_passthrough_filter.testing import topologies

REAL = os.path.join(os.path.dirname(__file__), '..', '..', 'data', 'sysfs',
                    '32intel64-2p8co2t+8ve')
#: A real endpoint (NEC VE behind a PLX switch) and a real switch port.
REAL_ENDPOINT = '0000:1b:00.0'
REAL_BRIDGE = '0000:19:08.0'
#: The same roles in the fake H100 machine.
FAKE_ENDPOINT = '0000:03:00.0'
FAKE_BRIDGE = '0000:02:00.0'

#: Formats of the attribute files, as the kernel writes them.
FORMATS = {
    'vendor': r'0x[0-9a-f]{4}\n',
    'device': r'0x[0-9a-f]{4}\n',
    'subsystem_vendor': r'0x[0-9a-f]{4}\n',
    'subsystem_device': r'0x[0-9a-f]{4}\n',
    'class': r'0x[0-9a-f]{6}\n',
    'numa_node': r'-?\d+\n',
    'local_cpulist': r'\d+(-\d+)?(,\d+(-\d+)?)*\n',
    'local_cpus': r'[0-9a-f]{1,8}(,[0-9a-f]{8})*\n',
    'current_link_width': r'\d+\n',
    'max_link_width': r'\d+\n',
    'current_link_speed': r'\d+(\.\d)? GT/s( PCIe)?\n',
    'max_link_speed': r'\d+(\.\d)? GT/s( PCIe)?\n',
    'resource': r'(0x[0-9a-f]{16} 0x[0-9a-f]{16} 0x[0-9a-f]{16}\n){13,17}',
    'enable': r'[01]\n',
    'driver_override': r'\(null\)\n',
    'modalias': r'pci:v[0-9A-F]{8}d[0-9A-F]{8}sv[0-9A-F]{8}sd[0-9A-F]{8}'
                r'bc[0-9A-F]{2}sc[0-9A-F]{2}i[0-9A-F]{2}\n',
    'uevent': r'(DRIVER=[\w-]+\n)?PCI_CLASS=[0-9A-F]+\nPCI_ID=[0-9A-F]{4}:'
              r'[0-9A-F]{4}\nPCI_SUBSYS_ID=[0-9A-F]{4}:[0-9A-F]{4}\n'
              r'PCI_SLOT_NAME=[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.\d\n'
              r'MODALIAS=pci:\S+\n',
}
BRIDGE_FORMATS = {'secondary_bus_number': r'\d+\n',
                  'subordinate_bus_number': r'\d+\n'}

#: Link targets, relative, from where the kernel puts each link.
BUS_LINK = re.compile(r'^\.\./\.\./\.\./devices/pci[0-9a-f]{4}:[0-9a-f]{2}'
                      r'(/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.\d)+$')
DRIVER_LINK = re.compile(r'^(\.\./)+bus/pci/drivers/[\w-]+$')
SUBSYSTEM_LINK = re.compile(r'^(\.\./)+bus/pci$')
GROUP_LINK = re.compile(r'^(\.\./)+kernel/iommu_groups/\d+$')
GROUP_MEMBER_LINK = re.compile(
    r'^\.\./\.\./\.\./\.\./devices/pci[0-9a-f]{4}:[0-9a-f]{2}'
    r'(/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.\d)+$')
DRIVER_BACK_LINK = GROUP_MEMBER_LINK


_SHARED_TREES = {}
#: Taken at import: oslotest points TMPDIR at a per-test directory that is
#: removed after each test.
_PROCESS_TMP = tempfile.gettempdir()


def _shared_tree(name):
    """A named machine written once per test process, for read-only tests.

    Writing a tree costs a second or more on a busy ext4 disk, and most
    tests here only read; the ones that break files write their own.
    """
    if name not in _SHARED_TREES:
        root = tempfile.mkdtemp(prefix='fake-sysfs-', dir=_PROCESS_TMP)
        atexit.register(shutil.rmtree, root, True)
        _SHARED_TREES[name] = topologies.NAMED[name]().write(root)
    return _SHARED_TREES[name]


def _function_dir(root, address):
    return os.path.realpath(os.path.join(root, 'sys', 'bus', 'pci',
                                         'devices', address))


def _read(path):
    with open(path) as stream:
        return stream.read()


def _depth_below_sys(root, path):
    """How many ``..`` lead from ``path``'s directory up to ``sys/``."""
    sys_dir = os.path.realpath(os.path.join(root, 'sys'))
    return os.path.relpath(path, sys_dir).count('/') + 1


class FakeTreeTestCase(base.BaseTestCase):

    def tmp(self):
        return self.useFixture(fixtures.TempDir()).path

    def write(self, host):
        return host.write(self.tmp())


class SameFilesAndFormatsAsRealTreeTest(FakeTreeTestCase):
    """Files and their formats match the captured tree's."""

    def setUp(self):
        super(SameFilesAndFormatsAsRealTreeTest, self).setUp()
        self.root = _shared_tree('h100_8gpu_2numa_4switch')
        self.old_root = _shared_tree('plx_8x_rtx2080ti')

    def pairs(self):
        """(real dir, fake dir, formats) for an endpoint and a bridge."""
        return ((_function_dir(REAL, REAL_ENDPOINT),
                 _function_dir(self.root, FAKE_ENDPOINT), FORMATS),
                (_function_dir(REAL, REAL_BRIDGE),
                 _function_dir(self.root, FAKE_BRIDGE),
                 dict(FORMATS, **BRIDGE_FORMATS)))

    def test_every_attribute_of_the_real_tree_is_written(self):
        for real, fake, _formats in self.pairs():
            real_files = {name for name in os.listdir(real)
                          if not os.path.isdir(os.path.join(real, name))
                          or os.path.islink(os.path.join(real, name))}
            # firmware_node (ACPI), irq vectors and driver-private files
            # (pools, msi_irqs/, ptp/) are no part of a PCI description.
            real_files -= {'firmware_node', 'pools'}
            self.assertEqual(set(), real_files - set(os.listdir(fake)))

    def test_formats_match_on_both_trees(self):
        for real, fake, formats in self.pairs():
            for name, pattern in formats.items():
                self.assertRegex(_read(os.path.join(real, name)),
                                 '^%s$' % pattern, 'real %s' % name)
                self.assertRegex(_read(os.path.join(fake, name)),
                                 '^%s$' % pattern, 'fake %s' % name)

    def test_new_and_old_kernel_link_speeds(self):
        real = _read(os.path.join(_function_dir(REAL, REAL_ENDPOINT),
                                  'current_link_speed'))
        old = _read(os.path.join(_function_dir(self.old_root,
                                               '0000:1b:00.0'),
                                 'current_link_speed'))
        new = _read(os.path.join(_function_dir(self.root, FAKE_ENDPOINT),
                                 'current_link_speed'))
        self.assertEqual('8 GT/s\n', real)
        self.assertEqual(real, old)
        self.assertEqual('32.0 GT/s PCIe\n', new)

    def test_resource_lines_endpoint_13_bridge_17(self):
        for real, fake, _formats in self.pairs():
            self.assertEqual(
                len(_read(os.path.join(real, 'resource')).splitlines()),
                len(_read(os.path.join(fake, 'resource')).splitlines()))
        lines = _read(os.path.join(_function_dir(self.root, FAKE_ENDPOINT),
                                   'resource')).splitlines()
        start, end, flags = (int(v, 16) for v in lines[1].split())
        self.assertEqual(128 << 30, end - start + 1)
        self.assertEqual(0x14220c, flags)

    def test_config_header_agrees_with_the_id_files(self):
        for real, fake, _formats in self.pairs():
            for function in (real, fake):
                with open(os.path.join(function, 'config'), 'rb') as f:
                    header = f.read(64)
                self.assertEqual(
                    int(_read(os.path.join(function, 'vendor')), 16),
                    int.from_bytes(header[0:2], 'little'))
                self.assertEqual(
                    int(_read(os.path.join(function, 'device')), 16),
                    int.from_bytes(header[2:4], 'little'))
                self.assertEqual(
                    int(_read(os.path.join(function, 'class')), 16),
                    int.from_bytes(header[9:12], 'little'))

    def test_cpumask_as_the_kernel_prints_it(self):
        # The captured host had 112 possible CPUs; node 0 has 0-7,16-23.
        real = _read(os.path.join(_function_dir(REAL, REAL_ENDPOINT),
                                  'local_cpus')).strip()
        self.assertEqual(real, fs.cpumask(set(range(0, 8))
                                          | set(range(16, 24)), 112))
        self.assertEqual('3', fs.cpumask({0, 1}, 2))
        self.assertEqual('ffffffff,00000000', fs.cpumask(range(32, 64), 64))

    def test_numa_node_files_as_on_the_real_tree(self):
        for root in (REAL, self.root):
            node = os.path.join(root, 'sys', 'devices', 'system', 'node')
            self.assertEqual('0-1\n', _read(os.path.join(node, 'online')))
            self.assertEqual('0-1\n', _read(os.path.join(node, 'possible')))
            self.assertEqual('10 21\n',
                             _read(os.path.join(node, 'node0', 'distance')))
            self.assertEqual('21 10\n',
                             _read(os.path.join(node, 'node1', 'distance')))
            self.assertRegex(_read(os.path.join(node, 'node0', 'meminfo')),
                             r'^Node 0 MemTotal:\s+\d+ kB\n'
                             r'Node 0 MemFree:\s+\d+ kB\n')
            self.assertRegex(_read(os.path.join(node, 'node1', 'cpulist')),
                             '^%s$' % FORMATS['local_cpulist'])
            self.assertEqual('../../cpu/cpu0',
                             os.readlink(os.path.join(node, 'node0',
                                                      'cpu0')))


class SameLinksAsRealTreeTest(FakeTreeTestCase):
    """Links are relative, shaped and as deep as the kernel's."""

    def setUp(self):
        super(SameLinksAsRealTreeTest, self).setUp()
        self.root = _shared_tree('plx_8x_rtx2080ti')

    def test_bus_links(self):
        for root in (REAL, self.root):
            devices = os.path.join(root, 'sys', 'bus', 'pci', 'devices')
            for name in os.listdir(devices):
                target = os.readlink(os.path.join(devices, name))
                self.assertRegex(target, BUS_LINK)
                self.assertTrue(target.endswith('/' + name))
                self.assertTrue(os.path.isdir(os.path.join(devices, name)))

    def test_driver_and_subsystem_links_climb_exactly_to_sys(self):
        for root in (REAL, self.root):
            for address in ('0000:17:00.0', '0000:1b:00.0'):
                function = _function_dir(root, address)
                depth = _depth_below_sys(root, function)
                for name, shape in (('driver', DRIVER_LINK),
                                    ('subsystem', SUBSYSTEM_LINK)):
                    target = os.readlink(os.path.join(function, name))
                    self.assertRegex(target, shape)
                    self.assertEqual(depth, target.count('../'),
                                     '%s %s' % (address, name))

    def test_same_parent_chains_as_the_captured_chassis(self):
        # plx_8x_rtx2080ti is the captured tree's chassis with GPUs in
        # the VEs' slots: same bridges, same chains.
        for address in ('0000:1b:00.0', '0000:1e:00.0', '0000:3d:00.0',
                        '0000:41:00.0'):
            real = os.path.relpath(_function_dir(REAL, address),
                                   os.path.realpath(REAL))
            fake = os.path.relpath(_function_dir(self.root, address),
                                   os.path.realpath(self.root))
            self.assertEqual(real, fake)

    def test_iommu_group_links_both_ways(self):
        for address in ('0000:1b:00.0', '0000:1b:00.3', '0000:19:0c.0'):
            function = _function_dir(self.root, address)
            target = os.readlink(os.path.join(function, 'iommu_group'))
            self.assertRegex(target, GROUP_LINK)
            self.assertEqual(_depth_below_sys(self.root, function),
                             target.count('../'))
            group = os.path.realpath(os.path.join(function, 'iommu_group'))
            member = os.path.join(group, 'devices', address)
            self.assertRegex(os.readlink(member), GROUP_MEMBER_LINK)
            self.assertEqual(function, os.path.realpath(member))

    def test_driver_back_links(self):
        drivers = os.path.join(self.root, 'sys', 'bus', 'pci', 'drivers')
        self.assertEqual(['pcieport', 'vfio-pci'], sorted(os.listdir(
            drivers)))
        link = os.path.join(drivers, 'vfio-pci', '0000:1b:00.1')
        self.assertRegex(os.readlink(link), DRIVER_BACK_LINK)
        self.assertEqual(_function_dir(self.root, '0000:1b:00.1'),
                         os.path.realpath(link))

    def test_every_link_resolves_inside_the_tree(self):
        top = os.path.realpath(self.root)
        count = 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    count += 1
                    self.assertFalse(os.path.isabs(os.readlink(path)), path)
                    self.assertTrue(os.path.exists(path), path)
                    self.assertTrue(os.path.realpath(path).startswith(
                        top + os.sep), path)
        self.assertGreater(count, 46 * 4)


class HostOptionsTest(FakeTreeTestCase):

    def test_iommu_off_writes_no_group(self):
        root = _shared_tree('h100_8gpu_iommu_off')
        self.assertFalse(os.path.lexists(
            os.path.join(root, 'sys', 'kernel', 'iommu_groups')))
        for address in ('0000:03:00.0', '0000:00:01.0', '0000:01:00.0'):
            self.assertFalse(os.path.lexists(os.path.join(
                _function_dir(root, address), 'iommu_group')))

    def test_automatic_groups(self):
        host = fs.Host(
            numa_nodes=[fs.NumaNode(0, '0-3')],
            root_complexes=[fs.RootComplex('0000:00', children=[
                fs.RootPort('0000:00:01.0', children=[
                    fs.nvidia_gpu('0000:01:00.0', 'rtx4090')]),
                fs.RootPort('0000:00:02.0', iommu_group=7, children=[
                    fs.nvidia_gpu('0000:02:00.0', 'h100', iommu_group=7)]),
            ])])
        self.assertEqual({'0000:00:01.0': 8, '0000:01:00.0': 9,
                          '0000:01:00.1': 9, '0000:00:02.0': 7,
                          '0000:02:00.0': 7}, host.iommu_groups())
        root = self.write(host)
        members = os.listdir(os.path.join(root, 'sys', 'kernel',
                                          'iommu_groups', '9', 'devices'))
        self.assertEqual(['0000:01:00.0', '0000:01:00.1'], sorted(members))

    def test_numa_node_and_local_cpulist_inherited_or_overridden(self):
        host = fs.Host(
            numa_nodes=[fs.NumaNode(0, '0-3'), fs.NumaNode(1, '4-7')],
            root_complexes=[
                fs.RootComplex('0000:00', numa_node=1, children=[
                    fs.nic('0000:00:03.0'),
                    fs.nic('0000:00:04.0', numa_node=0)]),
                fs.RootComplex('0000:80', children=[fs.nic('0000:80:03.0')]),
                fs.RootComplex('0000:c0', local_cpulist='2-3',
                               children=[fs.nic('0000:c0:03.0')])])
        root = self.write(host)

        def files(address):
            function = _function_dir(root, address)
            return (_read(os.path.join(function, 'numa_node')),
                    _read(os.path.join(function, 'local_cpulist')))
        self.assertEqual(('1\n', '4-7\n'), files('0000:00:03.0'))
        self.assertEqual(('0\n', '0-3\n'), files('0000:00:04.0'))
        # No node: the kernel lists every online CPU.
        self.assertEqual(('-1\n', '0-7\n'), files('0000:80:03.0'))
        self.assertEqual(('-1\n', '2-3\n'), files('0000:c0:03.0'))

    def test_bridge_bus_numbers_cover_what_is_below(self):
        root = _shared_tree('plx_8x_rtx2080ti')
        for address, secondary, subordinate in (
                ('0000:17:00.0', 0x18, 0x1e), ('0000:18:00.0', 0x19, 0x1e),
                ('0000:19:08.0', 0x1b, 0x1b)):
            function = _function_dir(root, address)
            self.assertEqual('%d\n' % secondary, _read(os.path.join(
                function, 'secondary_bus_number')))
            self.assertEqual('%d\n' % subordinate, _read(os.path.join(
                function, 'subordinate_bus_number')))

    def test_sriov_links_and_counts(self):
        vfs = [fs.nic('0000:3b:00.%d' % n, device=0x101c, driver=None)
               for n in (1, 2)]
        host = fs.Host(numa_nodes=[fs.NumaNode(0, '0-3')], root_complexes=[
            fs.RootComplex('0000:3a', children=[fs.RootPort(
                '0000:3a:00.0', children=[fs.nic(
                    '0000:3b:00.0', sriov_totalvfs=8, vfs=vfs)])])])
        root = self.write(host)
        pf = _function_dir(root, '0000:3b:00.0')
        self.assertEqual('8\n', _read(os.path.join(pf, 'sriov_totalvfs')))
        self.assertEqual('2\n', _read(os.path.join(pf, 'sriov_numvfs')))
        self.assertEqual('../0000:3b:00.2',
                         os.readlink(os.path.join(pf, 'virtfn1')))
        vf = _function_dir(root, '0000:3b:00.1')
        self.assertEqual('../0000:3b:00.0',
                         os.readlink(os.path.join(vf, 'physfn')))
        self.assertEqual(os.path.dirname(pf), os.path.dirname(vf))
        self.assertFalse(os.path.lexists(os.path.join(vf, 'driver')))

    def test_find(self):
        host = topologies.consumer_intel_turing()
        self.assertEqual(0x1aed, host.find('0000:01:00.3').device)
        self.assertRaises(KeyError, host.find, '0000:09:00.0')


class FaultInjectionTest(FakeTreeTestCase):
    """FakeSysfs breaks exactly one thing, on fake and real trees."""

    def setUp(self):
        super(FaultInjectionTest, self).setUp()
        self.root = self.write(topologies.two_gpus_one_group())
        self.tree = fs.FakeSysfs(self.root)
        self.gpu = _function_dir(self.root, '0000:03:00.0')

    def test_corrupt(self):
        self.tree.corrupt('0000:03:00.0', 'numa_node', b'garbage')
        self.assertEqual('garbage', _read(os.path.join(self.gpu,
                                                       'numa_node')))
        self.tree.corrupt('0000:03:00.0', 'iommu_group', 'not a link\n')
        self.assertFalse(os.path.islink(os.path.join(self.gpu,
                                                     'iommu_group')))

    def test_remove(self):
        self.tree.remove('0000:03:00.0', 'class')
        self.assertFalse(os.path.lexists(os.path.join(self.gpu, 'class')))
        self.assertTrue(os.path.exists(os.path.join(self.gpu, 'vendor')))

    def test_dangle_keeps_the_link_shape(self):
        link = os.path.join(self.gpu, 'iommu_group')
        before = os.readlink(link)
        self.tree.dangle('0000:03:00.0', 'iommu_group')
        self.assertTrue(os.path.islink(link))
        self.assertFalse(os.path.exists(link))
        self.assertEqual(before.count('../'), os.readlink(link).count('../'))

    def test_unreadable(self):
        self.tree.unreadable('0000:03:00.0', 'resource')
        self.assertRaises(OSError, _read, os.path.join(self.gpu,
                                                       'resource'))

    def test_vanish_leaves_the_bus_link_dangling(self):
        self.tree.vanish('0000:04:00.0')
        link = os.path.join(self.root, 'sys', 'bus', 'pci', 'devices',
                            '0000:04:00.0')
        self.assertTrue(os.path.islink(link))
        self.assertFalse(os.path.exists(link))
        self.assertTrue(os.path.isdir(self.gpu))

    def test_on_a_copy_of_the_real_tree(self):
        # One host bridge's subtree and the bus links are enough.
        root = self.tmp()
        for part in ('sys/devices/pci0000:17', 'sys/bus/pci/devices'):
            shutil.copytree(os.path.join(REAL, part),
                            os.path.join(root, part), symlinks=True)
        fs.FakeSysfs(root).corrupt(REAL_ENDPOINT, 'class', b'0xzz\n')
        self.assertEqual('0xzz\n', _read(os.path.join(
            _function_dir(root, REAL_ENDPOINT), 'class')))
        self.assertEqual('0x0b4000\n', _read(os.path.join(
            _function_dir(REAL, REAL_ENDPOINT), 'class')))


class CommandLineTest(FakeTreeTestCase):

    def setUp(self):
        super(CommandLineTest, self).setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'sys.stdout', open(os.devnull, 'w')))
        self.useFixture(fixtures.MonkeyPatch(
            'sys.stderr', open(os.devnull, 'w')))

    def test_writes_the_named_tree(self):
        root = os.path.join(self.tmp(), 'new')
        self.assertEqual(0, topologies.main(
            ['--topology', 'pcie_4gpu_dual_socket_l40s', '--output', root]))
        devices = os.listdir(os.path.join(root, 'sys', 'bus', 'pci',
                                          'devices'))
        self.assertEqual(sorted(topologies.EXPECTED[
            'pcie_4gpu_dual_socket_l40s']),
            sorted(d for d in devices if d.endswith(':00.0')
                   and _read(os.path.join(_function_dir(root, d),
                                          'class')).startswith('0x0302')))

    def test_unknown_topology_is_refused(self):
        error = self.assertRaises(SystemExit, topologies.main,
                                  ['--topology', 'nope', '--output', '/x'])
        self.assertEqual(2, error.code)
