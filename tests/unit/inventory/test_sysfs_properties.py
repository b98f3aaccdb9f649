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
"""Property tests: random, partly broken trees never fool the reader.

Hypothesis writes random hosts (GPUs, audio functions, NICs, USB
controllers and bridges, in random IOMMU groups, some with a file broken)
and checks two promises: reading never raises, and no GPU is called
isolated while its group (as written) holds an endpoint of another device.
"""

import os
import shutil
import tempfile

import hypothesis
from hypothesis import strategies
from oslotest import base

from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter import tags
from tests.unit.inventory import tree as sysfs_tree

CLASSES = ('0x030000', '0x030200', '0x040300', '0x020000', '0x0c0330',
           '0x060400', '0x060000')
DRIVERS = (None, 'vfio-pci', 'nvidia', 'igb', 'pcieport')
BREAKAGES = (None, None, None, 'garbage_class', 'no_vendor', 'dangling',
             'class_is_dir', 'no_group_link', 'garbage_numa')

device = strategies.fixed_dictionaries({
    'bus': strategies.integers(1, 4),
    'function': strategies.integers(0, 3),
    'port': strategies.integers(1, 3),
    'class_code': strategies.sampled_from(CLASSES),
    'group': strategies.one_of(strategies.none(), strategies.integers(0, 3)),
    'driver': strategies.sampled_from(DRIVERS),
    'breakage': strategies.sampled_from(BREAKAGES),
})
hosts = strategies.lists(device, min_size=1, max_size=10,
                         unique_by=lambda d: (d['bus'], d['function']))


def write_host(root, devices):
    """Write ``devices``; return address -> (class, group) as written."""
    tree = sysfs_tree.Tree(root)
    tree.numa_node(0, '0-3')
    truth = {}
    for spec in devices:
        address = '0000:%02x:00.%d' % (spec['bus'], spec['function'])
        parents = ['pci0000:00', '0000:00:%02x.0' % spec['port']]
        tree.add(address, parents, class_code=spec['class_code'],
                 driver=spec['driver'], group=spec['group'])
        truth[address] = (spec['class_code'], spec['group'])
        _break(tree.device_dir(address, parents), spec['breakage'])
    return truth


def _break(path, breakage):
    if breakage == 'garbage_class':
        _write(os.path.join(path, 'class'), 'VGA\n')
    elif breakage == 'no_vendor':
        os.remove(os.path.join(path, 'vendor'))
    elif breakage == 'dangling':
        shutil.rmtree(path)
    elif breakage == 'class_is_dir':
        os.remove(os.path.join(path, 'class'))
        os.mkdir(os.path.join(path, 'class'))
    elif breakage == 'no_group_link':
        if os.path.lexists(os.path.join(path, 'iommu_group')):
            os.remove(os.path.join(path, 'iommu_group'))
    elif breakage == 'garbage_numa':
        _write(os.path.join(path, 'numa_node'), '-7\n')


def _write(path, text):
    with open(path, 'w') as stream:
        stream.write(text)


def _is_bridge(class_code):
    return class_code[2:6] in model.BRIDGE_CLASS_PREFIXES


class RandomTreeTest(base.BaseTestCase):

    @hypothesis.settings(max_examples=50, deadline=None)
    @hypothesis.given(hosts)
    def test_never_isolated_beside_another_endpoint(self, devices):
        with tempfile.TemporaryDirectory() as root:
            truth = write_host(root, devices)
            inventory = sysfs.read_inventory(root, hostname='h')
        for gpu in inventory.gpus:
            self.assertIn(gpu.isolation, tags.ISOLATION_VERDICTS)
            if gpu.isolation != tags.ISOLATED:
                continue
            group = truth[gpu.address][1]
            self.assertIsNotNone(group)
            slot = gpu.address.rsplit('.', 1)[0]
            for address, (class_code, member_group) in truth.items():
                if member_group != group or address.startswith(slot):
                    continue
                self.assertTrue(_is_bridge(class_code),
                                '%s isolated beside endpoint %s'
                                % (gpu.address, address))

    @hypothesis.settings(max_examples=30, deadline=None)
    @hypothesis.given(hosts)
    def test_every_inventory_round_trips(self, devices):
        with tempfile.TemporaryDirectory() as root:
            write_host(root, devices)
            inventory = sysfs.read_inventory(root, hostname='h')
        self.assertEqual(
            inventory, model.HostInventory.from_json(inventory.to_json()))
