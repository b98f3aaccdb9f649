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
"""Write fake Linux sysfs trees from a short description of a host.

No GPU exists on a CI machine, so the agent's reader is tested on trees
written here: real files and *relative* symlinks, laid out and formatted
as the Linux kernel lays them out (checked against the real captured tree
in ``tests/data/sysfs`` by ``tests/unit/testing``).

Describe a host, then write it::

    host = Host(
        numa_nodes=[NumaNode(0, cpus='0-7'), NumaNode(1, cpus='8-15')],
        root_complexes=[
            RootComplex('0000:17', numa_node=0, children=[
                RootPort('0000:17:00.0', children=[
                    Switch('0000:18:00.0', downstream=[
                        DownstreamPort('0000:19:04.0', children=[
                            nvidia_gpu('0000:1a:00.0', model='h100',
                                       iommu_group=30)]),
                    ]),
                ]),
            ]),
        ])
    root = host.write(tmpdir)          # the directory that holds sys/
    tree = FakeSysfs(root)             # then break what a test needs
    tree.corrupt('0000:1a:00.0', 'numa_node', b'garbage\\n')

The description
---------------
:class:`Host` ``(numa_nodes, root_complexes, iommu=True,
kernel='new')``
    ``iommu=False`` writes no ``iommu_group`` link and no
    ``sys/kernel/iommu_groups`` (IOMMU off or not exposed).
    ``kernel='old'`` writes link speeds as kernels before 5.x did
    (``8 GT/s``) instead of ``8.0 GT/s PCIe``.
:class:`NumaNode` ``(id, cpus, mem_kb=..., distances=None)``
    ``sys/devices/system/node/nodeN/{cpulist,cpumap,meminfo,distance}``
    plus ``online``, ``possible``, ``has_cpu``, ``has_memory``.
:class:`RootComplex` ``(domain_bus, numa_node=-1, children=(),
local_cpulist=None)``
    A host bridge ``sys/devices/pciDDDD:BB``. Every function below it
    reports its ``numa_node`` (``-1``: none) and a ``local_cpulist`` of
    that node's CPUs (of every CPU for ``-1``, as the kernel does), unless
    the function or ``local_cpulist`` here says otherwise.
:class:`Function` ``(address, vendor, device, cls, driver=None,
iommu_group=None, ...)``
    One PCI function (endpoint or bridge); all fields are documented on
    the class. ``children`` hang below a bridge; ``vfs`` are SR-IOV
    virtual functions written beside their parent with ``physfn`` and
    ``virtfnN`` links. In any ``children`` list a nested list is
    flattened, so helpers may return several functions.
:class:`RootPort`, :class:`DownstreamPort` (bridges with ``children``)
and :class:`Switch` ``(upstream, downstream=[DownstreamPort...])``
    PCIe bridges: class ``0x060400``, driver ``pcieport``.

IOMMU groups are given per function (``iommu_group=N``), so a test can
put several endpoints in one group. A function left at ``None`` gets a
number after every explicit one, in tree order: one group per bridge, one
per endpoint slot (all functions of one ``bus:device`` share it, as a GPU
and its HDMI audio do).

Helpers for common devices: :func:`nvidia_gpu` (models in
:data:`NVIDIA_MODELS`), :func:`nic`, :func:`virtio`, :func:`endpoint`.

Writing and breaking
--------------------
``Host.write(root) -> root`` (or ``write(host, root)``): writes
``root/sys/...``, returns ``root`` (the directory to give the reader as
its sysfs root).

:class:`FakeSysfs` ``(root)`` edits a written (or captured) tree, for
the reader's bad-input tests: ``corrupt(address, name, content)``,
``remove(address, name)``, ``dangle(address, name)``,
``unreadable(address, name)``, ``vanish(address)`` (the device goes away
mid-scan) and ``device_dir(address)``.

The named machines of :mod:`.topologies` are written from the command
line by ``python -m gpu_passthrough_filter.testing.topologies``.
"""

import dataclasses
import os
import shutil
import stat
import typing

