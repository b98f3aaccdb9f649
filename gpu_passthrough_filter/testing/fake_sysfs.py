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
"""Fake sysfs trees written exactly as the Linux kernel lays them out.

No GPU exists on a CI machine or a devstack VM, so tests and devstack's
fake-GPU mode describe a host declaratively and this module writes the
files and *relative* symlinks a real ``/sys`` would have (checked against
the captured tree in ``tests/data/sysfs`` by the unit tests)::

    host = Host(
        numa_nodes=[NumaNode(0, '0-15'), NumaNode(1, '16-31')],
        root_complexes=[RootComplex('0000:00', numa_node=0, children=[
            root_port('0000:00:01.0', [
                switch('0000:01:00.0', {
                    '0000:02:00.0': [gpu('0000:03:00.0', H100)],
                    '0000:02:01.0': [gpu('0000:04:00.0', H100)],
                }),
            ]),
        ])])
    sysfs_root = write(host, '/tmp/tree')   # holds sys/

What is written, per PCI function (``sys/devices/pciDDDD:BB/.../ADDR``):
``vendor``, ``device``, ``subsystem_vendor``, ``subsystem_device``,
``class``, ``numa_node``, ``local_cpulist``, ``local_cpus``, link speed and
width files, ``resource``, ``reset_method``, ``enable``, ``driver_override``
and the ``driver``, ``subsystem`` and ``iommu_group`` links; and
``sys/bus/pci/devices/ADDR``, ``sys/bus/pci/drivers/NAME/ADDR``,
``sys/kernel/iommu_groups/N/devices/ADDR``,
``sys/devices/system/node/nodeN/{cpulist,meminfo,distance}``.

Functions without an explicit ``iommu_group`` get a group of their own
(as with ACS everywhere); ``Host(iommu=False)`` writes no group at all (IOMMU
off). Run ``python -m gpu_passthrough_filter.testing.fake_sysfs --topology
NAME --output DIR`` to write one of :data:`TOPOLOGIES`.
"""

import argparse
import dataclasses
import os
import sys
import typing

#: Kernel formats of the link speed files, by PCIe generation.
LINK_SPEEDS = {3: '8.0 GT/s PCIe', 4: '16.0 GT/s PCIe', 5: '32.0 GT/s PCIe'}

_EMPTY_BAR = (0, 0, 0)
_BAR_FLAGS_MEM64_PREFETCH = 0x14220c
_BAR_FLAGS_MEM32 = 0x40200


@dataclasses.dataclass(frozen=True)
class Model:
    """A PCI device model: ids, class and the BAR sizes it exposes."""
    vendor: str
    device: str
    class_code: str
    bar_sizes: typing.Tuple[int, ...] = ()


H100 = Model('0x10de', '0x2330', '0x030200', (16 << 20, 128 << 30, 32 << 20))
A100 = Model('0x10de', '0x20b2', '0x030200', (16 << 20, 64 << 30, 32 << 20))
L40S = Model('0x10de', '0x26b9', '0x030200', (16 << 20, 64 << 30, 32 << 20))
HDMI_AUDIO = Model('0x10de', '0x22ba', '0x040300', (16 << 10,))
CX7_NIC = Model('0x15b3', '0x1021', '0x020000', (32 << 20,))
VIRTIO_NET = Model('0x1af4', '0x1041', '0x020000', (4 << 10,))
VIRTIO_BLK = Model('0x1af4', '0x1042', '0x010000', (4 << 10,))
HOST_BRIDGE = Model('0x8086', '0x09a2', '0x060000')
ROOT_PORT = Model('0x8086', '0x347a', '0x060400')
PLX_SWITCH = Model('0x10b5', '0x9797', '0x060400')


@dataclasses.dataclass
class Function:
    """One PCI function, and the functions below it when it is a bridge.

    :param address: ``DDDD:BB:SS.F``, lower-case hex.
    :param model: ids, class and BARs.
    :param driver: bound driver name, or None for an unbound function.
    :param iommu_group: group number; None: a group of its own.
    :param children: functions on the bridge's secondary bus.
    :param link_gen: PCIe generation of the link (speed file contents).
    :param link_width: lanes of the link.
    :param reset_method: contents of ``reset_method``; None: no file.
    :param sriov_totalvfs: written as ``sriov_totalvfs`` when set.
    """
    address: str
    model: Model
    driver: typing.Optional[str] = None
    iommu_group: typing.Optional[int] = None
    children: typing.List['Function'] = dataclasses.field(
        default_factory=list)
    link_gen: int = 4
    link_width: int = 16
    reset_method: typing.Optional[str] = 'flr bus'
    sriov_totalvfs: typing.Optional[int] = None


