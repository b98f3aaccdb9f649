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
"""The host inventory: what the agent knows about a compute node's PCI.

Plain dataclasses, built by :mod:`gpu_passthrough_filter.inventory.sysfs`
and read by the publishers, the CLI and the tests. The inventory travels as
versioned JSON (:meth:`HostInventory.to_json` / :meth:`HostInventory.
from_json`); the round trip is lossless. A document that is malformed, or
that a newer agent wrote with a schema this one does not know, raises
:class:`InventoryFormatError` with a message that says what is wrong and
where.

Identifiers are lower-case hex strings without ``0x``: vendor ``"10de"``,
device ``"2330"``, class ``"030200"``. PCI addresses are full
``domain:bus:slot.function`` strings, e.g. ``"0000:81:00.0"``.

Pure module: no nova, oslo or openstacksdk import.
"""

import dataclasses
import json
import typing

from gpu_passthrough_filter import tags

#: Version of the JSON document :meth:`HostInventory.to_dict` writes. Bump
#: it when a field changes meaning or a required field appears; readers
#: refuse documents with a higher version rather than misread them.
SCHEMA_VERSION = 1

#: PCI class prefixes (base class + subclass) of bridges. VFIO lets a
#: group hold these beside the assigned device: host bridges (0x0600),
#: PCI-to-PCI bridges incl. PCIe root and switch ports (0x0604) and
#: semi-transparent PCI-to-PCI bridges (0x0609).
BRIDGE_CLASS_PREFIXES = ('0600', '0604', '0609')

#: PCI class prefixes that make a function a GPU: VGA-compatible display
#: controllers (0x0300) and 3D controllers (0x0302, data-centre GPUs).
GPU_CLASS_PREFIXES = ('0300', '0302')


class InventoryFormatError(ValueError):
    """A serialized inventory cannot be read: malformed or too new."""


@dataclasses.dataclass
class ItemError:
    """A problem met while reading one item; the rest of the scan went on.

    :param address: PCI address of the function concerned, or a short
        description of the place (``"numa"``, ``"iommu_groups"``).
    :param file: the sysfs file (relative to the item) that failed.
    :param message: what went wrong, for an operator.
    """
    address: str
    file: str
    message: str


@dataclasses.dataclass
class NumaNode:
    """One host NUMA node.

    :param id: node number, as in ``/sys/devices/system/node/node<id>``.
    :param cpus: logical CPU numbers of the node, sorted.
    :param memory_kb: ``MemTotal`` of the node in KiB, None if unknown.
    """
    id: int
    cpus: typing.List[int] = dataclasses.field(default_factory=list)
    memory_kb: typing.Optional[int] = None

    @property
    def has_cpus(self):
        """False for a memory-only node (GPU memory on POWER9, CXL)."""
        return bool(self.cpus)


@dataclasses.dataclass
class PciFunction:
    """One PCI function as sysfs shows it. None means "not readable".

    :param address: ``domain:bus:slot.function``.
    :param vendor: vendor id, e.g. ``"10de"``.
    :param device: device id.
    :param subsystem_vendor: subsystem vendor id.
    :param subsystem_device: subsystem device id.
    :param class_code: six hex digits, e.g. ``"030000"``.
    :param numa_node: NUMA node from ``numa_node``; None for ``-1``.
    :param local_cpus: CPUs from ``local_cpulist``.
    :param iommu_group: IOMMU group number, None without a group.
    :param driver: bound driver name, None when unbound.
    :param parents: path from the root complex (``"pci0000:17"``) down to
        this function's parent bridge, from the device's realpath.
    :param cur_link_speed: ``current_link_speed`` text, e.g. ``"8 GT/s"``.
    :param cur_link_width: ``current_link_width`` lanes.
    :param max_link_speed: ``max_link_speed`` text.
    :param max_link_width: ``max_link_width`` lanes.
    :param bar_sizes: sizes in bytes of BARs 0-5 (0 when unused).
    :param reset_methods: from ``reset_method`` (kernel >= 5.15).
    :param sriov_totalvfs: ``sriov_totalvfs`` of an SR-IOV physical
        function.
    :param physfn: address of the physical function of a virtual function.
    :param aer_fatal: ``TOTAL_ERR_FATAL`` of ``aer_dev_fatal`` (PCIe AER).
    :param aer_nonfatal: ``TOTAL_ERR_NONFATAL`` of ``aer_dev_nonfatal``.
    :param aer_correctable: ``TOTAL_ERR_COR`` of ``aer_dev_correctable``.
    :param config_readable: False when the config space reads all ones (the
        device fell off the bus or is stuck in reset); None: no ``config``.
    """
    address: str
    vendor: typing.Optional[str] = None
    device: typing.Optional[str] = None
    subsystem_vendor: typing.Optional[str] = None
    subsystem_device: typing.Optional[str] = None
    class_code: typing.Optional[str] = None
    numa_node: typing.Optional[int] = None
    local_cpus: typing.Optional[typing.List[int]] = None
    iommu_group: typing.Optional[str] = None
    driver: typing.Optional[str] = None
    parents: typing.List[str] = dataclasses.field(default_factory=list)
    cur_link_speed: typing.Optional[str] = None
    cur_link_width: typing.Optional[int] = None
    max_link_speed: typing.Optional[str] = None
    max_link_width: typing.Optional[int] = None
    bar_sizes: typing.Optional[typing.List[int]] = None
    reset_methods: typing.Optional[typing.List[str]] = None
    sriov_totalvfs: typing.Optional[int] = None
    physfn: typing.Optional[str] = None
    aer_fatal: typing.Optional[int] = None
    aer_nonfatal: typing.Optional[int] = None
    aer_correctable: typing.Optional[int] = None
    config_readable: typing.Optional[bool] = None

    @property
    def is_bridge(self):
        """True for host bridges and PCI(e) bridges/ports."""
        return (self.class_code is not None
                and self.class_code[:4] in BRIDGE_CLASS_PREFIXES)

    @property
    def is_gpu_class(self):
        """True for display (0x0300) and 3D (0x0302) controllers."""
        return (self.class_code is not None
                and self.class_code[:4] in GPU_CLASS_PREFIXES)

    @property
    def slot(self):
        """``domain:bus:slot``: the physical device the function is on."""
        return self.address.rsplit('.', 1)[0]

    @property
    def model(self):
        """``vendor:device``, the form of :data:`tags.MODEL`."""
        return '%s:%s' % (self.vendor, self.device)