#: Class codes (``class`` file, 24 bits: base, sub-class, prog-if).
CLASS_VGA = 0x030000
CLASS_3D = 0x030200
CLASS_AUDIO = 0x040300
CLASS_USB_XHCI = 0x0c0330
CLASS_SERIAL_BUS_OTHER = 0x0c8000
CLASS_ETHERNET = 0x020000
CLASS_INFINIBAND = 0x020700
CLASS_HOST_BRIDGE = 0x060000
CLASS_ISA_BRIDGE = 0x060100
CLASS_PCI_BRIDGE = 0x060400

#: BAR flags as the kernel prints them in ``resource``.
_BAR_MEM32 = 0x40200
_BAR_MEM64_PREFETCH = 0x14220c

#: Lines in ``resource``: 6 BARs, ROM, 6 SR-IOV BARs (endpoints); bridges
#: add their 4 windows.
_ENDPOINT_RESOURCES = 13
_BRIDGE_RESOURCES = 17

#: PCIe generation -> link speed as printed by new and old kernels.
_LINK_SPEEDS = {
    1: ('2.5 GT/s PCIe', '2.5 GT/s'),
    2: ('5.0 GT/s PCIe', '5 GT/s'),
    3: ('8.0 GT/s PCIe', '8 GT/s'),
    4: ('16.0 GT/s PCIe', '16 GT/s'),
    5: ('32.0 GT/s PCIe', '32 GT/s'),
}

GiB = 1 << 30
MiB = 1 << 20


@dataclasses.dataclass
class NumaNode:
    """One NUMA node.

    :param id: node number (``nodeN``).
    :param cpus: its CPUs as a kernel cpulist, e.g. ``'0-7,16-23'``.
    :param mem_kb: ``MemTotal`` in ``meminfo``, in KiB.
    :param distances: the ``distance`` row; ``None`` gives 10 to itself
        and 21 to every other node.
    """

    id: int
    cpus: str
    mem_kb: int = 64 * 1024 * 1024
    distances: typing.Optional[typing.Sequence[int]] = None


@dataclasses.dataclass
class Function:
    """One PCI function: a directory under ``sys/devices/pci*``.

    :param address: ``DDDD:BB:SS.F``, lower case.
    :param vendor: vendor id (``0x10de``).
    :param device: device id.
    :param cls: 24-bit class code (``0x030000``).
    :param driver: bound driver name, or ``None`` for none.
    :param iommu_group: group number; ``None``: numbered automatically.
    :param numa_node: ``None`` inherits the root complex's; ``-1``: none.
    :param local_cpulist: ``None`` derives it from the NUMA node.
    :param subsystem_vendor: ``None`` repeats ``vendor``.
    :param subsystem_device: subsystem device id.
    :param link_gen: PCIe generation (1-5) of ``current/max_link_speed``;
        ``None`` writes no link files (conventional PCI, integrated).
    :param link_width: ``current_link_width``.
    :param max_link_gen: ``None`` is ``link_gen``.
    :param max_link_width: ``None`` is ``link_width``.
    :param bars: BAR sizes in bytes, index = BAR number (``None`` or 0 for
        an unused BAR); 4 GiB or more is written as 64-bit prefetchable.
    :param reset_method: ``reset_method`` content; ``None``: no file
        (kernels before 5.15, or no reset method).
    :param sriov_totalvfs: writes ``sriov_*`` files when not ``None``.
    :param vfs: virtual functions, written beside this one.
    :param children: functions below this bridge.
    :param revision: ``revision`` file and config space byte.
    :param extra_files: more files, name -> ``str`` or ``bytes``.
    """

    address: str
    vendor: int = 0
    device: int = 0
    cls: int = 0
    driver: typing.Optional[str] = None
    iommu_group: typing.Optional[int] = None
    numa_node: typing.Optional[int] = None
    local_cpulist: typing.Optional[str] = None
    subsystem_vendor: typing.Optional[int] = None
    subsystem_device: int = 0
    link_gen: typing.Optional[int] = 3
    link_width: int = 16
    max_link_gen: typing.Optional[int] = None
    max_link_width: typing.Optional[int] = None
    bars: typing.Sequence[typing.Optional[int]] = ()
    reset_method: typing.Optional[str] = 'flr bus'
    sriov_totalvfs: typing.Optional[int] = None
    vfs: typing.Sequence['Function'] = ()
    children: typing.Sequence[typing.Any] = ()
    revision: int = 0xa1
    extra_files: typing.Dict[str, typing.Any] = dataclasses.field(
        default_factory=dict)

    @property
    def is_bridge(self):
        return self.cls >> 8 == CLASS_PCI_BRIDGE >> 8

    @property
    def slot(self):
        """``DDDD:BB:SS``: the functions of one device share it."""
        return self.address.rsplit('.', 1)[0]


