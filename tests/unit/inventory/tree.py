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
"""A small sysfs writer for the reader's edge cases.

The named machines come from :mod:`gpu_passthrough_filter.testing`; this
writer exists for what those do not do on purpose: one file at a time,
written as the kernel writes it (``0x``-prefixed ids with a newline,
relative symlinks), so that a test can then break exactly one thing.
"""

import os

#: ``resource`` of a function with one 16 MiB and one 32 GiB BAR.
RESOURCE = '\n'.join(
    ['0x00000000f0000000 0x00000000f0ffffff 0x0000000000040200',
     '0x0000000000000000 0x0000000000000000 0x0000000000000000',
     '0x0000038000000000 0x00000387ffffffff 0x000000000014220c']
    + ['0x0000000000000000 0x0000000000000000 0x0000000000000000'] * 10
) + '\n'


class Tree:
    """Writes a sysfs tree under ``root``.

    :param root: the directory that will hold ``sys/``.
    """

    def __init__(self, root):
        self.root = root
        self.sys = os.path.join(root, 'sys')
        os.makedirs(os.path.join(self.sys, 'bus', 'pci', 'devices'),
                    exist_ok=True)

    def device_dir(self, address, parents):
        return os.path.join(self.sys, 'devices', *parents, address)

    def add(self, address, parents, class_code='0x030000', vendor='0x10de',
            device='0x2330', driver=None, group=None, numa_node='-1',
            local_cpulist='0-3', **extra):
        """Write one function; ``parents`` starts with ``pciDDDD:BB``.

        :param extra: more files, name -> content (``None`` skips one of
            the defaults).
        """
        path = self.device_dir(address, parents)
        os.makedirs(path, exist_ok=True)
        files = {'vendor': vendor, 'device': device, 'class': class_code,
                 'subsystem_vendor': vendor, 'subsystem_device': '0x0000',
                 'numa_node': numa_node, 'local_cpulist': local_cpulist,
                 'resource': RESOURCE, 'current_link_speed': '16.0 GT/s PCIe',
                 'current_link_width': '16', 'max_link_speed':
                 '16.0 GT/s PCIe', 'max_link_width': '16',
                 'reset_method': 'flr bus'}
        files.update(extra)
        for name, content in files.items():
            if content is not None:
                with open(os.path.join(path, name), 'w') as stream:
                    stream.write(content if content.endswith('\n')
                                 else content + '\n')
        self._link(os.path.join(self.sys, 'bus', 'pci', 'devices', address),
                   path)
        if driver is not None:
            drivers = os.path.join(self.sys, 'bus', 'pci', 'drivers', driver)
            os.makedirs(drivers, exist_ok=True)
            self._link(os.path.join(path, 'driver'), drivers)
        if group is not None:
            self.join_group(address, parents, group)
        return path

    def join_group(self, address, parents, group):
        group_dir = os.path.join(self.sys, 'kernel', 'iommu_groups',
                                 str(group))
        os.makedirs(os.path.join(group_dir, 'devices'), exist_ok=True)
        path = self.device_dir(address, parents)
        self._link(os.path.join(path, 'iommu_group'), group_dir)
        self._link(os.path.join(group_dir, 'devices', address), path)

    def numa_node(self, node, cpulist, mem_kb=1048576):
        path = os.path.join(self.sys, 'devices', 'system', 'node',
                            'node%d' % node)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, 'cpulist'), 'w') as stream:
            stream.write(cpulist + '\n')
        with open(os.path.join(path, 'meminfo'), 'w') as stream:
            stream.write('Node %d MemTotal:       %d kB\n' % (node, mem_kb))

    @staticmethod
    def _link(link, target):
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.relpath(target, os.path.dirname(link)), link)


def two_root_ports(root, first, second):
    """Two devices, each behind its own root port (IOMMU groups 7 and 9).

    Written with :mod:`~gpu_passthrough_filter.testing.fake_sysfs`.

    :param first: the fake_sysfs device (list) of group 7.
    :param second: the one of group 9.
    :returns: a :class:`~gpu_passthrough_filter.testing.fake_sysfs.
        FakeSysfs` on the written tree.
    """
    from gpu_passthrough_filter.testing import fake_sysfs
    fake_sysfs.write(fake_sysfs.Host(
        numa_nodes=[fake_sysfs.NumaNode(0, '0-3')],
        root_complexes=[fake_sysfs.RootComplex('0000:00', children=[
            fake_sysfs.RootPort('0000:00:01.0', iommu_group=7,
                                children=[first]),
            fake_sysfs.RootPort('0000:00:02.0', iommu_group=9,
                                children=[second])])]), root)
    return fake_sysfs.FakeSysfs(root)