@dataclasses.dataclass
class GPU:
    """A GPU (or configured accelerator) and the facts the scheduler needs.

    :param address: PCI address of the GPU's display/3D function.
    :param functions: every function of the same physical device (e.g.
        its HDMI audio), the GPU's own address included, sorted.
    :param name: human name from ``pci.ids``, else ``"vendor:device"``.
    :param vendor: vendor id.
    :param device: device id.
    :param numa_node: host NUMA node, derived from ``local_cpulist`` when
        sysfs says ``-1``; None when unknown.
    :param iommu_group: IOMMU group number, None when none.
    :param isolation: one of :data:`tags.ISOLATION_VERDICTS`.
    :param isolation_reason: why, in words, for operators and logs.
    :param vfio_ready: every endpoint of the group is bound to a vfio-pci
        driver or unbound; False when the group is unknown.
    :param driver: driver bound to the GPU function.
    :param switch: address of the upstream port of the PCIe switch right
        above the GPU, None when it hangs off a root port.
    :param root_port: address of the root port above the GPU.
    :param root_complex: the host bridge, e.g. ``"pci0000:17"``.
    :param health: ``ready``, ``degraded`` (offered, with a reason to
        look) or ``unhealthy`` (not offered), see :mod:`.health`.
    :param health_reasons: why, one sentence each.
    :param cordon: why the operator took it out of service (with the
        expiry), None when not cordoned; set by the agent from its cordon
        file, never read from sysfs.
    """
    address: str
    functions: typing.List[str] = dataclasses.field(default_factory=list)
    name: str = ''
    vendor: typing.Optional[str] = None
    device: typing.Optional[str] = None
    numa_node: typing.Optional[int] = None
    iommu_group: typing.Optional[str] = None
    isolation: str = tags.UNKNOWN
    isolation_reason: str = ''
    vfio_ready: bool = False
    driver: typing.Optional[str] = None
    switch: typing.Optional[str] = None
    root_port: typing.Optional[str] = None
    root_complex: typing.Optional[str] = None
    health: str = 'ready'
    health_reasons: typing.List[str] = dataclasses.field(
        default_factory=list)
    cordon: typing.Optional[str] = None

    @property
    def model(self):
        """``vendor:device``, the form of :data:`tags.MODEL`."""
        return '%s:%s' % (self.vendor, self.device)


