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
"""Read a host's PCI inventory from sysfs.

Everything is read under an injected root (``/`` on a compute node, a
captured or generated tree in tests): ``sys/bus/pci/devices/*`` (each a
symlink whose target's path is the device's PCIe parent chain),
``sys/kernel/iommu_groups`` and ``sys/devices/system/node``.

A file that is missing where the kernel always writes it, unreadable, or
holding garbage becomes an :class:`~.model.ItemError` for that device and
that file; the scan goes on. Only a host where not even the PCI device
list can be read raises (:class:`SysfsUnreadableError`).

No nova, oslo or openstacksdk import: this runs in the agent.
"""

import errno
import os
import re
import stat

from gpu_passthrough_filter.inventory import health
from gpu_passthrough_filter.inventory import isolation
from gpu_passthrough_filter.inventory import locality
from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter.inventory import pciids

#: Directory names on a device's realpath that are PCI: functions
#: (``0000:17:00.0``) and host bridges (``pci0000:17``).
_PCI_PATH_NAME = re.compile(
    r'^(pci[0-9a-f]{4,}:[0-9a-f]{2}|[0-9a-f]{4,}:[0-9a-f]{2}:'
    r'[0-9a-f]{2}\.[0-7])$')

#: A ``vendor:device`` id as given in configuration.
_GPU_ID = re.compile(r'^(?:0x)?([0-9a-f]{1,4}):(?:0x)?([0-9a-f]{1,4})$')

#: Largest sysfs attribute read: one page, what the kernel's show()
#: callbacks may write.
_ATTRIBUTE_MAX = 65536

#: Pseudo-file name used in errors about the device directory itself.
DEVICE_DIR = '.'


class SysfsUnreadableError(Exception):
    """Not even the list of PCI devices could be read."""


def parse_gpu_id(text):
    """``"1BCF:001c"`` -> ``("1bcf", "001c")``.

    :param text: ``vendor:device`` in hex, optionally ``0x``-prefixed.
    :raises ValueError: not of that form.
    """
    match = _GPU_ID.match(text.strip().lower())
    if match is None:
        raise ValueError('%r is not a vendor:device id such as 10de:2330'
                         % text)
    return '%04x' % int(match.group(1), 16), '%04x' % int(match.group(2), 16)


def read_inventory(sysfs_root='/', extra_gpu_ids=(), pci_ids_path=None,
                   hostname=None):
    """Read the PCI inventory of the host whose sysfs is under a root.

    :param sysfs_root: directory holding ``sys/``; ``/`` on a real host.
    :param extra_gpu_ids: ``vendor:device`` strings of accelerators to
        count as GPUs besides display and 3D controllers.
    :param pci_ids_path: ``pci.ids`` database for names; None: the
        system's, if any.
    :param hostname: name to record; None: this machine's.
    :returns: a :class:`~.model.HostInventory`.
    :raises SysfsUnreadableError: ``sys/bus/pci/devices`` is unreadable.
    :raises ValueError: an ``extra_gpu_ids`` entry is malformed.
    """
    reader = SysfsReader(sysfs_root, extra_gpu_ids, pci_ids_path, hostname)
    return reader.read()


def root_hostname(sysfs_root):
    """The host name of the machine whose tree is at ``sysfs_root``.

    This machine's for ``/``; for a captured tree, its ``etc/hostname`` or
    ``proc/sys/kernel/hostname`` when the capture holds one, else the
    capture directory's name: never this machine's, which would publish
    another host's GPUs under the wrong name.
    """
    root = os.path.realpath(sysfs_root)
    if root == os.path.realpath('/'):
        return os.uname().nodename
    for name in (('etc', 'hostname'), ('proc', 'sys', 'kernel', 'hostname')):
        try:
            with open(os.path.join(root, *name)) as stream:
                first = stream.readline().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if first:
            return first
    return os.path.basename(root)