@dataclasses.dataclass
class NumaNode:
    """A host NUMA node: id, CPU list (kernel format) and memory in kB."""
    node_id: int
    cpulist: str
    mem_kb: int = 263902912


@dataclasses.dataclass
class RootComplex:
    """A PCI host bridge ``pciDDDD:BB`` and the functions on its bus."""
    domain_bus: str
    numa_node: int = 0
    children: typing.List[Function] = dataclasses.field(
        default_factory=list)


@dataclasses.dataclass
class Host:
    """A whole machine; ``iommu=False`` writes no IOMMU groups."""
    numa_nodes: typing.List[NumaNode]
    root_complexes: typing.List[RootComplex]
    iommu: bool = True


def gpu(address, model=H100, driver='vfio-pci', iommu_group=None,
        audio=False):
    """A GPU function, with its HDMI audio function when ``audio``.

    Returns a list (one or two functions) to splice into ``children``.
    """
    functions = [Function(address, model, driver, iommu_group)]
    if audio:
        functions.append(Function(address[:-1] + '1', HDMI_AUDIO, driver,
                                  iommu_group, reset_method=None))
    return functions


def root_port(address, children, iommu_group=None):
    """A PCIe root port with ``children`` (lists are flattened)."""
    return Function(address, ROOT_PORT, 'pcieport', iommu_group,
                    children=_flatten(children))


def switch(upstream, downstream, model=PLX_SWITCH):
    """A PCIe switch: upstream port, downstream ports, what is below.

    :param downstream: ``{port address: [functions below that port]}``.
    """
    ports = [Function(address, model, 'pcieport',
                      children=_flatten(below))
             for address, below in sorted(downstream.items())]
    return Function(upstream, model, 'pcieport', children=ports)


def _flatten(items):
    flat = []
    for item in items:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


def write(host, root_dir):
    """Write ``host`` under ``root_dir``; return it (the sysfs root)."""
    writer = _Writer(root_dir, host)
    for node in host.numa_nodes:
        writer.numa_node(node, len(host.numa_nodes))
    writer.node_lists(host.numa_nodes)
    for complex_ in host.root_complexes:
        writer.root_complex(complex_)
    return root_dir