@dataclasses.dataclass
class RootPort(Function):
    """A PCIe root port (Intel Skylake-SP 8086:2030 by default)."""

    vendor: int = 0x8086
    device: int = 0x2030
    cls: int = CLASS_PCI_BRIDGE
    driver: typing.Optional[str] = 'pcieport'
    reset_method: typing.Optional[str] = None
    revision: int = 0x04


@dataclasses.dataclass
class DownstreamPort(RootPort):
    """A PCIe switch downstream port (PLX PEX 9797 by default)."""

    vendor: int = 0x10b5
    device: int = 0x9797
    revision: int = 0xca


@dataclasses.dataclass
class Switch:
    """A PCIe switch: its upstream port and the downstream ports below.

    :param upstream: the upstream port's address.
    :param downstream: :class:`DownstreamPort` list.
    :param iommu_group: the upstream port's group (``None``: automatic).
    """

    upstream: str
    downstream: typing.Sequence[DownstreamPort] = ()
    vendor: int = 0x10b5
    device: int = 0x9797
    iommu_group: typing.Optional[int] = None
    numa_node: typing.Optional[int] = None
    link_gen: typing.Optional[int] = 3
    link_width: int = 16

    def as_bridge(self):
        return RootPort(self.upstream, vendor=self.vendor,
                        device=self.device, iommu_group=self.iommu_group,
                        numa_node=self.numa_node, link_gen=self.link_gen,
                        link_width=self.link_width, revision=0xca,
                        children=list(self.downstream))


@dataclasses.dataclass
class RootComplex:
    """A PCI host bridge, ``sys/devices/pciDDDD:BB``.

    :param domain_bus: ``DDDD:BB``.
    :param numa_node: NUMA node of everything below (``-1``: none).
    :param children: root ports and integrated endpoints.
    :param local_cpulist: ``None`` derives it from ``numa_node``.
    """

    domain_bus: str
    numa_node: int = -1
    children: typing.Sequence[typing.Any] = ()
    local_cpulist: typing.Optional[str] = None


@dataclasses.dataclass
class Host:
    """A whole machine.

    :param numa_nodes: :class:`NumaNode` list (may be empty: no NUMA dir).
    :param root_complexes: :class:`RootComplex` list.
    :param iommu: ``False``: no IOMMU groups at all.
    :param kernel: ``'new'`` (``16.0 GT/s PCIe``) or ``'old'``
        (``16 GT/s``) link speed format.
    """

    numa_nodes: typing.Sequence[NumaNode] = ()
    root_complexes: typing.Sequence[RootComplex] = ()
    iommu: bool = True
    kernel: str = 'new'

    def functions(self):
        """Every function, in tree order, as ``(function, parents, rc)``.

        ``parents`` are the directory names from ``pciDDDD:BB`` down to
        the function's parent; switches are expanded to their ports.
        """
        for complex_ in self.root_complexes:
            host_dir = 'pci' + complex_.domain_bus
            yield from _walk(complex_.children, [host_dir], complex_)

    def find(self, address):
        """The :class:`Function` at ``address`` (``KeyError`` if none)."""
        for function, _parents, _rc in self.functions():
            if function.address == address:
                return function
        raise KeyError(address)

    def iommu_groups(self):
        """``{address: group}`` with automatic numbers filled in."""
        return _number_groups(list(self.functions()))

    def write(self, root):
        """Write ``root/sys`` and return ``root``, the sysfs root.

        :param root: an existing directory (usually a temporary one).
        """
        _Writer(self, root).write()
        return root


def write(host, root):
    """Write ``host`` under ``root``; return ``root`` (the sysfs root).

    :param host: a :class:`Host`.
    :param root: an existing directory.
    """
    return host.write(root)


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        elif isinstance(item, Switch):
            yield item.as_bridge()
        else:
            yield item


