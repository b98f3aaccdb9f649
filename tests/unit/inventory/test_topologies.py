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
"""Exact verdicts and switch grouping on named, realistic machines.

Each machine is transcribed from a public dump (IOMMU group listings,
``nvidia-smi topo -m``, hwloc exports; see ``_note`` lines) and written
with the edge-case tree writer; the expected table beside it states, per
GPU, the verdict and the switch the agent must report.
"""

import fixtures
from oslotest import base

from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter import tags
from tests.unit.inventory import pairs
from tests.unit.inventory import tree as sysfs_tree

I, S, U = tags.ISOLATED, tags.SHARED, tags.UNKNOWN
BRIDGE = dict(class_code='0x060400', vendor='0x8086', device='0x1901',
              driver='pcieport')
PLX = dict(BRIDGE, vendor='0x10b5', device='0x9797')
NVIDIA_FUNCTIONS = (('0', '0x030000'), ('1', '0x040300'),
                    ('2', '0x0c0330'), ('3', '0x0c8000'))


def consumer_intel_turing(tree):
    """GTX 1660 with HDA/USB/UCSI functions in its root port's group.

    _note: Coopydood/ultimate-macOS-KVM#213; the iGPU (class 0x0380) is
    in group 0 and is no 0x0300/0x0302 GPU.
    """
    tree.add('0000:00:02.0', ['pci0000:00'], class_code='0x038000',
             vendor='0x8086', device='0x1912', driver='i915', group=0)
    tree.add('0000:00:01.0', ['pci0000:00'], group=2, **BRIDGE)
    for function, class_code in NVIDIA_FUNCTIONS:
        tree.add('0000:01:00.' + function, ['pci0000:00', '0000:00:01.0'],
                 class_code=class_code, device='0x2184', group=2)
    return {'0000:01:00.0': (I, None)}


def intel_pch_no_acs(tree):
    """PCH root ports without ACS: ports and what is below share group 7.

    _note: Alex Williamson, LKML 2013-02-04: group 7 = 00:1c.0, 00:1c.6,
    03:00.0; group 10 = 00:1f.0 (LPC), 00:1f.2 (SATA), 00:1f.3 (SMBus).
    Here 03:00.0 is a GPU and a NIC sits under 00:1c.0 (in group 7 too:
    without ACS the kernel cannot split them), so the GPU is shared.
    """
    for port in ('0000:00:1c.0', '0000:00:1c.6'):
        tree.add(port, ['pci0000:00'], group=7, **BRIDGE)
    tree.add('0000:02:00.0', ['pci0000:00', '0000:00:1c.0'],
             class_code='0x020000', vendor='0x8086', device='0x10d3',
             driver='e1000e', group=7)
    tree.add('0000:03:00.0', ['pci0000:00', '0000:00:1c.6'],
             device='0x128b', driver='nouveau', group=7)
    for function, class_code in (('0', '0x060100'), ('2', '0x010601'),
                                 ('3', '0x0c0500')):
        tree.add('0000:00:1f.' + function, ['pci0000:00'],
                 class_code=class_code, vendor='0x8086', group=10)
    return {'0000:03:00.0': (S, None)}


def intel_pch_no_acs_alone(tree):
    """Group 7 exactly as dumped: two root ports and the GPU only."""
    for port in ('0000:00:1c.0', '0000:00:1c.6'):
        tree.add(port, ['pci0000:00'], group=7, **BRIDGE)
    tree.add('0000:03:00.0', ['pci0000:00', '0000:00:1c.6'],
             device='0x128b', driver='vfio-pci', group=7)
    return {'0000:03:00.0': (I, None)}


def plx_8x_rtx2080ti(tree):
    """8 RTX 2080 Ti, 4 functions each, behind two PLX PEX9797.

    _note: kata-containers#6779: downstream ports alone in their groups,
    each GPU's four functions in one group of their own.
    """
    expected = {}
    group = 20
    for root, upstream, ports, buses in (
            ('17', '18', ('08', '0c', '10', '14'), ('1b', '1c', '1d', '1e')),
            ('3a', '3b', ('04', '0c', '10', '14'), ('3d', '3f', '40', '41'))):
        host = 'pci0000:' + root
        root_port = '0000:%s:00.0' % root
        switch = '0000:%s:00.0' % upstream
        tree.add(root_port, [host], group=group, **BRIDGE)
        tree.add(switch, [host, root_port], group=group + 1, **PLX)
        group += 2
        down_bus = '%02x' % (int(upstream, 16) + 1)
        for port, bus in zip(ports, buses):
            downstream = '0000:%s:%s.0' % (down_bus, port)
            tree.add(downstream, [host, root_port, switch], group=group,
                     **PLX)
            for function, class_code in NVIDIA_FUNCTIONS:
                tree.add('0000:%s:00.%s' % (bus, function),
                         [host, root_port, switch, downstream],
                         class_code=class_code, device='0x1e04',
                         driver='vfio-pci', group=group + 1)
            expected['0000:%s:00.0' % bus] = (I, switch)
            group += 2
    return expected


