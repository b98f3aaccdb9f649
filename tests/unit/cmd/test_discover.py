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
"""``gpu-passthrough-agent discover`` end to end on written trees."""

import io
import os
import shutil

import fixtures
from oslotest import base

from gpu_passthrough_filter.cmd import agent
from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter import tags
from tests.unit.inventory import tree as sysfs_tree

ROOT_BUS = ['pci0000:00']
PORT_A = '0000:00:01.0'
PORT_B = '0000:00:03.0'
GPU_A = '0000:01:00.0'
GPU_B = '0000:02:00.0'
NIC = '0000:00:02.0'


class DiscoverTestCase(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.tree = sysfs_tree.Tree(self.root)
        self.tree.numa_node(0, '0-3')
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', self.stdout))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.stderr))

    def discover(self, *extra):
        return agent.main(['discover', '--sysfs-root', self.root,
                           '--hostname', 'compute-1'] + list(extra))

    def add_gpu_host(self):
        """Two GPUs: A alone in group 1, B sharing group 2 with the NIC."""
        for port, gpu, group in ((PORT_A, GPU_A, 1), (PORT_B, GPU_B, 2)):
            self.tree.add(port, ROOT_BUS, class_code='0x060400',
                          driver='pcieport', group=group)
            self.tree.add(gpu, ROOT_BUS + [port], driver='vfio-pci',
                          group=group, numa_node='0')
        self.tree.add(NIC, ROOT_BUS, class_code='0x020000', driver='igb',
                      group=2)


class TableTest(DiscoverTestCase):

    def test_virtio_vm_has_no_gpu(self):
        # What this development VM shows: virtio devices, no IOMMU groups.
        for slot, class_code in ((2, '0x020000'), (3, '0x010000'),
                                 (4, '0x00ff00')):
            self.tree.add('0000:00:%02x.0' % slot, ROOT_BUS,
                          class_code=class_code, vendor='0x1af4',
                          device='0x1000', driver='virtio-pci')
        self.assertEqual(0, self.discover())
        output = self.stdout.getvalue()
        self.assertIn('No GPU found.', output)
        self.assertIn('3 PCI functions', output)
        self.assertIn('IOMMU is off or not exposed', output)
        self.assertEqual('', self.stderr.getvalue())

    def test_gpu_rows(self):
        self.add_gpu_host()
        self.assertEqual(0, self.discover())
        output = self.stdout.getvalue()
        self.assertNotIn('IOMMU is off', output)
        rows = {line.split()[1]: line for line in output.splitlines()
                if line.startswith('│ 0000:')}
        self.assertEqual({GPU_A, GPU_B}, set(rows))
        self.assertIn('1 isolated', rows[GPU_A])
        self.assertIn('2 shared', rows[GPU_B])
        self.assertIn('16.0 GT/s PCIe x16', rows[GPU_A])
        self.assertIn('vfio-pci', rows[GPU_A])

    def test_names_from_pci_ids(self):
        self.add_gpu_host()
        pci_ids = os.path.join(self.root, 'pci.ids')
        with open(pci_ids, 'w') as stream:
            stream.write('10de  NVIDIA Corporation\n'
                         '\t2330  GH100 [H100 SXM5 80GB]\n')
        self.assertEqual(0, self.discover('--pci-ids', pci_ids))
        self.assertIn('NVIDIA Corporation GH100 [H100 SXM5 80GB]',
                      self.stdout.getvalue())

    def test_extra_gpu_id_and_iommu_off(self):
        self.tree.add('0000:1b:00.0', ROOT_BUS + [PORT_A],
                      class_code='0x0b4000', vendor='0x1bcf',
                      device='0x001c', driver='ve_drv')
        self.assertEqual(0, self.discover())
        self.assertIn('No GPU found.', self.stdout.getvalue())
        self.stdout.truncate(0)
        self.assertEqual(0, self.discover('--extra-gpu-id', '1bcf:001c'))
        output = self.stdout.getvalue()
        self.assertIn('0000:1b:00.0', output)
        self.assertIn(tags.UNKNOWN, output)
        self.assertIn('IOMMU is off or not exposed', output)

    def test_item_errors_are_warnings(self):
        self.add_gpu_host()
        with open(os.path.join(self.tree.device_dir(NIC, ROOT_BUS),
                               'numa_node'), 'w') as stream:
            stream.write('many\n')
        self.assertEqual(0, self.discover())
        self.assertIn("Warning: %s numa_node: cannot parse 'many'" % NIC,
                      self.stderr.getvalue())
        self.assertIn(GPU_A, self.stdout.getvalue())


class JsonTest(DiscoverTestCase):

    def test_json_round_trips(self):
        self.add_gpu_host()
        self.assertEqual(0, self.discover('--format', 'json'))
        inventory = model.HostInventory.from_json(self.stdout.getvalue())
        self.assertEqual('compute-1', inventory.hostname)
        self.assertEqual({GPU_A: tags.ISOLATED, GPU_B: tags.SHARED},
                         {gpu.address: gpu.isolation
                          for gpu in inventory.gpus})
        self.assertTrue(inventory.gpu(GPU_A).vfio_ready)
        self.assertFalse(inventory.gpu(GPU_B).vfio_ready)  # igb in group

    def test_json_keeps_errors_and_stdout_clean(self):
        self.add_gpu_host()
        os.remove(os.path.join(self.tree.device_dir(NIC, ROOT_BUS),
                               'device'))
        self.assertEqual(0, self.discover('--format', 'json'))
        inventory = model.HostInventory.from_json(self.stdout.getvalue())
        self.assertEqual([model.ItemError(NIC, 'device', 'missing')],
                         inventory.errors)
        self.assertIn('Warning', self.stderr.getvalue())


class ExitStatusTest(DiscoverTestCase):

    def test_nothing_readable_fails(self):
        shutil.rmtree(os.path.join(self.root, 'sys'))
        self.assertEqual(1, self.discover())
        self.assertIn('nothing could be read', self.stderr.getvalue())

    def test_every_device_unreadable_fails(self):
        self.add_gpu_host()
        shutil.rmtree(os.path.join(self.root, 'sys', 'devices', 'pci0000:00'))
        self.assertEqual(1, self.discover())
        self.assertIn('no PCI function could be read',
                      self.stderr.getvalue())

    def test_empty_bus_is_a_host_without_gpu(self):
        self.assertEqual(0, self.discover())
        self.assertIn('No GPU found.', self.stdout.getvalue())

    def test_bad_extra_gpu_id_is_a_usage_error(self):
        error = self.assertRaises(SystemExit, self.discover,
                                  '--extra-gpu-id', 'nvidia')
        self.assertEqual(2, error.code)
        self.assertIn('not a vendor:device id', self.stderr.getvalue())


class SysfsRootHintTest(DiscoverTestCase):

    def test_root_given_as_its_sys_directory_gets_a_hint(self):
        """``--sysfs-root <root>/sys``, a common slip: point at <root>."""
        self.add_gpu_host()
        status = agent.main(['discover', '--sysfs-root',
                             os.path.join(self.root, 'sys')])
        self.assertEqual(1, status)
        self.assertIn('try --sysfs-root %s' % self.root,
                      self.stderr.getvalue().replace('\n', ' '))
