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
"""The sysfs reader on small written trees, good and broken."""

import os
import shutil
import socket

import fixtures
from oslotest import base

from gpu_passthrough_filter.inventory import locality
from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter import tags
from tests.unit.inventory import tree as sysfs_tree

ROOT_BUS = ['pci0000:00']
ROOT_PORT = '0000:00:01.0'
GPU = '0000:01:00.0'
AUDIO = '0000:01:00.1'
NIC = '0000:00:02.0'
BELOW_PORT = ROOT_BUS + [ROOT_PORT]


class TreeTestCase(base.BaseTestCase):
    """A consumer-like host: GPU + audio behind a root port, one NIC."""

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.tree = sysfs_tree.Tree(self.root)
        self.tree.numa_node(0, '0-3')
        self.tree.numa_node(1, '4-7')
        self.tree.add(ROOT_PORT, ROOT_BUS, class_code='0x060400',
                      vendor='0x8086', device='0x1901', driver='pcieport',
                      group=1, numa_node='0')
        self.tree.add(GPU, BELOW_PORT, driver='nvidia', group=1)
        self.tree.add(AUDIO, BELOW_PORT, class_code='0x040300',
                      device='0x10f7', driver='snd_hda_intel', group=1)
        self.tree.add(NIC, ROOT_BUS, class_code='0x020000', vendor='0x8086',
                      device='0x1533', driver='igb', group=2)

    def read(self, **kwargs):
        return sysfs.read_inventory(self.root, hostname='h', **kwargs)

    def path(self, address, *names):
        parents = BELOW_PORT if address in (GPU, AUDIO) else ROOT_BUS
        return os.path.join(self.tree.device_dir(address, parents), *names)

    def assert_error(self, inventory, address, file, fragment):
        matches = [error for error in inventory.errors
                   if (error.address, error.file) == (address, file)]
        self.assertEqual(1, len(matches), inventory.errors)
        self.assertIn(fragment, matches[0].message)