class SysfsReader:
    """One scan of one sysfs tree; see :func:`read_inventory`.

    The steps are separate methods so that a test can interfere between
    them (a device that disappears after the listing).
    """

    def __init__(self, sysfs_root='/', extra_gpu_ids=(), pci_ids_path=None,
                 hostname=None):
        self.root = sysfs_root
        self.extra_gpu_ids = {parse_gpu_id(text) for text in extra_gpu_ids}
        self.pci_ids_path = pci_ids_path
        self.hostname = hostname or root_hostname(sysfs_root)
        self.errors = []
        self.unreadable_drivers = set()
        self._device_dirs = None

    def path(self, *parts):
        """A path under the sysfs root."""
        return os.path.join(self.root, 'sys', *parts)

    def read(self):
        """Scan everything and build the inventory."""
        addresses = self.list_functions()
        functions = {}
        for address in addresses:
            function = self.read_function(address)
            if function is not None:
                functions[address] = function
        numa_nodes = self.read_numa_nodes()
        groups = self.read_iommu_groups()
        inventory = model.HostInventory(
            hostname=self.hostname,
            iommu_enabled=bool(groups),
            numa_nodes=numa_nodes,
            functions=[functions[address] for address in sorted(functions)],
            iommu_groups=groups,
            errors=self.errors)
        inventory.gpus = self.find_gpus(functions, numa_nodes, groups)
        for gpu in inventory.gpus:
            verdict = health.assess(gpu, inventory)
            gpu.health, gpu.health_reasons = verdict.state, list(
                verdict.reasons)
        return inventory

    # PCI functions

    def list_functions(self):
        """Addresses in ``sys/bus/pci/devices``, sorted."""
        try:
            names = os.listdir(self.path('bus', 'pci', 'devices'))
        except OSError as exc:
            raise SysfsUnreadableError(
                'cannot list %s: %s' % (self.path('bus', 'pci', 'devices'),
                                        exc.strerror or exc))
        return sorted(names)

    def read_function(self, address):
        """Read one function; None (and an error) when it is gone.

        :param address: a name listed by :meth:`list_functions`.
        """
        device_dir, parents = self._resolve(address)
        if device_dir is None:
            return None
        errors = []
        function = _FunctionFiles(device_dir, address, errors).read()
        function.parents = parents
        if not os.path.isdir(device_dir):
            # NOTE: hot-unplug (or driver unbind/remove) while we read:
            # every file failed for the same reason; one error says it.
            self._error(address, DEVICE_DIR,
                        'device disappeared during the scan')
            return None
        for error in errors:
            if error.file == 'driver':
                self.unreadable_drivers.add(address)
        self.errors.extend(errors)
        return function

    def _resolve(self, address):
        """Device directory and PCIe parent chain of a listed address."""
        link = self.path('bus', 'pci', 'devices', address)
        try:
            target = os.readlink(link)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                self._error(address, DEVICE_DIR, 'unreadable device link: '
                            '%s' % (exc.strerror or exc))
                return None, []
            return self._copied_device(address, link)
        if os.path.isabs(target):
            # NOTE: a captured tree may hold absolute links (/sys/...);
            # they mean the same place under the root.
            target = os.path.join(self.root, target.lstrip('/'))
        else:
            target = os.path.join(os.path.dirname(link), target)
        # NOTE: normpath, not realpath: below sys/devices every directory
        # is real, so the link's own path is the device's; realpath would
        # lstat each of its components, a third of the scan's cost.
        device_dir = os.path.normpath(target)
        if not os.path.isdir(device_dir):
            self._error(address, DEVICE_DIR, 'device directory missing '
                        '(dangling link to %s)' % target)
            return None, []
        return device_dir, _parent_chain(self.path('devices'), device_dir)

    def _copied_device(self, address, copy):
        """A device listed as a plain directory (a /sys copied with -L).

        The copy holds the attributes but not where the device sits; the
        same device under ``sys/devices`` (copied too) gives the parent
        chain. Without it the device is read from the copy, with no
        parents (no switch, no root port known).
        """
        if self._device_dirs is None:
            self._device_dirs = _pci_device_dirs(self.path('devices'))
        found = self._device_dirs.get(address)
        if found is not None:
            return found, _parent_chain(self.path('devices'), found)
        if not os.path.isdir(copy):
            self._error(address, DEVICE_DIR, 'device directory missing')
            return None, []
        return copy, []

    # NUMA nodes and IOMMU groups

    def read_numa_nodes(self):
        """Host NUMA nodes from ``sys/devices/system/node``, by id."""
        base = self.path('devices', 'system', 'node')
        try:
            names = os.listdir(base)
        except OSError:
            return []  # a kernel without NUMA: no node is known
        nodes = []
        for name in names:
            if re.match(r'^node\d+$', name):
                nodes.append(self._read_numa_node(base, name))
        return sorted(nodes, key=lambda node: node.id)

    def _read_numa_node(self, base, name):
        node = model.NumaNode(id=int(name[4:]))
        node_dir = os.path.join(base, name)
        try:
            node.cpus = locality.parse_cpulist(
                _read(os.path.join(node_dir, 'cpulist')))
        except (OSError, ValueError) as exc:
            self._error(name, 'cpulist', str(exc))
        try:
            node.memory_kb = _mem_total(
                _read(os.path.join(node_dir, 'meminfo')))
        except (OSError, ValueError) as exc:
            self._error(name, 'meminfo', str(exc))
        return node

    def read_iommu_groups(self):
        """Group number -> sorted member addresses; {} when IOMMU is off."""
        base = self.path('kernel', 'iommu_groups')
        try:
            names = os.listdir(base)
        except OSError:
            return {}
        groups = {}
        for name in sorted(names, key=_natural):
            try:
                groups[name] = sorted(
                    os.listdir(os.path.join(base, name, 'devices')))
            except OSError as exc:
                self._error('iommu_group %s' % name, 'devices',
                            'unreadable: %s' % (exc.strerror or exc))
        return groups

    # GPUs

    def find_gpus(self, functions, numa_nodes, groups):
        """The GPUs among ``functions``, classified and located.

        :param functions: address -> PciFunction.
        :param numa_nodes: the host's NUMA nodes.
        :param groups: IOMMU group number -> member addresses.
        """
        by_slot = {}
        for function in functions.values():
            by_slot.setdefault(function.slot, []).append(function.address)
        gpu_functions = [f for f in functions.values() if self._is_gpu(f)]
        switch_ports = locality.ports_above_bridges(functions.values())
        names = None
        gpus = {}
        for function in sorted(gpu_functions, key=lambda f: f.address):
            if function.slot in gpus:
                continue  # a second display function of the same card
            if names is None:
                names = pciids.load_pci_ids(
                    self.pci_ids_path,
                    {f.vendor for f in gpu_functions if f.vendor})
            gpus[function.slot] = self._gpu(
                function, sorted(by_slot[function.slot]), functions,
                numa_nodes, groups, names, switch_ports)
        return [gpus[slot] for slot in sorted(gpus)]

    def _is_gpu(self, function):
        # NOTE: SR-IOV virtual functions are slices of a GPU, not GPUs one
        # passes through whole; they stay functions of their card.
        if function.physfn is not None:
            return False
        return function.is_gpu_class or \
            (function.vendor, function.device) in self.extra_gpu_ids

    def _gpu(self, function, own, functions, numa_nodes, groups, names,
             switch_ports):
        group = function.iommu_group
        verdict = isolation.classify(
            own, group, groups.get(group, []), functions, bool(groups),
            self.unreadable_drivers)
        return model.GPU(
            address=function.address,
            functions=own,
            name=names.describe(function.vendor, function.device),
            vendor=function.vendor,
            device=function.device,
            numa_node=locality.derive_numa_node(
                self._checked_node(function, numa_nodes),
                function.local_cpus, numa_nodes),
            iommu_group=group,
            isolation=verdict.isolation,
            isolation_reason=verdict.reason,
            vfio_ready=verdict.vfio_ready,
            driver=function.driver,
            switch=locality.switch_upstream_port(function.parents,
                                                 switch_ports),
            root_port=locality.root_port(function.parents),
            root_complex=locality.root_complex(function.parents))

    def _checked_node(self, function, numa_nodes):
        """``numa_node`` if the host has that node; else None, and why."""
        node = function.numa_node
        known = sorted(n.id for n in numa_nodes)
        if node is None or not known:
            return node
        if node not in known:
            self._error(function.address, 'numa_node',
                        'node %d is not a NUMA node of this host (%s); '
                        'taken from local_cpulist instead' % (
                            node, ', '.join(map(str, known))))
            return None
        if not next(n for n in numa_nodes if n.id == node).has_cpus:
            # NOTE: POWER9 puts each GPU's own memory in a CPU-less node
            # (250-255); a guest cannot run there, its CPUs are elsewhere.
            self._error(function.address, 'numa_node',
                        'node %d has no CPUs (a GPU or CXL memory node); '
                        'the CPU node is taken from local_cpulist' % node)
            return None
        return node

    def _error(self, address, file, message):
        self.errors.append(model.ItemError(address, file, message))