def _walk(children, parents, complex_):
    for function in _flatten(children):
        yield function, parents, complex_
        for vf in function.vfs:
            yield vf, parents, complex_
        if function.children:
            yield from _walk(function.children,
                             parents + [function.address], complex_)


def _number_groups(entries):
    groups = {f.address: f.iommu_group for f, _p, _r in entries
              if f.iommu_group is not None}
    next_group = max(groups.values(), default=-1) + 1
    by_slot = {}
    for function, _parents, _rc in entries:
        if function.iommu_group is not None:
            continue
        key = function.address if function.is_bridge else function.slot
        if key not in by_slot:
            by_slot[key] = next_group
            next_group += 1
        groups[function.address] = by_slot[key]
    return groups


# Convenience constructors, after go-gpuallocator's AddMockA100().

#: model -> (device id, class, PCIe gen, BAR1 size, audio id, USB-C ids,
#: subsystem device).
NVIDIA_MODELS = {
    'h100': (0x2330, CLASS_3D, 5, 128 * GiB, None, None, 0x16c1),
    'a100': (0x20b0, CLASS_3D, 4, 64 * GiB, None, None, 0x134f),
    'v100': (0x1db8, CLASS_3D, 3, 32 * GiB, None, None, 0x131d),
    'l40s': (0x26b9, CLASS_3D, 4, 64 * GiB, None, None, 0x1851),
    'rtx4090': (0x2684, CLASS_VGA, 4, 256 * MiB, 0x22ba, None, 0x167c),
    'rtx3070ti': (0x2482, CLASS_VGA, 4, 256 * MiB, 0x228b, None, 0x1612),
    'rtx2080ti': (0x1e04, CLASS_VGA, 3, 256 * MiB, 0x10f7,
                  (0x1ad6, 0x1ad7), 0x12fa),
    'gtx1660': (0x2184, CLASS_VGA, 3, 256 * MiB, 0x1aeb, (0x1aec, 0x1aed),
                0x1271),
}


def nvidia_gpu(address, model='h100', numa_node=None, iommu_group=None,
               driver='vfio-pci', with_audio=None, with_usb_c=False,
               **fields):
    """An NVIDIA GPU and its companion functions, as a list.

    :param address: the GPU's address (function 0).
    :param model: a key of :data:`NVIDIA_MODELS`.
    :param numa_node: ``None`` inherits the root complex's.
    :param iommu_group: group of every function of the card.
    :param driver: bound driver of every function (``None``: unbound).
    :param with_audio: add the HDMI audio function ``.1``; ``None``: if
        the model has one.
    :param with_usb_c: add the USB xHCI ``.2`` and UCSI ``.3`` functions
        (Turing cards).
    :param fields: more :class:`Function` fields for the GPU function.
    """
    device, cls, gen, bar1, audio, usb_c, subsys = NVIDIA_MODELS[model]
    common = dict(vendor=0x10de, numa_node=numa_node,
                  iommu_group=iommu_group, driver=driver, link_gen=gen,
                  subsystem_device=subsys)
    gpu = Function(address, device=device, cls=cls,
                   bars=[16 * MiB, bar1, None, 32 * MiB],
                   **dict(common, **fields))
    slot = address.rsplit('.', 1)[0]
    functions = [gpu]
    if with_audio or (with_audio is None and audio is not None):
        functions.append(Function(slot + '.1', device=audio or 0x22ba,
                                  cls=CLASS_AUDIO, bars=[16 * 1024],
                                  **common))
    if with_usb_c:
        xhci, ucsi = usb_c or (0x1ad6, 0x1ad7)
        functions.append(Function(slot + '.2', device=xhci,
                                  cls=CLASS_USB_XHCI, bars=[256 * 1024],
                                  **common))
        functions.append(Function(slot + '.3', device=ucsi,
                                  cls=CLASS_SERIAL_BUS_OTHER,
                                  bars=[4096], **common))
    return functions


def nic(address, vendor=0x15b3, device=0x101b, cls=CLASS_INFINIBAND,
        driver='mlx5_core', **fields):
    """A NIC function (Mellanox ConnectX-6 by default).

    :param fields: more :class:`Function` fields.
    """
    fields.setdefault('bars', [32 * MiB])
    fields.setdefault('link_gen', 4)
    return Function(address, vendor=vendor, device=device, cls=cls,
                    driver=driver, **fields)