class ReadTest(TreeTestCase):

    def test_function_fields(self):
        function = self.read().function(GPU)
        self.assertEqual(('10de', '2330', '030000'),
                         (function.vendor, function.device,
                          function.class_code))
        self.assertEqual(('10de', '0000'), (function.subsystem_vendor,
                                            function.subsystem_device))
        self.assertIsNone(function.numa_node)  # -1 in sysfs
        self.assertEqual([0, 1, 2, 3], function.local_cpus)
        self.assertEqual('1', function.iommu_group)
        self.assertEqual('nvidia', function.driver)
        self.assertEqual(['pci0000:00', ROOT_PORT], function.parents)
        self.assertEqual(('16.0 GT/s PCIe', 16),
                         (function.cur_link_speed, function.cur_link_width))
        self.assertEqual([16 * 2 ** 20, 0, 32 * 2 ** 30, 0, 0, 0],
                         function.bar_sizes)
        self.assertEqual(['flr', 'bus'], function.reset_methods)
        self.assertIsNone(function.sriov_totalvfs)
        self.assertIsNone(function.physfn)

    def test_a_captured_tree_is_named_after_itself(self):
        """Never this machine's name for another machine's tree."""
        self.assertEqual(os.path.basename(self.root),
                         sysfs.read_inventory(self.root).hostname)
        os.makedirs(os.path.join(self.root, 'etc'))
        with open(os.path.join(self.root, 'etc', 'hostname'), 'w') as f:
            f.write('gpu-17\n')
        self.assertEqual('gpu-17', sysfs.read_inventory(self.root).hostname)
        self.assertEqual('h', self.read().hostname)
        self.assertEqual(socket.gethostname(), sysfs.root_hostname('/'))

    def test_host_facts(self):
        inventory = self.read()
        self.assertEqual('h', inventory.hostname)
        self.assertTrue(inventory.iommu_enabled)
        self.assertEqual({'1': [ROOT_PORT, GPU, AUDIO], '2': [NIC]},
                         inventory.iommu_groups)
        self.assertEqual([(0, [0, 1, 2, 3], 1048576),
                          (1, [4, 5, 6, 7], 1048576)],
                         [(node.id, node.cpus, node.memory_kb)
                          for node in inventory.numa_nodes])
        self.assertEqual([], inventory.errors)

    def test_gpu(self):
        gpu, = self.read().gpus
        self.assertEqual(GPU, gpu.address)
        self.assertEqual([GPU, AUDIO], gpu.functions)
        self.assertEqual(tags.ISOLATED, gpu.isolation, gpu.isolation_reason)
        self.assertFalse(gpu.vfio_ready)  # nvidia and snd_hda_intel bound
        self.assertEqual(0, gpu.numa_node)  # from local_cpulist 0-3
        self.assertIsNone(gpu.switch)
        self.assertEqual(ROOT_PORT, gpu.root_port)
        self.assertEqual('pci0000:00', gpu.root_complex)

    def test_vfio_bound_group_is_ready(self):
        self.tree.add(GPU, BELOW_PORT, driver='vfio-pci')
        self.tree.add(AUDIO, BELOW_PORT, class_code='0x040300',
                      driver='vfio-pci')
        self.assertTrue(self.read().gpus[0].vfio_ready)

    def test_endpoint_in_group_shares(self):
        self.tree.join_group(NIC, ROOT_BUS, 1)
        gpu, = self.read().gpus
        self.assertEqual(tags.SHARED, gpu.isolation)
        self.assertIn(NIC, gpu.isolation_reason)

    def test_no_iommu_groups(self):
        shutil.rmtree(os.path.join(self.root, 'sys', 'kernel'))
        for address in (ROOT_PORT, GPU, AUDIO, NIC):
            os.remove(self.path(address, 'iommu_group'))
        inventory = self.read()
        self.assertFalse(inventory.iommu_enabled)
        self.assertEqual(tags.UNKNOWN, inventory.gpus[0].isolation)
        self.assertEqual([], inventory.errors)

    def test_names_from_pci_ids(self):
        path = os.path.join(self.root, 'pci.ids')
        with open(path, 'w') as stream:
            stream.write('10de  NVIDIA Corporation\n\t2330  GH100\n')
        self.assertEqual('NVIDIA Corporation GH100',
                         self.read(pci_ids_path=path).gpus[0].name)

    def test_ids_without_pci_ids(self):
        gpu, = self.read(pci_ids_path=os.path.join(self.root, 'absent')).gpus
        self.assertEqual('10de:2330', gpu.name)

    def test_extra_gpu_ids(self):
        inventory = self.read(extra_gpu_ids=['0x8086:0x1533'])
        self.assertEqual([NIC, GPU], [gpu.address for gpu in inventory.gpus])
        self.assertEqual(tags.ISOLATED, inventory.gpu(NIC).isolation)

    def test_malformed_extra_gpu_id(self):
        self.assertRaises(ValueError, self.read, extra_gpu_ids=['nvidia'])

    def test_second_display_function_is_the_same_gpu(self):
        self.tree.add('0000:01:00.2', BELOW_PORT, class_code='0x038000',
                      group=1)
        self.tree.add('0000:01:00.3', BELOW_PORT, class_code='0x030200',
                      group=1)
        gpu, = self.read().gpus
        self.assertEqual(tags.ISOLATED, gpu.isolation)
        self.assertEqual(4, len(gpu.functions))

    def test_virtual_function_is_not_a_gpu(self):
        vf = self.tree.add('0000:01:00.4', BELOW_PORT, class_code='0x030200',
                           group=3)
        os.symlink(os.path.relpath(self.path(GPU), vf),
                   os.path.join(vf, 'physfn'))
        inventory = self.read()
        self.assertEqual([GPU], [gpu.address for gpu in inventory.gpus])
        self.assertEqual(GPU, inventory.function('0000:01:00.4').physfn)

    def test_absolute_bus_link_is_read_under_the_root(self):
        link = os.path.join(self.root, 'sys', 'bus', 'pci', 'devices', GPU)
        os.remove(link)
        os.symlink('/sys/devices/pci0000:00/%s/%s' % (ROOT_PORT, GPU), link)
        self.assertEqual(['pci0000:00', ROOT_PORT],
                         self.read().function(GPU).parents)

    def test_no_numa_directory(self):
        shutil.rmtree(os.path.join(self.root, 'sys', 'devices', 'system'))
        inventory = self.read()
        self.assertEqual([], inventory.numa_nodes)
        self.assertIsNone(inventory.gpus[0].numa_node)

    def test_numa_node_from_sysfs_wins(self):
        self.tree.add(GPU, BELOW_PORT, numa_node='1')
        self.assertEqual(1, self.read().gpus[0].numa_node)


