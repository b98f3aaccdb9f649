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
"""Hypothesis: random corruption of a kernel-shaped tree.

Two GPUs, each alone in its IOMMU group, and a NIC. A random list of
faults hits their files and links (garbage, empty, huge, a FIFO, removed,
unreadable, a dangling link, a link to itself or to the wrong group).
Properties:

* the read finishes (a FIFO never blocks it: hypothesis' deadline) and
  never raises;
* a GPU any of whose isolation evidence was touched (its ``iommu_group``
  link, its group's listing, or another device's link pointed at its
  group) is never ``isolated``;
* every device nobody touched is still reported, with its vendor.
"""

import os
import shutil

import fixtures
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from oslotest import base

from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter import tags
from gpu_passthrough_filter.testing import fake_sysfs

GPUS = {'0000:02:00.0': 7, '0000:03:00.0': 8}
NIC = '0000:04:00.0'
DEVICES = sorted(GPUS) + [NIC]
FILES = ['vendor', 'class', 'numa_node', 'local_cpulist', 'resource',
         'config', 'reset_method', 'current_link_speed', 'driver',
         'iommu_group']

_FAULT_NAMES = ('garbage', 'empty', 'huge', 'fifo', 'remove', 'unreadable',
                'dangle', 'self', 'other_group', 'unlist')
_faults = st.lists(st.tuples(st.sampled_from(DEVICES),
                             st.sampled_from(FILES),
                             st.sampled_from(sorted(_FAULT_NAMES))),
                   max_size=4)


class SysfsFuzzTest(base.BaseTestCase):

    def write_tree(self):
        root = self.useFixture(fixtures.TempDir()).path
        ports = [fake_sysfs.RootPort('0000:00:0%d.0' % (i + 1),
                                     iommu_group=group, children=[
                                         fake_sysfs.nvidia_gpu(
                                             address, iommu_group=group)])
                 for i, (address, group) in enumerate(sorted(GPUS.items()))]
        ports.append(fake_sysfs.RootPort('0000:00:09.0', iommu_group=9,
                                         children=[fake_sysfs.nic(
                                             NIC, iommu_group=9)]))
        fake_sysfs.write(fake_sysfs.Host(
            numa_nodes=[fake_sysfs.NumaNode(0, '0-3')],
            root_complexes=[fake_sysfs.RootComplex('0000:00',
                                                   children=ports)]), root)
        return root

    def inject(self, root, tree, address, name, fault):
        """Apply one fault; returns the GPU groups whose proof it touched."""
        path = tree.path(address, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        touched = set()
        # NOTE: 'unreadable' leaves a link alone (a mode means nothing to
        # readlink); the two group faults say what they touched.
        if name == 'iommu_group' and fault not in ('unlist', 'other_group',
                                                   'unreadable'):
            touched.add(GPUS.get(address))
        touched |= _FAULTS[fault](root, tree, address, name, path) or set()
        return touched - {None}

    def test_every_fault_has_an_injector(self):
        self.assertEqual(set(_FAULT_NAMES), set(_FAULTS))

    @settings(max_examples=40, deadline=20000)
    @given(_faults)
    def test_never_isolated_without_proof_never_stuck(self, faults):
        root = self.write_tree()
        tree = fake_sysfs.FakeSysfs(root)
        touched_groups, touched_devices, hit = set(), set(), set()
        for address, name, fault in faults:
            # NOTE: one fault per file (a second one could repair the
            # first, and the evidence would be intact again).
            target = {'other_group': 'iommu_group',
                      'unlist': 'listing'}.get(fault, name)
            if (address, target) in hit:
                continue
            hit.add((address, target))
            touched_groups |= self.inject(root, tree, address, name, fault)
            touched_devices.add(address)
        inventory = sysfs.read_inventory(root, hostname='fuzz')
        for gpu in inventory.gpus:
            if GPUS.get(gpu.address) in touched_groups:
                self.assertNotEqual(tags.ISOLATED, gpu.isolation,
                                    (faults, gpu))
        for address in set(DEVICES) - touched_devices:
            function = inventory.function(address)
            self.assertIsNotNone(function, (faults, address))
            self.assertIsNotNone(function.vendor, (faults, address))


def _remove(path):
    if os.path.lexists(path):
        os.remove(path)


def _fifo(root, tree, address, name, path):
    _remove(path)
    os.mkfifo(path)


def _unreadable(root, tree, address, name, path):
    if os.path.lexists(path) and not os.path.islink(path):
        tree.unreadable(address, name)


def _dangle(root, tree, address, name, path):
    if os.path.lexists(path):
        tree.dangle(address, name)


def _other_group(root, tree, address, name, path):
    # NOTE: always a group that is not the device's own, so that no fault
    # repairs what an earlier one broke.
    group = next(g for g in sorted(GPUS.values()) if g != GPUS.get(address))
    tree.relink(address, 'iommu_group',
                '../../../../kernel/iommu_groups/%d' % group)
    return {GPUS.get(address), group}


def _unlist(root, tree, address, name, path):
    touched = set()
    for group in GPUS.values():
        member = os.path.join(root, 'sys', 'kernel', 'iommu_groups',
                              str(group), 'devices', address)
        if os.path.lexists(member):
            os.remove(member)
            touched.add(group)
    return touched


#: fault name -> ``(root, tree, address, name, path) -> touched groups``.
_FAULTS = {
    'garbage': lambda r, t, a, n, p: t.corrupt(a, n, b'\x00\xff junk \n'),
    'empty': lambda r, t, a, n, p: t.corrupt(a, n, b''),
    'huge': lambda r, t, a, n, p: t.corrupt(a, n, b'7' * (1 << 20)),
    'fifo': _fifo,
    'remove': lambda r, t, a, n, p: _remove(p),
    'unreadable': _unreadable,
    'dangle': _dangle,
    'self': lambda r, t, a, n, p: t.relink(a, n, n),
    'other_group': _other_group,
    'unlist': _unlist,
}