#: virtio-pci (modern) device ids and classes, as a KVM guest shows them.
VIRTIO_KINDS = {
    'net': (0x1041, CLASS_ETHERNET),
    'block': (0x1042, 0x018000),
    'balloon': (0x1045, 0xffff00),
    'console': (0x1053, 0xffff00),
    'rng': (0x1044, 0xffff00),
}


def virtio(address, kind='net', **fields):
    """A virtio-pci function, bound to ``virtio-pci``.

    No link files and no ``reset_method``, as in a KVM guest.

    :param kind: a key of :data:`VIRTIO_KINDS`.
    """
    device, cls = VIRTIO_KINDS[kind]
    fields.setdefault('link_gen', None)
    fields.setdefault('reset_method', None)
    return Function(address, vendor=0x1af4, device=device, cls=cls,
                    driver='virtio-pci', subsystem_device=device,
                    revision=0x01, bars=[4096, None, None, None, 16384],
                    **fields)


def endpoint(address, vendor, device, cls, **fields):
    """Any other function; see :class:`Function` for ``fields``."""
    return Function(address, vendor=vendor, device=device, cls=cls, **fields)


# The writer.

def _cpulist_to_set(cpulist):
    cpus = set()
    for part in filter(None, cpulist.strip().split(',')):
        low, _dash, high = part.partition('-')
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _set_to_cpulist(cpus):
    ranges, ordered = [], sorted(cpus)
    for cpu in ordered:
        if ranges and ranges[-1][1] == cpu - 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ','.join('%d' % a if a == b else '%d-%d' % (a, b)
                    for a, b in ranges)