def pcie_4gpu_dual_socket_l40s(tree):
    """4 L40S, each on its own root complex, 2 per socket; numa_node -1.

    _note: warpem/miss-alignment#106: GPU0-1 NODE, GPU2-3 NODE, cross SYS;
    the NUMA node has to come from local_cpulist.
    """
    tree.numa_node(0, '0-95,192-287')
    tree.numa_node(1, '96-191,288-383')
    expected = {}
    for index, (bus, cpus) in enumerate((('17', '0-95,192-287'),
                                         ('31', '0-95,192-287'),
                                         ('ca', '96-191,288-383'),
                                         ('e1', '96-191,288-383'))):
        host = 'pci0000:%s' % bus
        port = '0000:%s:01.0' % bus
        gpu_bus = '%02x' % (int(bus, 16) + 1)
        tree.add(port, [host], group=2 * index, **BRIDGE)
        tree.add('0000:%s:00.0' % gpu_bus, [host, port], device='0x26b9',
                 class_code='0x030200', group=2 * index + 1,
                 numa_node='-1', local_cpulist=cpus)
        expected['0000:%s:00.0' % gpu_bus] = (I, None)
    return expected


def pcie_8gpu_rtx4090(tree):
    """8 RTX 4090, no shared switch: every pair SYS (go-gpuallocator#17)."""
    tree.numa_node(0, '0-55,112-167')
    tree.numa_node(1, '56-111,168-223')
    expected = {}
    for index in range(8):
        bus = '%02x' % (0x10 + 0x10 * index)
        host = 'pci0000:' + bus
        port = '0000:%s:01.0' % bus
        gpu = '0000:%02x:00.0' % (int(bus, 16) + 1)
        tree.add(port, [host], group=100 + 2 * index, **BRIDGE)
        tree.add(gpu, [host, port], device='0x2684', group=101 + 2 * index,
                 numa_node=str(index // 4))
        expected[gpu] = (I, None)
    return expected


def dgx_a100_like(tree):
    """8 A100 in pairs under 4 Broadcom switches with 2 NICs per switch.

    _note: NVIDIA/nccl#1505 (DGX A100): GPU0 07:00.0 under a 1000:c010
    switch whose port 0a:00.0 holds mlx5_0; pairs on NUMA 3, 1, 7, 5.
    """
    expected = {}
    group = 0
    for index, (root, node) in enumerate((('01', 3), ('41', 1), ('81', 7),
                                         ('c1', 5))):
        host = 'pci0000:' + root
        root_port = '0000:%s:01.1' % root
        upstream = '0000:%02x:00.0' % (int(root, 16) + 1)
        down_bus = int(root, 16) + 2
        tree.add(root_port, [host], group=group, numa_node=str(node),
                 **BRIDGE)
        tree.add(upstream, [host, root_port], group=group + 1,
                 numa_node=str(node),
                 **dict(BRIDGE, vendor='0x1000', device='0xc010'))
        group += 2
        for slot, (kind, bus) in enumerate((('gpu', down_bus + 4),
                                            ('gpu', down_bus + 5),
                                            ('nic', down_bus + 6),
                                            ('nic', down_bus + 7))):
            downstream = '0000:%02x:%02x.0' % (down_bus, slot * 4)
            endpoint = '0000:%02x:00.0' % bus
            parents = [host, root_port, upstream]
            tree.add(downstream, parents, group=group, numa_node=str(node),
                     **dict(BRIDGE, vendor='0x1000', device='0xc010'))
            if kind == 'gpu':
                tree.add(endpoint, parents + [downstream], device='0x20b0',
                         class_code='0x030200', group=group + 1,
                         numa_node=str(node), driver='vfio-pci')
                expected[endpoint] = (I, upstream)
            else:
                tree.add(endpoint, parents + [downstream],
                         class_code='0x020700', vendor='0x15b3',
                         device='0x101b', group=group + 1,
                         numa_node=str(node), driver='mlx5_core')
            group += 2
    return expected


def two_gpus_one_group(tree):
    """A switch without ACS: both GPUs and its ports in one group."""
    host, port, upstream = 'pci0000:00', '0000:00:01.0', '0000:01:00.0'
    tree.add(port, [host], group=1, **BRIDGE)
    tree.add(upstream, [host, port], group=1, **PLX)
    expected = {}
    for slot, bus in (('00', '03'), ('08', '04')):
        downstream = '0000:02:%s.0' % slot
        tree.add(downstream, [host, port, upstream], group=1, **PLX)
        tree.add('0000:%s:00.0' % bus, [host, port, upstream, downstream],
                 group=1, driver='vfio-pci')
        expected['0000:%s:00.0' % bus] = (S, upstream)
    return expected


def no_gpu_virtio_vm(tree):
    """This development VM: virtio devices, no IOMMU groups, no GPU."""
    for slot, class_code in (('00', '0x060000'), ('02', '0x018000'),
                             ('03', '0x020000'), ('05', '0xffff00')):
        tree.add('0000:00:%s.0' % slot, ['pci0000:00'],
                 class_code=class_code, vendor='0x1af4', device='0x1041')
    return {}


MACHINES = (consumer_intel_turing, intel_pch_no_acs, intel_pch_no_acs_alone,
            plx_8x_rtx2080ti, pcie_4gpu_dual_socket_l40s, pcie_8gpu_rtx4090,
            dgx_a100_like, two_gpus_one_group, no_gpu_virtio_vm)


class MachineTestCase(base.BaseTestCase):

    def read(self, machine):
        root = self.useFixture(fixtures.TempDir()).path
        expected = machine(sysfs_tree.Tree(root))
        inventory = sysfs.read_inventory(root, hostname=machine.__name__)
        return inventory, expected


class VerdictTableTest(MachineTestCase):

    def test_every_machine(self):
        for machine in MACHINES:
            inventory, expected = self.read(machine)
            self.assertEqual([], inventory.errors, machine.__name__)
            self.assertEqual(
                expected,
                {gpu.address: (gpu.isolation, gpu.switch)
                 for gpu in inventory.gpus}, machine.__name__)


class LocalityTest(MachineTestCase):

    def levels(self, machine):
        inventory, _expected = self.read(machine)
        gpus = inventory.gpus
        return gpus, {(a.address, b.address): pairs.pair_locality(a, b)
                      for a in gpus for b in gpus if a is not b}

    def test_plx_switch_groups(self):
        inventory, _expected = self.read(plx_8x_rtx2080ti)
        self.assertEqual(
            {'0000:18:00.0': ['0000:1b:00.0', '0000:1c:00.0',
                              '0000:1d:00.0', '0000:1e:00.0'],
             '0000:3b:00.0': ['0000:3d:00.0', '0000:3f:00.0',
                              '0000:40:00.0', '0000:41:00.0']},
            pairs.switch_groups(inventory.gpus))
        self.assertEqual(4, len(inventory.gpus[0].functions))

    def test_l40s_numa_derived_and_levels(self):
        gpus, levels = self.levels(pcie_4gpu_dual_socket_l40s)
        self.assertEqual([0, 0, 1, 1], [gpu.numa_node for gpu in gpus])
        self.assertEqual(pairs.Locality.SAME_NUMA,
                         levels[('0000:18:00.0', '0000:32:00.0')])
        self.assertEqual(pairs.Locality.CROSS_NUMA,
                         levels[('0000:18:00.0', '0000:cb:00.0')])

    def test_rtx4090_never_shares_a_switch(self):
        _gpus, levels = self.levels(pcie_8gpu_rtx4090)
        self.assertNotIn(pairs.Locality.SAME_SWITCH, levels.values())
        self.assertEqual(pairs.Locality.SAME_NUMA,
                         levels[('0000:11:00.0', '0000:41:00.0')])
        self.assertEqual(pairs.Locality.CROSS_NUMA,
                         levels[('0000:11:00.0', '0000:51:00.0')])

    def test_dgx_pairs(self):
        gpus, levels = self.levels(dgx_a100_like)
        self.assertEqual([3, 3, 1, 1, 7, 7, 5, 5],
                         [gpu.numa_node for gpu in gpus])
        self.assertEqual(pairs.Locality.SAME_SWITCH,
                         levels[('0000:07:00.0', '0000:08:00.0')])
        self.assertEqual(pairs.Locality.CROSS_NUMA,
                         levels[('0000:07:00.0', '0000:47:00.0')])
        self.assertEqual(4, len(pairs.switch_groups(gpus)))

    def test_vm_reports_no_iommu(self):
        inventory, _expected = self.read(no_gpu_virtio_vm)
        self.assertFalse(inventory.iommu_enabled)
        self.assertEqual(4, len(inventory.functions))
