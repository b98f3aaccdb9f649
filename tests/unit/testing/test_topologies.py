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
"""The named machines' expectations hold on the trees they write.

Each expectation (verdict, switch, NUMA node per GPU) is recomputed here
from the written files with the rules stated in
:mod:`gpu_passthrough_filter.testing.topologies`, independently of the
agent's reader; then the reader is checked against the same data.
"""

import atexit
import os
import shutil
import tempfile

from oslotest import base

from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter import tags
from gpu_passthrough_filter.testing import topologies

#: Taken at import: oslotest points TMPDIR at a per-test directory.
_PROCESS_TMP = tempfile.gettempdir()
_TREES = {}

GPU_CLASS_PREFIXES = ('0x0300', '0x0302')
BRIDGE_CLASS_PREFIXES = ('0x0604', '0x0600')


def _read(path):
    with open(path) as stream:
        return stream.read().strip()


def _cpus(cpulist):
    cpus = set()
    for part in cpulist.split(','):
        low, _dash, high = part.partition('-')
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


class TreeFacts(object):
    """What a sysfs tree says, read with the plainest code possible."""

    def __init__(self, root):
        self.sys = os.path.join(root, 'sys')
        devices = os.path.join(self.sys, 'bus', 'pci', 'devices')
        self.dirs = {name: os.path.realpath(os.path.join(devices, name))
                     for name in os.listdir(devices)}

    def attribute(self, address, name):
        return _read(os.path.join(self.dirs[address], name))

    def gpus(self):
        return sorted(a for a in self.dirs if self.attribute(
            a, 'class').startswith(GPU_CLASS_PREFIXES))

    def verdict(self, gpu):
        groups = os.path.join(self.sys, 'kernel', 'iommu_groups')
        if not os.path.isdir(groups):
            return tags.UNKNOWN
        group = os.path.realpath(os.path.join(self.dirs[gpu], 'iommu_group'))
        slot = gpu.rsplit('.', 1)[0]
        for member in os.listdir(os.path.join(group, 'devices')):
            own = member.rsplit('.', 1)[0] == slot
            bridge = self.attribute(member, 'class').startswith(
                BRIDGE_CLASS_PREFIXES)
            if not own and not bridge:
                return tags.SHARED
        return tags.ISOLATED

    def switch(self, gpu):
        """The upstream port: the second bridge below the host bridge."""
        chain = os.path.relpath(self.dirs[gpu], os.path.join(
            os.path.realpath(self.sys), 'devices')).split('/')[1:-1]
        return chain[1] if len(chain) >= 3 else None

    def numa_node(self, gpu):
        node = int(self.attribute(gpu, 'numa_node'))
        if node >= 0:
            return node
        local = _cpus(self.attribute(gpu, 'local_cpulist'))
        nodes = os.path.join(self.sys, 'devices', 'system', 'node')
        matches = [int(name[4:]) for name in os.listdir(nodes)
                   if name.startswith('node') and _cpus(_read(
                       os.path.join(nodes, name, 'cpulist'))) == local]
        return matches[0] if len(matches) == 1 else -1


class NamedMachinesTest(base.BaseTestCase):

    def write(self, name):
        """The machine's tree, written once per process (tests only read)."""
        if name not in _TREES:
            root = tempfile.mkdtemp(prefix='topology-', dir=_PROCESS_TMP)
            atexit.register(shutil.rmtree, root, True)
            _TREES[name] = topologies.NAMED[name]().write(root)
        return _TREES[name]

    def test_every_machine_has_expectations_and_a_cited_docstring(self):
        self.assertEqual(set(topologies.NAMED), set(topologies.EXPECTED))
        self.assertEqual(set(topologies.NAMED), set(topologies.SWITCHES))
        self.assertEqual(set(topologies.NAMED), set(topologies.NUMA))
        for name, machine in topologies.NAMED.items():
            self.assertIn('Expected', machine.__doc__, name)
            self.assertRegex(machine.__doc__, r'Source|Made up|made up|:func:',
                             name)

    def test_the_tree_proves_every_expectation(self):
        for name in sorted(topologies.NAMED):
            facts = TreeFacts(self.write(name))
            gpus = facts.gpus()
            self.assertEqual(sorted(topologies.EXPECTED[name]), gpus, name)
            self.assertEqual(
                topologies.EXPECTED[name],
                {gpu: facts.verdict(gpu) for gpu in gpus}, name)
            self.assertEqual(
                topologies.SWITCHES[name],
                {gpu: facts.switch(gpu) for gpu in gpus}, name)
            self.assertEqual(
                topologies.NUMA[name],
                {gpu: facts.numa_node(gpu) for gpu in gpus}, name)

    def test_the_agents_reader_agrees(self):
        for name in sorted(topologies.NAMED):
            inventory = sysfs.read_inventory(self.write(name))
            self.assertEqual([], inventory.errors, name)
            self.assertEqual(
                topologies.EXPECTED[name],
                {gpu.address: gpu.isolation for gpu in inventory.gpus}, name)
            self.assertEqual(
                topologies.SWITCHES[name],
                {gpu.address: gpu.switch for gpu in inventory.gpus}, name)
            self.assertEqual(
                topologies.NUMA[name],
                {gpu.address: gpu.numa_node for gpu in inventory.gpus}, name)

    def test_shapes_stated_in_the_docstrings(self):
        cases = {
            # name: (GPUs, functions per GPU slot, distinct switches)
            'consumer_intel_turing': (1, 4, 0),
            'plx_8x_rtx2080ti': (8, 4, 2),
            'pcie_8gpu_rtx4090': (8, 2, 0),
            'dgx_a100_like': (8, 1, 4),
            'h100_8gpu_2numa_4switch': (8, 1, 4),
            'sixteen_gpu_host': (16, 1, 4),
        }
        for name, (count, functions, switches) in cases.items():
            host = topologies.NAMED[name]()
            addresses = [f.address for f, _p, _r in host.functions()]
            gpus = topologies.EXPECTED[name]
            self.assertEqual(count, len(gpus), name)
            for gpu in gpus:
                slot = gpu.rsplit('.', 1)[0]
                self.assertEqual(functions, sum(
                    1 for a in addresses if a.startswith(slot + '.')), name)
            self.assertEqual(switches, len(
                set(topologies.SWITCHES[name].values()) - {None}), name)

    def test_plx_groups_are_the_sources(self):
        # kata-containers#6779: downstream ports and GPUs' group numbers.
        groups = topologies.plx_8x_rtx2080ti().iommu_groups()
        for address, group in (('0000:19:0c.0', 27), ('0000:19:10.0', 28),
                               ('0000:19:14.0', 29), ('0000:3c:10.0', 46),
                               ('0000:3c:14.0', 47), ('0000:1b:00.3', 30),
                               ('0000:1c:00.0', 31), ('0000:3d:00.0', 48),
                               ('0000:3f:00.0', 49), ('0000:40:00.2', 50)):
            self.assertEqual(group, groups[address], address)
