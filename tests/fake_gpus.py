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
"""Declarative fake GPUs for the Nova functional harness.

A test describes a host's GPUs as :class:`FakeGPU` values; this module turns
them into what nova sees on a real host that runs the project's agent: one
``[pci] device_spec`` entry per GPU, tagged with the names from
:mod:`gpu_passthrough_filter.tags`, and one ``[pci] alias`` per GPU model.
No nova import: the nova glue lives in :mod:`tests.functional.base`.
"""

import collections
import dataclasses
import json
import re

from gpu_passthrough_filter import tags
from gpu_passthrough_filter import traits

_ADDRESS_RE = re.compile(
    r'^(?P<domain>0000):(?P<bus>[0-9a-f]{2}):(?P<slot>[0-1][0-9a-f])'
    r'\.(?P<function>[0-7])$')


@dataclasses.dataclass(frozen=True)
class GPUModel:
    """A GPU model as nova's PCI code knows it.

    :param alias: name of the ``[pci] alias`` for this model, the word a
        flavor uses in ``pci_passthrough:alias=<alias>:<count>``.
    :param vendor_id: PCI vendor id, 4 lower-case hex digits.
    :param product_id: PCI device id, 4 lower-case hex digits.
    :param product_name: name as ``pci.ids`` spells it (shown by libvirt).
    :param class_code: PCI class code; ``0x030200`` is a 3D controller, what
        data-centre GPUs report. Nova does not read it; the agent does.
    """

    alias: str
    vendor_id: str
    product_id: str
    product_name: str
    class_code: str = '0x030200'

    @property
    def model_tag(self):
        """The value of the :data:`~gpu_passthrough_filter.tags.MODEL` tag."""
        return '%s:%s' % (self.vendor_id, self.product_id)

    def alias_json(self):
        """The ``[pci] alias`` entry for this model, as nova reads it."""
        return json.dumps({
            'name': self.alias,
            'vendor_id': self.vendor_id,
            'product_id': self.product_id,
            'device_type': 'type-PCI',
        })


#: NVIDIA H100 SXM5 80GB.
H100 = GPUModel('h100', '10de', '2330', 'GH100 [H100 SXM5 80GB]')
#: NVIDIA A100 SXM4 80GB.
A100 = GPUModel('a100', '10de', '20b2', 'GA100 [A100 SXM4 80GB]')
#: NVIDIA L40S.
L40S = GPUModel('l40s', '10de', '26b9', 'AD102GL [L40S]')


@dataclasses.dataclass(frozen=True)
class FakeGPU:
    """One passthrough GPU on a fake compute host.

    :param address: PCI address, ``0000:BB:SS.F`` in lower-case hex (the
        fake libvirt only emulates PCI domain 0000).
    :param numa_node: host NUMA node of the GPU.
    :param iommu_group: IOMMU group number; ``None`` gives the GPU a group of
        its own (see :func:`host_device_specs`).
    :param isolation: the agent's verdict (one of
        :data:`~gpu_passthrough_filter.tags.ISOLATION_VERDICTS`); ``None``
        derives it: ``isolated`` when no other GPU of the host shares the
        group, ``shared`` otherwise.
    :param switch: identifier of the PCIe switch above the GPU (its upstream
        port's address), or :data:`~gpu_passthrough_filter.tags.NO_SWITCH`.
    :param root: identifier of the root complex above the GPU; ``None``
        means one root complex per NUMA node (``pci0000:00`` for node 0,
        ``pci0000:80`` for node 1, ...).
    :param model: the :class:`GPUModel`.
    :param spec_extra: keys merged last into this GPU's ``device_spec``
        entry, e.g. ``{'traits': 'CUSTOM_X'}``; a ``None`` value removes the
        key, so a test can drop or spoil one tag.
    """

    address: str
    numa_node: int = 0
    iommu_group: int = None
    isolation: str = None
    switch: str = tags.NO_SWITCH
    root: str = None
    model: GPUModel = H100
    spec_extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not _ADDRESS_RE.match(self.address):
            raise ValueError(
                'FakeGPU address %r is not 0000:BB:SS.F in lower-case hex'
                % self.address)

    @property
    def bus_slot_function(self):
        """``(bus, slot, function)`` as integers, for the fake libvirt."""
        parts = _ADDRESS_RE.match(self.address).groupdict()
        return (int(parts['bus'], 16), int(parts['slot'], 16),
                int(parts['function']))


#: PCI addresses of the eight GPUs of an 8-GPU HGX baseboard host as DGX H100
#: systems enumerate them, NUMA node 0 first.
HGX_ADDRESSES = ('0000:18:00.0', '0000:2a:00.0', '0000:3a:00.0',
                 '0000:5d:00.0', '0000:9a:00.0', '0000:ab:00.0',
                 '0000:ba:00.0', '0000:db:00.0')