class _Writer(object):

    def __init__(self, root_dir, host):
        self.sys = os.path.join(root_dir, 'sys')
        self.host = host
        self.cpulists = {n.node_id: n.cpulist for n in host.numa_nodes}
        self.next_group = 1 + max(
            [f.iommu_group for f in _all_functions(host)
             if f.iommu_group is not None] or [0])
        os.makedirs(os.path.join(self.sys, 'bus', 'pci', 'devices'),
                    exist_ok=True)

    def numa_node(self, node, count):
        path = os.path.join(self.sys, 'devices', 'system', 'node',
                            'node%d' % node.node_id)
        os.makedirs(path, exist_ok=True)
        distances = ' '.join('10' if other == node.node_id else '21'
                             for other in range(count))
        _put(path, 'cpulist', node.cpulist)
        _put(path, 'distance', distances)
        _put(path, 'meminfo',
             'Node %d MemTotal:       %d kB\n'
             'Node %d MemFree:        %d kB\n'
             % (node.node_id, node.mem_kb, node.node_id, node.mem_kb // 2))

    def node_lists(self, nodes):
        path = os.path.join(self.sys, 'devices', 'system', 'node')
        os.makedirs(path, exist_ok=True)
        ids = sorted(n.node_id for n in nodes)
        listing = ('%d-%d' % (ids[0], ids[-1]) if len(ids) > 1
                   else str(ids[0]))
        for name in ('online', 'possible', 'has_cpu', 'has_memory'):
            _put(path, name, listing)

    def root_complex(self, complex_):
        path = os.path.join(self.sys, 'devices', 'pci' + complex_.domain_bus)
        os.makedirs(path, exist_ok=True)
        for function in complex_.children:
            self.function(function, path, complex_.numa_node)

    def function(self, function, parent_dir, numa_node):
        path = os.path.join(parent_dir, function.address)
        os.makedirs(path, exist_ok=True)
        self.attributes(function, path, numa_node)
        self.links(function, path)
        for child in function.children:
            self.function(child, path, numa_node)

    def attributes(self, function, path, numa_node):
        model = function.model
        cpulist = self.cpulists.get(numa_node, '')
        speed = LINK_SPEEDS.get(function.link_gen, LINK_SPEEDS[4])
        files = {
            'vendor': model.vendor, 'device': model.device,
            'subsystem_vendor': model.vendor, 'subsystem_device': '0x0000',
            'class': model.class_code, 'numa_node': str(numa_node),
            'local_cpulist': cpulist, 'local_cpus': _cpumask(cpulist),
            'current_link_speed': speed, 'max_link_speed': speed,
            'current_link_width': str(function.link_width),
            'max_link_width': str(function.link_width),
            'resource': _resource(model.bar_sizes), 'enable': '1',
            'driver_override': '(null)',
        }
        if function.reset_method is not None:
            files['reset_method'] = function.reset_method
        if function.sriov_totalvfs is not None:
            files['sriov_totalvfs'] = str(function.sriov_totalvfs)
            files['sriov_numvfs'] = '0'
        for name, content in files.items():
            _put(path, name, content)

    def links(self, function, path):
        _link(os.path.join(self.sys, 'bus', 'pci', 'devices',
                           function.address), path)
        _link(os.path.join(path, 'subsystem'),
              os.path.join(self.sys, 'bus', 'pci'))
        if function.driver:
            drivers = os.path.join(self.sys, 'bus', 'pci', 'drivers',
                                   function.driver)
            os.makedirs(drivers, exist_ok=True)
            _link(os.path.join(path, 'driver'), drivers)
            _link(os.path.join(drivers, function.address), path)
        if self.host.iommu:
            self.join_group(function, path)

    def join_group(self, function, path):
        group = function.iommu_group
        if group is None:
            group, self.next_group = self.next_group, self.next_group + 1
        group_dir = os.path.join(self.sys, 'kernel', 'iommu_groups',
                                 str(group))
        os.makedirs(os.path.join(group_dir, 'devices'), exist_ok=True)
        _link(os.path.join(path, 'iommu_group'), group_dir)
        _link(os.path.join(group_dir, 'devices', function.address), path)


def _all_functions(host):
    pending = [f for c in host.root_complexes for f in c.children]
    while pending:
        function = pending.pop()
        pending.extend(function.children)
        yield function


def _put(directory, name, content):
    with open(os.path.join(directory, name), 'w') as stream:
        stream.write(content + ('' if content.endswith('\n') else '\n'))


def _link(link, target):
    # NOTE: sysfs links are relative (``../../../devices/...``); tests and
    # the reader rely on that shape, so never write absolute targets.
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.relpath(target, os.path.dirname(link)), link)


def _resource(bar_sizes):
    # One line per resource (6 BARs, ROM, then bridge windows and IOV BARs:
    # 13 lines as on x86_64), ``start end flags`` in 0x%016x.
    lines, start = [], 0xf0000000
    for index in range(13):
        size = bar_sizes[index] if index < len(bar_sizes) else 0
        if size:
            flags = (_BAR_FLAGS_MEM64_PREFETCH if size > (64 << 20)
                     else _BAR_FLAGS_MEM32)
            lines.append('0x%016x 0x%016x 0x%016x'
                         % (start, start + size - 1, flags))
            start += size
        else:
            lines.append('0x%016x 0x%016x 0x%016x' % _EMPTY_BAR)
    return '\n'.join(lines)


def _cpumask(cpulist):
    mask = 0
    for part in filter(None, cpulist.split(',')):
        low, _, high = part.partition('-')
        for cpu in range(int(low), int(high or low) + 1):
            mask |= 1 << cpu
    text = '%x' % mask
    text = text.rjust(8 * ((len(text) + 7) // 8), '0')
    return ','.join(text[i:i + 8] for i in range(0, len(text), 8))


def _two_sockets(cores_per_socket=32):
    return [NumaNode(0, '0-%d' % (cores_per_socket - 1)),
            NumaNode(1, '%d-%d' % (cores_per_socket,
                                   2 * cores_per_socket - 1))]


def h100_8gpu_2numa_4switch():
    """8x H100 (10de:2330): 2 NUMA nodes x 2 PCIe switches x 2 GPUs.

    Expected: every GPU isolated and vfio-ready; switch pairs (03,04),
    (07,08) on node 0 and (83,84), (87,88) on node 1.
    """
    complexes = []
    for node, bus in ((0, 0x00), (1, 0x80)):
        ports = []
        for index in range(2):
            base = bus + 4 * index
            ports.append(root_port('0000:%02x:%02x.0' % (bus, index + 1), [
                switch('0000:%02x:00.0' % (base + 1), {
                    '0000:%02x:00.0' % (base + 2): gpu(
                        '0000:%02x:00.0' % (base + 3)),
                    '0000:%02x:01.0' % (base + 2): gpu(
                        '0000:%02x:00.0' % (base + 4)),
                })]))
        complexes.append(RootComplex('0000:%02x' % bus, node, ports))
    return Host(_two_sockets(), complexes)


def pcie_4gpu_dual_socket_l40s():
    """4x L40S, two per socket, each under its own root port.

    Source: ``nvidia-smi topo -m`` in warpem/miss-alignment#106 (GPU0-1
    NODE, GPU2-3 NODE, cross pairs SYS). Expected: all isolated, no shared
    switch, GPUs 0-1 on node 0 and 2-3 on node 1.
    """
    complexes = []
    for node, bus in ((0, 0x00), (1, 0x80)):
        ports = [root_port('0000:%02x:%02x.0' % (bus, slot),
                           gpu('0000:%02x:00.0' % (bus + slot), L40S))
                 for slot in (1, 3)]
        complexes.append(RootComplex('0000:%02x' % bus, node, ports))
    return Host(_two_sockets(48), complexes)


def two_gpus_one_group():
    """Two H100 behind a switch without ACS: one IOMMU group for both.

    Expected: both GPUs ``shared`` (each other's group mate).
    """
    downstream = {
        '0000:02:00.0': gpu('0000:03:00.0', iommu_group=30),
        '0000:02:01.0': gpu('0000:04:00.0', iommu_group=30),
    }
    sw = switch('0000:01:00.0', downstream)
    return Host([NumaNode(0, '0-31')], [RootComplex('0000:00', 0, [
        root_port('0000:00:01.0', [sw])])])


def no_gpu_virtio_vm():
    """A cloud VM: virtio devices only. Expected: no GPU found."""
    return Host([NumaNode(0, '0-1')], [RootComplex('0000:00', 0, [
        Function('0000:00:00.0', HOST_BRIDGE),
        Function('0000:00:03.0', VIRTIO_NET, 'virtio-pci'),
        Function('0000:00:04.0', VIRTIO_BLK, 'virtio-pci')])],
        iommu=False)


def sixteen_gpu_host():
    """16x H100: 2 NUMA nodes x 4 switches x 2 GPUs (a benchmark host)."""
    complexes = []
    for node, bus in ((0, 0x00), (1, 0x80)):
        ports = []
        for index in range(4):
            base = bus + 8 * index
            ports.append(root_port('0000:%02x:%02x.0' % (bus, index + 1), [
                switch('0000:%02x:00.0' % (base + 1), {
                    '0000:%02x:00.0' % (base + 2): gpu(
                        '0000:%02x:00.0' % (base + 3), audio=True),
                    '0000:%02x:01.0' % (base + 2): gpu(
                        '0000:%02x:00.0' % (base + 4), audio=True),
                })]))
        complexes.append(RootComplex('0000:%02x' % bus, node, ports))
    return Host(_two_sockets(), complexes)


#: Named machines, by the name devstack's fake-GPU mode and tests use.
TOPOLOGIES = {
    'h100_8gpu_2numa_4switch': h100_8gpu_2numa_4switch,
    'pcie_4gpu_dual_socket_l40s': pcie_4gpu_dual_socket_l40s,
    'two_gpus_one_group': two_gpus_one_group,
    'no_gpu_virtio_vm': no_gpu_virtio_vm,
    'sixteen_gpu_host': sixteen_gpu_host,
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the fake sysfs tree of a named machine.')
    parser.add_argument('--topology', required=True,
                        choices=sorted(TOPOLOGIES))
    parser.add_argument('--output', required=True,
                        help='directory that will hold sys/')
    args = parser.parse_args(argv)
    write(TOPOLOGIES[args.topology](), args.output)
    print(args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