class BadInputTest(TreeTestCase):
    """Each breakage: one error for that item, the rest intact."""

    def assert_rest_intact(self, inventory, missing=()):
        expected = {ROOT_PORT, GPU, AUDIO, NIC} - set(missing)
        self.assertEqual(expected,
                         {function.address
                          for function in inventory.functions})

    def test_no_pci_bus_at_all(self):
        shutil.rmtree(os.path.join(self.root, 'sys', 'bus'))
        self.assertRaises(sysfs.SysfsUnreadableError, self.read)

    def test_missing_required_file(self):
        os.remove(self.path(NIC, 'vendor'))
        inventory = self.read()
        self.assert_error(inventory, NIC, 'vendor', 'missing')
        self.assert_rest_intact(inventory)
        self.assertEqual(tags.ISOLATED, inventory.gpus[0].isolation)

    def test_missing_optional_files_are_no_error(self):
        for name in ('numa_node', 'local_cpulist', 'current_link_speed',
                     'reset_method', 'subsystem_vendor'):
            os.remove(self.path(GPU, name))
        inventory = self.read()
        self.assertEqual([], inventory.errors)
        self.assertIsNone(inventory.function(GPU).reset_methods)

    def test_garbage_numa_node(self):
        self.tree.add(GPU, BELOW_PORT, numa_node='banana')
        inventory = self.read()
        self.assert_error(inventory, GPU, 'numa_node', 'banana')
        self.assertIsNone(inventory.function(GPU).numa_node)
        self.assert_rest_intact(inventory)

    def test_garbage_class_of_a_group_member_makes_unknown(self):
        self.tree.add(ROOT_PORT, ROOT_BUS, class_code='bridge?')
        inventory = self.read()
        self.assert_error(inventory, ROOT_PORT, 'class', 'bridge?')
        self.assertEqual(tags.UNKNOWN, inventory.gpus[0].isolation)

    def test_garbage_class_of_the_gpu_hides_it(self):
        self.tree.add(GPU, BELOW_PORT, class_code='0xzz0000')
        inventory = self.read()
        self.assert_error(inventory, GPU, 'class', 'cannot parse')
        self.assertEqual([], inventory.gpus)
        self.assert_rest_intact(inventory)

    def test_gpu_without_vendor_file_is_still_a_gpu(self):
        os.remove(self.path(GPU, 'vendor'))
        inventory = self.read()
        self.assert_error(inventory, GPU, 'vendor', 'missing')
        gpu, = inventory.gpus
        self.assertEqual('????:2330', gpu.name)
        self.assertEqual(tags.ISOLATED, gpu.isolation)

    def test_out_of_range_id(self):
        self.tree.add(NIC, ROOT_BUS, class_code='0x020000', vendor='0x10000')
        self.assert_error(self.read(), NIC, 'vendor', '16-bit')

    def test_garbage_resource(self):
        self.tree.add(GPU, BELOW_PORT, resource='0x1 0x2\nnonsense\n')
        inventory = self.read()
        self.assert_error(inventory, GPU, 'resource', 'cannot parse')
        self.assertIsNone(inventory.function(GPU).bar_sizes)
        self.assertEqual(tags.ISOLATED, inventory.gpus[0].isolation)

    def test_garbage_link_width_and_cpulist(self):
        self.tree.add(GPU, BELOW_PORT, current_link_width='x16',
                      local_cpulist='0-')
        inventory = self.read()
        self.assert_error(inventory, GPU, 'current_link_width', 'x16')
        self.assert_error(inventory, GPU, 'local_cpulist', '0-')

    def test_dangling_device_link(self):
        shutil.rmtree(self.path(NIC))
        inventory = self.read()
        self.assert_error(inventory, NIC, sysfs.DEVICE_DIR, 'dangling')
        self.assert_rest_intact(inventory, missing=[NIC])
        self.assertEqual(tags.ISOLATED, inventory.gpus[0].isolation)

    def test_dangling_group_link_is_unknown(self):
        shutil.rmtree(os.path.join(self.root, 'sys', 'kernel',
                                   'iommu_groups', '1'))
        inventory = self.read()
        gpu, = inventory.gpus
        self.assertEqual(tags.UNKNOWN, gpu.isolation)
        self.assertIn('does not list', gpu.isolation_reason)

    def test_unreadable_file(self):
        # Tests run as root, where chmod 000 reads fine; a directory in
        # place of the file fails the read as an unreadable file does.
        os.remove(self.path(GPU, 'max_link_speed'))
        os.mkdir(self.path(GPU, 'max_link_speed'))
        inventory = self.read()
        self.assert_error(inventory, GPU, 'max_link_speed', 'unreadable')
        self.assertEqual(tags.ISOLATED, inventory.gpus[0].isolation)

    def test_unreadable_iommu_group_link_is_unknown(self):
        os.remove(self.path(GPU, 'iommu_group'))
        os.mkdir(self.path(GPU, 'iommu_group'))
        inventory = self.read()
        self.assert_error(inventory, GPU, 'iommu_group', 'unreadable link')
        self.assertEqual(tags.UNKNOWN, inventory.gpus[0].isolation)

    def test_unreadable_driver_link_is_not_vfio_ready(self):
        self.tree.add(AUDIO, BELOW_PORT, class_code='0x040300')  # unbound
        os.remove(self.path(GPU, 'driver'))
        os.mkdir(self.path(GPU, 'driver'))
        gpu, = self.read().gpus
        self.assertEqual(tags.ISOLATED, gpu.isolation)
        self.assertFalse(gpu.vfio_ready)

    def test_unreadable_numa_meminfo(self):
        meminfo = os.path.join(self.root, 'sys', 'devices', 'system', 'node',
                               'node1', 'meminfo')
        with open(meminfo, 'w') as stream:
            stream.write('nothing useful\n')
        inventory = self.read()
        self.assert_error(inventory, 'node1', 'meminfo', 'MemTotal')
        self.assertEqual([4, 5, 6, 7], inventory.numa_nodes[1].cpus)

    def test_device_disappears_mid_scan(self):
        root = self.root
        audio_dir = self.path(AUDIO)

        class UnpluggingReader(sysfs.SysfsReader):
            def list_functions(self):
                addresses = super().list_functions()
                shutil.rmtree(audio_dir)  # hot-unplug after the listing
                return addresses

        self.assertTrue(os.path.isdir(audio_dir))
        inventory = UnpluggingReader(root, hostname='h').read()
        self.assertEqual(
            [(AUDIO, sysfs.DEVICE_DIR)],
            [(error.address, error.file) for error in inventory.errors])
        self.assert_rest_intact(inventory, missing=[AUDIO])
        # The group still lists the vanished function: not provable.
        self.assertEqual(tags.UNKNOWN, inventory.gpus[0].isolation)

    def test_device_disappears_while_read(self):
        gpu_dir = self.path(GPU)

        class VanishingReader(sysfs.SysfsReader):
            def _resolve(self, address):
                resolved = super()._resolve(address)
                if address == GPU:
                    shutil.rmtree(gpu_dir)  # gone after the realpath
                return resolved

        inventory = VanishingReader(self.root, hostname='h').read()
        self.assertEqual(
            [(GPU, sysfs.DEVICE_DIR)],
            [(error.address, error.file) for error in inventory.errors])
        self.assert_error(inventory, GPU, sysfs.DEVICE_DIR, 'disappeared')
        self.assertEqual([], inventory.gpus)
        self.assert_rest_intact(inventory, missing=[GPU])