def eight_gpu_host(model=H100):
    """Eight isolated GPUs, two per PCIe switch, four per NUMA node.

    The shape the scheduler's tests name "8-GPU host with 4 switches over 2
    NUMA nodes". Addresses are :data:`HGX_ADDRESSES`; each switch is named
    after a made-up upstream port on the GPUs' bus range (``0000:17:00.0``
    above the first two GPUs, ...): the values only have to be distinct.

    :param model: the GPUs' :class:`GPUModel`.
    :returns: a list of eight :class:`FakeGPU`.
    """
    gpus = []
    for index, address in enumerate(HGX_ADDRESSES):
        first_of_pair = HGX_ADDRESSES[index - index % 2]
        switch = '0000:%02x:00.0' % (int(first_of_pair[5:7], 16) - 1)
        gpus.append(FakeGPU(address, numa_node=index // 4, switch=switch,
                            model=model))
    return gpus


def assign_iommu_groups(gpus, first_group=100):
    """Give every GPU without an IOMMU group a group of its own.

    :param gpus: the host's :class:`FakeGPU` values.
    :param first_group: number to start from; numbers already used by the
        host's GPUs are skipped.
    :returns: a list of :class:`FakeGPU`, each with ``iommu_group`` set.
    """
    used = {gpu.iommu_group for gpu in gpus if gpu.iommu_group is not None}
    next_group = first_group
    result = []
    for gpu in gpus:
        if gpu.iommu_group is None:
            while next_group in used:
                next_group += 1
            gpu = dataclasses.replace(gpu, iommu_group=next_group)
            used.add(next_group)
        result.append(gpu)
    return result


def agent_tags(gpu, group_gpus):
    """The tags the agent publishes for one GPU.

    :param gpu: a :class:`FakeGPU` with its ``iommu_group`` set.
    :param group_gpus: how many GPUs of the host are in the GPU's group.
    :returns: a dict of tag name to string value.
    """
    isolation = gpu.isolation
    if isolation is None:
        isolation = tags.ISOLATED if group_gpus == 1 else tags.SHARED
    root = gpu.root
    if root is None:
        root = 'pci0000:%02x' % (0x80 * gpu.numa_node)
    return tags.encode(tags.GPUTags(
        iommu_group=gpu.iommu_group, isolation=isolation,
        switch=None if gpu.switch == tags.NO_SWITCH else gpu.switch,
        root=root, numa_node=gpu.numa_node, model=gpu.model.model_tag,
        group_gpus=group_gpus))


def device_spec(gpu, group_gpus, tagged=True, in_placement=False):
    """The ``[pci] device_spec`` entry (a dict) for one GPU.

    :param gpu: a :class:`FakeGPU` with its ``iommu_group`` set.
    :param group_gpus: how many GPUs of the host are in the GPU's group.
    :param tagged: ``False`` leaves out the agent's tags, as on a host
        whose operator wrote device_spec by hand.
    :param in_placement: add the device traits the agent adds with PCI
        in Placement (model, isolation, topology).
    :returns: a dict ready for ``json.dumps``.
    """
    spec = {
        'vendor_id': gpu.model.vendor_id,
        'product_id': gpu.model.product_id,
        'address': gpu.address,
    }
    if tagged:
        spec.update(agent_tags(gpu, group_gpus))
    if tagged and in_placement:
        tagged_as = tags.decode(spec)
        spec['traits'] = ','.join(traits.device_traits(
            gpu.model.vendor_id, gpu.model.product_id, tagged_as.isolation,
            tagged_as.numa_node, tagged_as.switch, tagged_as.iommu_group))
    for key, value in gpu.spec_extra.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def host_device_specs(gpus, tagged=True, in_placement=False):
    """The ``[pci] device_spec`` option value for one host.

    :param gpus: the host's :class:`FakeGPU` values, each with its
        ``iommu_group`` set (see :func:`assign_iommu_groups`).
    :param tagged: see :func:`device_spec`.
    :param in_placement: see :func:`device_spec`.
    :returns: a list of JSON strings, one per GPU.
    """
    group_sizes = collections.Counter(gpu.iommu_group for gpu in gpus)
    return [
        json.dumps(device_spec(gpu, group_sizes[gpu.iommu_group], tagged,
                               in_placement))
        for gpu in gpus
    ]


def check_unique_addresses(gpus):
    """Refuse a host description that names one PCI address twice.

    :param gpus: the host's :class:`FakeGPU` values.
    :raises ValueError: when an address repeats.
    """
    counts = collections.Counter(gpu.address for gpu in gpus)
    repeated = sorted(addr for addr, count in counts.items() if count > 1)
    if repeated:
        raise ValueError('PCI addresses repeated: %s' % ', '.join(repeated))