@dataclasses.dataclass
class HostInventory:
    """Everything the agent read on one host.

    :param hostname: the compute node's name.
    :param iommu_enabled: True when ``/sys/kernel/iommu_groups`` holds at
        least one group.
    :param numa_nodes: host NUMA nodes, by id.
    :param functions: every PCI function read, by address.
    :param iommu_groups: group number -> member addresses, sorted.
    :param gpus: the GPUs, by address.
    :param errors: per-item read problems.
    :param schema_version: version of the serialized form.
    """
    hostname: str
    iommu_enabled: bool = False
    numa_nodes: typing.List[NumaNode] = dataclasses.field(
        default_factory=list)
    functions: typing.List[PciFunction] = dataclasses.field(
        default_factory=list)
    iommu_groups: typing.Dict[str, typing.List[str]] = dataclasses.field(
        default_factory=dict)
    gpus: typing.List[GPU] = dataclasses.field(default_factory=list)
    errors: typing.List[ItemError] = dataclasses.field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def function(self, address):
        """The :class:`PciFunction` at ``address``, or None."""
        return _index(self.functions).get(address)

    def gpu(self, address):
        """The :class:`GPU` at ``address``, or None."""
        return _index(self.gpus).get(address)

    def to_dict(self):
        """A JSON-ready dict; :meth:`from_dict` reads it back unchanged."""
        return dataclasses.asdict(self)

    def to_json(self, indent=None):
        """:meth:`to_dict` as a JSON string.

        :param indent: passed to :func:`json.dumps`.
        """
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, document):
        """Build an inventory from :meth:`to_dict` output.

        :param document: the dict.
        :raises InventoryFormatError: the document is malformed or comes
            from a newer schema.
        """
        _check_version(document)
        inventory = _decode(document, cls, 'inventory')
        _check_verdicts(inventory)
        return inventory

    @classmethod
    def from_json(cls, text):
        """Build an inventory from :meth:`to_json` output.

        :param text: the JSON text.
        :raises InventoryFormatError: not JSON, malformed, or too new.
        """
        try:
            document = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise InventoryFormatError('inventory is not JSON: %s' % exc)
        return cls.from_dict(document)


def _index(items):
    return {item.address: item for item in items}


def _check_version(document):
    if not isinstance(document, dict):
        raise InventoryFormatError(
            'inventory must be a JSON object, not %s'
            % type(document).__name__)
    version = document.get('schema_version')
    if type(version) is not int or version < 1:
        raise InventoryFormatError(
            'inventory has no valid schema_version (got %r)' % (version,))
    if version > SCHEMA_VERSION:
        raise InventoryFormatError(
            'inventory schema_version %d is newer than the %d this '
            'gpu-passthrough-filter reads; upgrade it'
            % (version, SCHEMA_VERSION))


def _check_verdicts(inventory):
    for index, gpu in enumerate(inventory.gpus):
        if gpu.isolation not in tags.ISOLATION_VERDICTS:
            raise InventoryFormatError(
                'inventory.gpus[%d].isolation: %r is not one of %s'
                % (index, gpu.isolation, ', '.join(tags.ISOLATION_VERDICTS)))


def _decode(value, hint, where):
    """Check ``value`` against the type ``hint`` and build it.

    Handles the few shapes the model uses: scalars, Optional, List, Dict
    with string keys and dataclasses. ``where`` names the place for the
    error message, e.g. ``inventory.gpus[3].numa_node``.
    """
    if dataclasses.is_dataclass(hint):
        return _decode_dataclass(value, hint, where)
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        if value is None:
            return None
        inner = [arg for arg in typing.get_args(hint)
                 if arg is not type(None)]
        return _decode(value, inner[0], where)
    if origin is list:
        _expect(value, list, where)
        item_hint = typing.get_args(hint)[0]
        return [_decode(item, item_hint, '%s[%d]' % (where, index))
                for index, item in enumerate(value)]
    if origin is dict:
        _expect(value, dict, where)
        value_hint = typing.get_args(hint)[1]
        return {key: _decode(item, value_hint, '%s[%r]' % (where, key))
                for key, item in value.items()}
    return _decode_scalar(value, hint, where)


def _decode_scalar(value, hint, where):
    # NOTE: bool is a subclass of int in Python; a JSON true where a number
    # belongs is a malformed document, not 1.
    if hint is int and isinstance(value, bool):
        _fail(where, 'an integer', value)
    _expect(value, hint, where)
    return value


def _decode_dataclass(value, cls, where):
    _expect(value, dict, where)
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise InventoryFormatError(
            '%s: unknown field(s) %s' % (where, ', '.join(unknown)))
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = _decode(value[name], hints[name],
                                   '%s.%s' % (where, name))
        elif (field.default is dataclasses.MISSING
              and field.default_factory is dataclasses.MISSING):
            raise InventoryFormatError(
                '%s: missing required field %r' % (where, name))
    return cls(**kwargs)


#: How a type is named in error messages.
_TYPE_NAMES = {int: 'an integer', str: 'a string', bool: 'a boolean',
               list: 'a list', dict: 'an object'}


def _expect(value, expected_type, where):
    if not isinstance(value, expected_type):
        _fail(where, _TYPE_NAMES.get(expected_type, expected_type.__name__),
              value)


def _fail(where, expected, value):
    raise InventoryFormatError('%s: expected %s, got %s %r'
                               % (where, expected, type(value).__name__,
                                  value))
