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
"""The reader on a real captured sysfs tree.

``tests/data/sysfs/32intel64-2p8co2t+8ve`` is a dump (hwloc's test suite,
BSD-3, see the licence file beside it) of a two-socket Xeon host with
eight NEC SX-Aurora Vector Engines (``1bcf:001c``, class 0x0b40, so not
GPUs unless configured) and two ConnectX-4 NICs behind two PLX PEX9797
switches, and an Intel X722 NIC behind the Lewisburg PCH's internal
switch. The kernel exposed no IOMMU groups and ``numa_node`` says 0 for
every device. The expected values below were read off the tree by hand.
"""

import io
import os
import shutil

import fixtures
from oslotest import base

from gpu_passthrough_filter.cmd import agent
from gpu_passthrough_filter.inventory import locality
from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter import tags
from tests.unit.inventory import pairs

TREE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                    'data', 'sysfs', '32intel64-2p8co2t+8ve')

VE = '1bcf:001c'
SWITCH_A = '0000:18:00.0'
SWITCH_B = '0000:3b:00.0'
VES_A = ['0000:1b:00.0', '0000:1c:00.0', '0000:1d:00.0', '0000:1e:00.0']
VES_B = ['0000:3d:00.0', '0000:3f:00.0', '0000:40:00.0', '0000:41:00.0']


def read(**kwargs):
    return sysfs.read_inventory(TREE, hostname='ve-host', **kwargs)


class RealTreeTest(base.BaseTestCase):

    def test_everything_read_without_error(self):
        inventory = read()
        self.assertEqual([], inventory.errors)
        self.assertEqual(28, len(inventory.functions))
        self.assertEqual(
            [(0, locality.parse_cpulist('0-7,16-23')),
             (1, locality.parse_cpulist('8-15,24-31'))],
            [(node.id, node.cpus) for node in inventory.numa_nodes])
        self.assertEqual(47925628, inventory.numa_nodes[0].memory_kb)

    def test_iommu_not_exposed(self):
        inventory = read()
        self.assertFalse(inventory.iommu_enabled)
        self.assertEqual({}, inventory.iommu_groups)

    def test_accelerators_are_not_gpus_by_default(self):
        self.assertEqual([], read().gpus)

    def test_configured_accelerators(self):
        gpus = read(extra_gpu_ids=[VE]).gpus
        self.assertEqual(VES_A + VES_B, [gpu.address for gpu in gpus])
        for gpu in gpus:
            self.assertEqual(tags.UNKNOWN, gpu.isolation)
            self.assertFalse(gpu.vfio_ready)
            self.assertEqual('ve_drv', gpu.driver)
            self.assertEqual(0, gpu.numa_node)
            self.assertEqual(VE, gpu.model)

    def test_switch_grouping(self):
        gpus = read(extra_gpu_ids=[VE]).gpus
        self.assertEqual({SWITCH_A: VES_A, SWITCH_B: VES_B},
                         pairs.switch_groups(gpus))
        by_address = {gpu.address: gpu for gpu in gpus}
        self.assertEqual(('0000:17:00.0', 'pci0000:17'),
                         (by_address[VES_A[0]].root_port,
                          by_address[VES_A[0]].root_complex))
        self.assertEqual(('0000:3a:00.0', 'pci0000:3a'),
                         (by_address[VES_B[0]].root_port,
                          by_address[VES_B[0]].root_complex))

    def test_pair_locality(self):
        gpus = {gpu.address: gpu for gpu in read(extra_gpu_ids=[VE]).gpus}
        self.assertEqual(pairs.Locality.SAME_SWITCH,
                         pairs.pair_locality(gpus[VES_A[0]],
                                             gpus[VES_A[3]]))
        # Two root complexes; sysfs puts both on node 0.
        self.assertEqual(pairs.Locality.SAME_NUMA,
                         pairs.pair_locality(gpus[VES_A[0]],
                                             gpus[VES_B[0]]))

    def test_function_details(self):
        inventory = read()
        ve = inventory.function(VES_A[0])
        self.assertEqual(('1bcf', '001c', '0b4000'),
                         (ve.vendor, ve.device, ve.class_code))
        self.assertEqual(['pci0000:17', '0000:17:00.0', SWITCH_A,
                          '0000:19:08.0'], ve.parents)
        self.assertEqual(('8 GT/s', 16, '8 GT/s', 16),
                         (ve.cur_link_speed, ve.cur_link_width,
                          ve.max_link_speed, ve.max_link_width))
        self.assertEqual(64 * 2 ** 30, ve.bar_sizes[0])  # 64 GiB HBM BAR
        nic = inventory.function('0000:60:00.0')
        # The PCH switch's downstream port is on the path, not in the bus
        # listing of the dump.
        self.assertEqual(['pci0000:5d', '0000:5d:02.0', '0000:5e:00.0',
                          '0000:5f:03.0'], nic.parents)
        self.assertIsNone(inventory.function('0000:5f:03.0'))
        self.assertEqual(64, nic.sriov_totalvfs)
        self.assertEqual('i40e', nic.driver)
        self.assertEqual(('2.5 GT/s', 1), (nic.cur_link_speed,
                                           nic.cur_link_width))

    def test_bridges_classified(self):
        inventory = read()
        bridges = {function.address for function in inventory.functions
                   if function.is_bridge}
        self.assertEqual(16, len(bridges))  # 2 x (root port + 6 PLX) + 2 PCH
        self.assertIn(SWITCH_A, bridges)

    def test_round_trip(self):
        inventory = read(extra_gpu_ids=[VE])
        self.assertEqual(
            inventory, model.HostInventory.from_json(inventory.to_json()))


class RealTreeCommandTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.stdout = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', self.stdout))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', io.StringIO()))

    def test_table(self):
        self.assertEqual(0, agent.main(['discover', '--sysfs-root',
                                        TREE, '--extra-gpu-id', VE]))
        output = self.stdout.getvalue()
        self.assertIn('28 PCI functions, 2 NUMA node(s)', output)
        self.assertIn('IOMMU is off or not exposed', output)
        rows = [line for line in output.splitlines()
                if line.startswith('\u2502 0000:')]
        self.assertEqual(8, len(rows))
        self.assertEqual(4, sum(SWITCH_A in row for row in rows))
        self.assertEqual(4, sum(SWITCH_B in row for row in rows))

    def test_json(self):
        self.assertEqual(0, agent.main(['discover', '--sysfs-root',
                                        TREE, '--extra-gpu-id', VE,
                                        '--format', 'json']))
        inventory = model.HostInventory.from_json(self.stdout.getvalue())
        self.assertEqual(VES_A + VES_B,
                         [gpu.address for gpu in inventory.gpus])


def _copy_dereferenced(tree, into):
    """The tree as ``cp -rL`` leaves it: device links become directories.

    ``sys/bus/pci/devices/<address>`` entries turn into plain copies of
    the device directories; the links inside them are kept, so that the
    rest reads alike.
    """
    copy = os.path.join(into, 'copy')
    shutil.copytree(tree, copy, symlinks=True)
    devices = os.path.join(copy, 'sys', 'bus', 'pci', 'devices')
    for name in os.listdir(devices):
        link = os.path.join(devices, name)
        target = os.path.normpath(os.path.join(devices, os.readlink(link)))
        os.unlink(link)
        shutil.copytree(target, link, symlinks=True)
    return copy


class CopiedTreeTest(base.BaseTestCase):
    """A capture whose bus/pci/devices entries are plain directories."""

    def summary(self, inventory):
        return sorted((f.address, f.vendor, f.device, f.numa_node,
                       tuple(f.parents)) for f in inventory.functions)

    def test_plain_directory_capture_reads_like_the_linked_one(self):
        """Same functions, NUMA nodes and parent chains (switches), no error.

        Before: every device read as "device directory missing (dangling
        link to <root joined twice>)".
        """
        tmp = self.useFixture(fixtures.TempDir()).path
        copy = _copy_dereferenced(TREE, tmp)
        copied = sysfs.read_inventory(copy, hostname='ve-host')
        self.assertEqual([], copied.errors)
        self.assertEqual(self.summary(read()), self.summary(copied))

    def test_fifo_attribute_is_an_error_not_a_hang(self):
        """A FIFO as numa_node: one error for that device, the rest read."""
        tmp = self.useFixture(fixtures.TempDir()).path
        copy = os.path.join(tmp, 'copy')
        shutil.copytree(TREE, copy, symlinks=True)
        device = os.path.realpath(os.path.join(
            copy, 'sys', 'bus', 'pci', 'devices', VES_A[0]))
        os.unlink(os.path.join(device, 'numa_node'))
        os.mkfifo(os.path.join(device, 'numa_node'))
        inventory = sysfs.read_inventory(copy, hostname='ve-host')
        self.assertEqual(28, len(inventory.functions))
        self.assertTrue(any(VES_A[0] in str(e) and 'not a regular file'
                            in str(e) for e in inventory.errors),
                        inventory.errors)