def cpumask(cpus, nr_cpu_ids):
    """A CPU set as the kernel prints a cpumask (``%*pb``).

    32-bit hex words separated by commas, most significant first, the
    first one only as wide as the bits left (``0000,00000000,00ff00ff``
    for 112 possible CPUs).

    :param cpus: CPU numbers.
    :param nr_cpu_ids: number of possible CPUs (the mask's width).
    """
    value = sum(1 << cpu for cpu in cpus)
    words = max(1, (nr_cpu_ids + 31) // 32)
    head_bits = nr_cpu_ids - 32 * (words - 1) if nr_cpu_ids else 32
    chunks = ['%08x' % ((value >> (32 * i)) & 0xffffffff)
              for i in range(words - 1, -1, -1)]
    chunks[0] = chunks[0][-((head_bits + 3) // 4):]
    return ','.join(chunks)


def _link_speed(gen, kernel):
    return _LINK_SPEEDS[gen][0 if kernel == 'new' else 1]


class _Writer:
    """Writes one :class:`Host` under ``root/sys``."""

    def __init__(self, host, root):
        self.host = host
        self.sys = os.path.join(root, 'sys')
        self.entries = list(host.functions())
        self.groups = _number_groups(self.entries) if host.iommu else {}
        self.node_cpus = {n.id: _cpulist_to_set(n.cpus)
                          for n in host.numa_nodes}
        all_cpus = set().union(*self.node_cpus.values()) or {0}
        self.all_cpus = all_cpus
        self.nr_cpu_ids = max(all_cpus) + 1
        self.next_bar = 0x380000000000
        self.dirs = {}

    def write(self):
        os.makedirs(os.path.join(self.sys, 'bus', 'pci', 'devices'),
                    exist_ok=True)
        os.makedirs(os.path.join(self.sys, 'bus', 'pci', 'drivers'),
                    exist_ok=True)
        self._write_numa()
        for complex_ in self.host.root_complexes:
            self._write_host_bridge(complex_)
        for function, parents, complex_ in self.entries:
            self.dirs[function.address] = os.path.join(
                self.sys, 'devices', *parents, function.address)
        for function, parents, complex_ in self.entries:
            self._write_function(function, complex_)
        if self.host.iommu:
            os.makedirs(os.path.join(self.sys, 'kernel', 'iommu_groups'),
                        exist_ok=True)
            for address, group in self.groups.items():
                self._join_group(address, group)

    # NUMA

    def _write_numa(self):
        if not self.host.numa_nodes:
            return
        base = os.path.join(self.sys, 'devices', 'system', 'node')
        ids = sorted(n.id for n in self.host.numa_nodes)
        listed = _set_to_cpulist(ids) + '\n'
        for name in ('online', 'possible', 'has_memory',
                     'has_normal_memory', 'has_cpu'):
            _write(os.path.join(base, name), listed)
        for node in self.host.numa_nodes:
            self._write_node(base, node, ids)

    def _write_node(self, base, node, ids):
        path = os.path.join(base, 'node%d' % node.id)
        cpus = self.node_cpus[node.id]
        distances = node.distances or [10 if other == node.id else 21
                                       for other in ids]
        _write(os.path.join(path, 'cpulist'), _set_to_cpulist(cpus) + '\n')
        _write(os.path.join(path, 'cpumap'),
               cpumask(cpus, self.nr_cpu_ids) + '\n')
        _write(os.path.join(path, 'distance'),
               ' '.join(str(d) for d in distances) + '\n')
        _write(os.path.join(path, 'meminfo'), _meminfo(node))
        for cpu in sorted(cpus):
            _link(os.path.join(path, 'cpu%d' % cpu),
                  os.path.join(self.sys, 'devices', 'system', 'cpu',
                               'cpu%d' % cpu))
            os.makedirs(os.path.join(self.sys, 'devices', 'system', 'cpu',
                                     'cpu%d' % cpu), exist_ok=True)

    # PCI

    def _write_host_bridge(self, complex_):
        path = os.path.join(self.sys, 'devices', 'pci' + complex_.domain_bus)
        _write(os.path.join(path, 'uevent'), '')
        bus_dir = os.path.join(path, 'pci_bus', complex_.domain_bus)
        cpus = self._cpus(complex_.numa_node, complex_.local_cpulist)
        _write(os.path.join(bus_dir, 'cpulistaffinity'),
               _set_to_cpulist(cpus) + '\n')
        _write(os.path.join(bus_dir, 'cpuaffinity'),
               cpumask(cpus, self.nr_cpu_ids) + '\n')
        _link(os.path.join(bus_dir, 'device'), path)

    def _cpus(self, numa_node, local_cpulist):
        if local_cpulist is not None:
            return _cpulist_to_set(local_cpulist)
        if numa_node in self.node_cpus:
            return self.node_cpus[numa_node]
        return self.all_cpus

    def _write_function(self, function, complex_):
        path = self.dirs[function.address]
        numa_node = function.numa_node
        if numa_node is None:
            numa_node = complex_.numa_node
        local = function.local_cpulist
        if local is None and function.numa_node is None:
            local = complex_.local_cpulist
        cpus = self._cpus(numa_node, local)
        files = self._attributes(function, numa_node, cpus)
        files.update(function.extra_files)
        for name, content in files.items():
            _write(os.path.join(path, name), content)
        self._write_links(function, path)

    def _attributes(self, function, numa_node, cpus):
        subsystem_vendor = function.subsystem_vendor
        if subsystem_vendor is None:
            subsystem_vendor = function.vendor
        files = {
            'vendor': '0x%04x\n' % function.vendor,
            'device': '0x%04x\n' % function.device,
            'subsystem_vendor': '0x%04x\n' % subsystem_vendor,
            'subsystem_device': '0x%04x\n' % function.subsystem_device,
            'class': '0x%06x\n' % function.cls,
            'revision': '0x%02x\n' % function.revision,
            'numa_node': '%d\n' % numa_node,
            'local_cpulist': _set_to_cpulist(cpus) + '\n',
            'local_cpus': cpumask(cpus, self.nr_cpu_ids) + '\n',
            'resource': self._resource(function),
            'enable': '1\n',
            'irq': '0\n',
            'driver_override': '(null)\n',
            'broken_parity_status': '0\n',
            'd3cold_allowed': '1\n',
            'msi_bus': '\n' if function.is_bridge else '',
            'dma_mask_bits': '64\n',
            'consistent_dma_mask_bits': '64\n',
            'modalias': _modalias(function, subsystem_vendor) + '\n',
            'uevent': _uevent(function, subsystem_vendor),
            'config': _config_space(function, subsystem_vendor),
        }
        if function.link_gen is not None:
            files.update(self._link_files(function))
        if function.reset_method is not None:
            files['reset_method'] = function.reset_method + '\n'
        if function.is_bridge:
            files.update(self._bus_numbers(function))
        if function.sriov_totalvfs is not None:
            files.update(_sriov_files(function))
        return files

    def _link_files(self, function):
        kernel = self.host.kernel
        max_gen = function.max_link_gen or function.link_gen
        max_width = function.max_link_width or function.link_width
        return {
            'current_link_speed': _link_speed(function.link_gen, kernel)
            + '\n',
            'current_link_width': '%d\n' % function.link_width,
            'max_link_speed': _link_speed(max_gen, kernel) + '\n',
            'max_link_width': '%d\n' % max_width,
        }

    def _bus_numbers(self, bridge):
        buses = [int(f.address.split(':')[1], 16)
                 for f, _p, _r in _walk(bridge.children, [], None)]
        own = int(bridge.address.split(':')[1], 16)
        secondary = min(buses, default=own + 1)
        return {'secondary_bus_number': '%d\n' % secondary,
                'subordinate_bus_number': '%d\n' % max(buses,
                                                       default=secondary)}

    def _resource(self, function):
        lines = []
        count = (_BRIDGE_RESOURCES if function.is_bridge
                 else _ENDPOINT_RESOURCES)
        for index in range(count):
            size = function.bars[index] if index < len(function.bars) else 0
            if not size:
                lines.append('0x%016x 0x%016x 0x%016x' % (0, 0, 0))
                continue
            flags = _BAR_MEM64_PREFETCH if size >= 4 * GiB else _BAR_MEM32
            start = (self.next_bar + size - 1) // size * size
            self.next_bar = start + size
            lines.append('0x%016x 0x%016x 0x%016x'
                         % (start, start + size - 1, flags))
        return '\n'.join(lines) + '\n'

    def _write_links(self, function, path):
        _link(os.path.join(self.sys, 'bus', 'pci', 'devices',
                           function.address), path)
        _link(os.path.join(path, 'subsystem'),
              os.path.join(self.sys, 'bus', 'pci'))
        if function.driver is not None:
            driver_dir = os.path.join(self.sys, 'bus', 'pci', 'drivers',
                                      function.driver)
            _write_driver_dir(driver_dir)
            _link(os.path.join(path, 'driver'), driver_dir)
            _link(os.path.join(driver_dir, function.address), path)
        for index, vf in enumerate(function.vfs):
            _link(os.path.join(path, 'virtfn%d' % index),
                  self.dirs[vf.address])
            _link(os.path.join(self.dirs[vf.address], 'physfn'), path)

    def _join_group(self, address, group):
        group_dir = os.path.join(self.sys, 'kernel', 'iommu_groups',
                                 str(group))
        if not os.path.isdir(group_dir):
            os.makedirs(os.path.join(group_dir, 'devices'))
            _write(os.path.join(group_dir, 'type'), 'DMA\n')
            _write(os.path.join(group_dir, 'reserved_regions'),
                   '0x00000000fee00000 0x00000000feefffff msi\n')
        _link(os.path.join(self.dirs[address], 'iommu_group'), group_dir)
        _link(os.path.join(group_dir, 'devices', address),
              self.dirs[address])


def _sriov_files(function):
    vf_device = function.vfs[0].device if function.vfs else function.device
    return {'sriov_totalvfs': '%d\n' % function.sriov_totalvfs,
            'sriov_numvfs': '%d\n' % len(function.vfs),
            'sriov_offset': '1\n', 'sriov_stride': '1\n',
            'sriov_vf_device': '%x\n' % vf_device,
            'sriov_drivers_autoprobe': '1\n'}


def _modalias(function, subsystem_vendor):
    return 'pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X' % (
        function.vendor, function.device, subsystem_vendor,
        function.subsystem_device, function.cls >> 16,
        (function.cls >> 8) & 0xff, function.cls & 0xff)


def _uevent(function, subsystem_vendor):
    lines = ['DRIVER=%s' % function.driver] if function.driver else []
    lines += ['PCI_CLASS=%X' % function.cls,
              'PCI_ID=%04X:%04X' % (function.vendor, function.device),
              'PCI_SUBSYS_ID=%04X:%04X' % (subsystem_vendor,
                                           function.subsystem_device),
              'PCI_SLOT_NAME=%s' % function.address,
              'MODALIAS=%s' % _modalias(function, subsystem_vendor)]
    return '\n'.join(lines) + '\n'


def _config_space(function, subsystem_vendor):
    """The 64-byte standard header an unprivileged reader sees."""
    header = bytearray(64)
    header[0:4] = (function.vendor | function.device << 16).to_bytes(
        4, 'little')
    header[8] = function.revision
    header[9:12] = function.cls.to_bytes(3, 'little')
    header[14] = 0x01 if function.is_bridge else 0x00
    if not function.is_bridge:
        header[44:48] = (subsystem_vendor
                         | function.subsystem_device << 16).to_bytes(
                             4, 'little')
    return bytes(header)


def _meminfo(node):
    used = node.mem_kb // 4
    rows = (('MemTotal', node.mem_kb), ('MemFree', node.mem_kb - used),
            ('MemUsed', used))
    lines = ['Node %d %-15s%9d kB' % (node.id, name + ':', value)
             for name, value in rows]
    lines += ['Node %d HugePages_Total: %5d' % (node.id, 0),
              'Node %d HugePages_Free:  %5d' % (node.id, 0)]
    return '\n'.join(lines) + '\n'


def _write_driver_dir(driver_dir):
    if os.path.isdir(driver_dir):
        return
    os.makedirs(driver_dir)
    for name in ('bind', 'unbind', 'new_id', 'remove_id', 'uevent'):
        _write(os.path.join(driver_dir, name), '')
        os.chmod(os.path.join(driver_dir, name), stat.S_IWUSR)


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = 'wb' if isinstance(content, bytes) else 'w'
    with open(path, mode) as stream:
        stream.write(content)


def _link(link, target):
    """A symlink at ``link`` whose text is ``target`` made relative."""
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.relpath(target, os.path.dirname(link)), link)


class FakeSysfs:
    """Break a written (or captured) tree, one file at a time.

    Every method finds the device through ``sys/bus/pci/devices/ADDR``, as
    the reader does, so it works on any tree with that link.

    :param root: the sysfs root (the directory holding ``sys/``).
    """

    def __init__(self, root):
        self.root = root
        self.sys = os.path.join(root, 'sys')

    def device_dir(self, address):
        """The device's real directory under ``sys/devices``."""
        return os.path.realpath(os.path.join(self.sys, 'bus', 'pci',
                                             'devices', address))

    def path(self, address, name):
        return os.path.join(self.device_dir(address), name)

    def corrupt(self, address, name, content):
        """Replace a file (or link) of the device with ``content``.

        :param content: ``bytes`` or ``str``, written as is.
        """
        path = self.path(address, name)
        if os.path.lexists(path):
            os.remove(path)
        _write(path, content)

    def relink(self, address, name, target):
        """Point the device's link ``name`` at ``target`` (as written).

        E.g. ``relink(gpu, 'driver', 'driver')`` (a link to itself), or an
        ``iommu_group`` link to a group whose listing omits the device.
        """
        path = self.path(address, name)
        if os.path.lexists(path):
            os.remove(path)
        os.symlink(target, path)

    def remove(self, address, name):
        """Delete a file or link of the device."""
        os.remove(self.path(address, name))

    def dangle(self, address, name):
        """Make ``name`` a symlink whose target does not exist.

        The link keeps its shape (same depth of ``..``) with the last
        component renamed, as when a group or driver goes away.
        """
        path = self.path(address, name)
        target = (os.readlink(path) if os.path.islink(path)
                  else os.path.join('..', name))
        if os.path.lexists(path):
            os.remove(path)
        os.symlink(target.rstrip('/') + '-gone', path)

    def unreadable(self, address, name):
        """Make a file of the device fail to read with an ``OSError``.

        The mode is set to 0; root ignores modes, so as root the file is
        replaced by a directory, which fails to read too (``EISDIR``).
        """
        path = self.path(address, name)
        if os.geteuid() == 0:
            os.remove(path)
            os.mkdir(path)
        else:
            os.chmod(path, 0)

    def vanish(self, address):
        """Remove the device's directory, leaving its bus link dangling.

        What the reader sees when a device is hot-unplugged mid-scan.
        """
        shutil.rmtree(self.device_dir(address))