class NumaSourcesTest(TreeTestCase):
    """NUMA from numa_node, local_cpulist or the local_cpus mask, checked."""

    def rewrite(self, name, text):
        path = self.path(GPU, name)
        if text is None:
            os.unlink(path)
            return
        with open(path, 'w') as stream:
            stream.write(text + '\n')

    def test_node_the_host_lacks_is_refused_for_local_cpulist(self):
        """numa_node 7 on a 2-node host: an error; node 1 from the CPUs."""
        self.rewrite('numa_node', '7')
        self.rewrite('local_cpulist', '4-7')
        inventory = self.read()
        self.assertEqual(1, inventory.gpus[0].numa_node)
        self.assert_error(inventory, GPU, 'numa_node',
                          'node 7 is not a NUMA node of this host (0, 1)')

    def test_local_cpus_mask_when_there_is_no_cpulist(self):
        """numa_node -1, no local_cpulist, mask f0 (CPUs 4-7): node 1."""
        self.rewrite('numa_node', '-1')
        self.rewrite('local_cpulist', None)
        self.rewrite('local_cpus', '00000000,000000f0')
        self.assertEqual(1, self.read().gpus[0].numa_node)

    def test_cpumask_agrees_with_cpulist(self):
        for mask, cpus in (('f0', [4, 5, 6, 7]), ('1,00000001', [0, 32]),
                           ('0', []), ('00000000,80000000', [31])):
            self.assertEqual(cpus, locality.parse_cpumask(mask))
        for bad in ('', 'zz', '1,,2', '123456789'):
            self.assertRaises(ValueError, locality.parse_cpumask, bad)