class _FunctionFiles:
    """The files of one function directory, read into a PciFunction.

    Errors are collected in a list the caller owns, so that a device that
    vanished mid-read can be reported once instead of once per file.
    """

    #: (attribute, file, parser, required): files the kernel writes for
    #: every PCI function are required; the others depend on the device
    #: (PCIe link files), the kernel version (reset_method) or SR-IOV.
    ATTRIBUTES = (
        ('vendor', 'vendor', '_hex_id', True),
        ('device', 'device', '_hex_id', True),
        ('subsystem_vendor', 'subsystem_vendor', '_hex_id', False),
        ('subsystem_device', 'subsystem_device', '_hex_id', False),
        ('class_code', 'class', '_class_code', True),
        ('numa_node', 'numa_node', '_numa_node', False),
        ('local_cpus', 'local_cpulist', '_cpulist', False),
        ('cur_link_speed', 'current_link_speed', '_text', False),
        ('cur_link_width', 'current_link_width', '_lanes', False),
        ('max_link_speed', 'max_link_speed', '_text', False),
        ('max_link_width', 'max_link_width', '_lanes', False),
        ('bar_sizes', 'resource', '_bar_sizes', True),
        ('reset_methods', 'reset_method', '_words', False),
        ('sriov_totalvfs', 'sriov_totalvfs', '_count', False),
        ('aer_fatal', 'aer_dev_fatal', '_aer_total', False),
        ('aer_nonfatal', 'aer_dev_nonfatal', '_aer_total', False),
        ('aer_correctable', 'aer_dev_correctable', '_aer_total', False),
    )

    #: (attribute, link): symlinks whose target's name is the value;
    #: absent means none (unbound, no IOMMU, not a virtual function).
    LINKS = (
        ('driver', 'driver'),
        ('iommu_group', 'iommu_group'),
        ('physfn', 'physfn'),
    )

    def __init__(self, device_dir, address, errors):
        self.device_dir = device_dir
        self.address = address
        self.errors = errors

    def read(self):
        function = model.PciFunction(address=self.address)
        try:
            # NOTE: files are opened relative to the directory's fd: no
            # path joining, no path walk per file (a third of the cost).
            self.dir_fd = os.open(self.device_dir, os.O_RDONLY)
        except OSError as exc:
            self._error(DEVICE_DIR, 'unreadable: %s' % (exc.strerror or exc))
            return function
        try:
            for attribute, name, parser, required in self.ATTRIBUTES:
                setattr(function, attribute,
                        self._file(name, getattr(self, parser), required))
            if function.local_cpus is None:
                # NOTE: older kernels and some captures have only the hex
                # mask; it says the same.
                function.local_cpus = self._file('local_cpus', self._cpumask,
                                                 False)
            for attribute, name in self.LINKS:
                setattr(function, attribute, self._link(name))
            function.config_readable = self._config_readable()
        finally:
            os.close(self.dir_fd)
        return function

    def _error(self, name, message):
        self.errors.append(model.ItemError(self.address, name, message))

    def _file(self, name, parser, required):
        try:
            text = _read(name, self.dir_fd)
        except FileNotFoundError:
            if required:
                self._error(name, 'missing')
            return None
        except OSError as exc:
            self._error(name, 'unreadable: %s' % (exc.strerror or exc))
            return None
        try:
            return parser(text)
        except ValueError as exc:
            self._error(name, 'cannot parse %r: %s' % (text[:60], exc))
            return None

    @staticmethod
    def _aer_total(text):
        """The ``TOTAL_ERR_*`` line of an AER counter file."""
        for line in text.splitlines():
            key, _, value = line.strip().partition(' ')
            if key.startswith('TOTAL_ERR_'):
                return int(value)
        raise ValueError('no TOTAL_ERR_ line')

    def _config_readable(self):
        """False when the config header reads all ones; None: no file."""
        try:
            header = _read_bytes('config', self.dir_fd, 4)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._error('config', 'unreadable: %s' % (exc.strerror or exc))
            return False
        return len(header) == 4 and header != b'\xff\xff\xff\xff'

    def _link(self, name):
        try:
            target = os.readlink(name, dir_fd=self.dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._error(name, 'unreadable link: %s' % (exc.strerror or exc))
            return None
        value = os.path.basename(target.rstrip('/'))
        if value in ('', '.', '..', name):
            # NOTE: a link to itself (or to a directory, not a driver or a
            # group) names nothing; its basename would read as driver
            # "driver".
            self._error(name, 'link points at %r, not at a %s'
                        % (target, name.replace('_', ' ')))
            return None
        if name == 'iommu_group' and not value.isdigit():
            self._error(name, 'link points at %r, not at an IOMMU group'
                        % target)
            return None
        return value

    @staticmethod
    def _hex_id(text):
        value = int(text, 16)
        if not 0 <= value <= 0xffff:
            raise ValueError('not a 16-bit id')
        return '%04x' % value

    @staticmethod
    def _class_code(text):
        value = int(text, 16)
        if not 0 <= value <= 0xffffff:
            raise ValueError('not a 24-bit class code')
        return '%06x' % value

    @staticmethod
    def _numa_node(text):
        value = int(text)
        if value < -1:
            raise ValueError('not a NUMA node')
        return None if value == -1 else value

    @staticmethod
    def _cpulist(text):
        return locality.parse_cpulist(text)

    @staticmethod
    def _cpumask(text):
        return locality.parse_cpumask(text)

    @staticmethod
    def _text(text):
        if not text:
            raise ValueError('empty')
        return text

    @staticmethod
    def _lanes(text):
        value = int(text)
        if value < 0:
            raise ValueError('negative width')
        return value

    @staticmethod
    def _count(text):
        value = int(text)
        if value < 0:
            raise ValueError('negative count')
        return value

    @staticmethod
    def _words(text):
        return text.split()

    @staticmethod
    def _bar_sizes(text):
        return _bar_sizes(text)


def _read_bytes(path, dir_fd=None, size=None):
    """The bytes of a regular file (a FIFO or device node is refused)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, 'not a regular file', path)
        return os.read(fd, size or _ATTRIBUTE_MAX)
    finally:
        os.close(fd)


def _read(path, dir_fd=None):
    """The text of a sysfs attribute, without its trailing newline.

    The one low-level read of the reader. Plain ``os.read`` rather than
    ``open()``: a scan reads some 15 files per function and the text layer
    would cost more than the read; a sysfs attribute fits in one page.

    :param path: the file, relative to ``dir_fd`` when that is given.
    :param dir_fd: an open directory file descriptor, or None.
    """
    # NOTE: O_NONBLOCK and the S_ISREG check (in _read_bytes): a FIFO or
    # a device node in a captured tree would block the scan forever; sysfs
    # attributes are regular files.
    return _read_bytes(path, dir_fd).decode('ascii', 'replace').strip()


def _pci_device_dirs(devices_dir):
    """``{address: directory}`` of the PCI devices under ``sys/devices``.

    Walks only PCI host bridges (``pci0000:00``) and PCI functions, never
    following links: bounded by the PCI tree itself.
    """
    found, pending = {}, [devices_dir]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if (_PCI_PATH_NAME.match(entry.name) and
                    entry.is_dir(follow_symlinks=False)):
                if not entry.name.startswith('pci'):
                    found.setdefault(entry.name, entry.path)
                pending.append(entry.path)
    return found


def _parent_chain(devices_dir, device_dir):
    """PCI names on the device's path under ``sys/devices``, self excluded.

    Non-PCI directories (``platform``, ``LNXSYSTM``) are skipped.
    """
    relative = os.path.relpath(device_dir, os.path.normpath(devices_dir))
    return [name for name in relative.split(os.sep)[:-1]
            if _PCI_PATH_NAME.match(name)]


def _bar_sizes(text):
    """Sizes of BARs 0-5 from a ``resource`` file (``start end flags``)."""
    lines = text.splitlines()
    if len(lines) < 6:
        raise ValueError('%d lines, expected at least 6' % len(lines))
    sizes = []
    for line in lines[:6]:
        fields = line.split()
        if len(fields) != 3:
            raise ValueError('expected "start end flags"')
        start, end = int(fields[0], 16), int(fields[1], 16)
        if end < start:
            raise ValueError('end before start')
        sizes.append(end - start + 1 if end else 0)
    return sizes


def _mem_total(meminfo):
    """``MemTotal`` in KiB from a node's ``meminfo``."""
    for line in meminfo.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == 'MemTotal:':
            return int(fields[3])
    raise ValueError('no MemTotal line')


def _natural(name):
    """Sort key: group ``10`` after group ``9``."""
    return (0, int(name)) if name.isdigit() else (1, name)
