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
"""Traits and resource classes the agent publishes: one commented list.

Flavors may use these with ``trait:<NAME>=required``, so they are a
published interface: add, never rename. Every trait the agent owns starts
with :data:`TRAIT_PREFIX`; the agent adds and removes only those and never
touches a trait it does not own.

Pure module: no nova, oslo or openstacksdk import.
"""

import re

from gpu_passthrough_filter import tags

#: Prefix of every trait owned by the agent.
TRAIT_PREFIX = 'CUSTOM_GPU_PT_'

#: The host has at least one GPU that is isolated in its IOMMU group and
#: bound to vfio-pci (or unbound): a passthrough GPU can start here.
PASSTHROUGH_READY = TRAIT_PREFIX + 'READY'

#: The host exposes IOMMU groups (the IOMMU is on and visible to the kernel).
IOMMU_ENABLED = TRAIT_PREFIX + 'IOMMU_ENABLED'

#: At least two GPUs of the host share one PCIe switch (P2P capable).
SHARED_SWITCH = TRAIT_PREFIX + 'SHARED_SWITCH'

#: Device trait (PCI-in-Placement): written by the agent into the
#: ``traits`` of a GPU's ``[pci] device_spec`` entry, so that nova itself
#: sets it on the GPU's own resource provider (traits added there from
#: outside are wiped by nova-compute). The GPU's IOMMU group is isolated.
DEVICE_ISOLATED = TRAIT_PREFIX + 'ISOLATED'

#: Device trait (PCI-in-Placement), as :data:`DEVICE_ISOLATED`: the GPU's
#: IOMMU group is shared by several GPUs and is handed out whole.
DEVICE_SHARED_GROUP = TRAIT_PREFIX + 'SHARED_GROUP'

#: Prefix of the per-model trait, e.g. ``CUSTOM_GPU_PT_MODEL_10DE_2330``.
MODEL_PREFIX = TRAIT_PREFIX + 'MODEL_'

#: Prefix of the per-model resource class used with PCI-in-Placement, e.g.
#: ``CUSTOM_GPU_10DE_2330``.
RESOURCE_CLASS_PREFIX = 'CUSTOM_GPU_'

#: Prefixes of the device traits (PCI-in-Placement) that make a GPU's
#: topology visible in Placement, for the fleet commands: its NUMA node,
#: the PCIe switch above it (its upstream port's address) and its IOMMU
#: group. Nova puts device_spec ``traits`` on the device's provider.
NUMA_PREFIX = TRAIT_PREFIX + 'NUMA_'
SWITCH_PREFIX = TRAIT_PREFIX + 'SWITCH_'
GROUP_PREFIX = TRAIT_PREFIX + 'GROUP_'

_NOT_TRAIT_CHARS = re.compile(r'[^A-Z0-9_]')


def _normalize(text):
    return _NOT_TRAIT_CHARS.sub('_', text.upper())


def model_trait(vendor_id, product_id):
    """Trait naming a GPU model present on the host.

    :param vendor_id: PCI vendor id, hex without ``0x`` (``"10de"``).
    :param product_id: PCI device id, hex without ``0x`` (``"2330"``).
    """
    return MODEL_PREFIX + _normalize('%s_%s' % (vendor_id, product_id))


def model_resource_class(vendor_id, product_id):
    """Placement resource class of one GPU model (PCI-in-Placement)."""
    return RESOURCE_CLASS_PREFIX + _normalize(
        '%s_%s' % (vendor_id, product_id))


def topology_traits(numa_node, switch, iommu_group):
    """Device traits naming a GPU's NUMA node, switch and IOMMU group.

    :param numa_node: an int, or None when unknown (no trait).
    :param switch: the switch's upstream port address, or None (no trait).
    :param iommu_group: the group number, or None (no trait).
    :returns: a sorted list of trait names.
    """
    found = []
    if numa_node is not None:
        found.append(NUMA_PREFIX + str(int(numa_node)))
    if switch:
        found.append(SWITCH_PREFIX + _normalize(switch))
    if iommu_group is not None:
        found.append(GROUP_PREFIX + _normalize(str(iommu_group)))
    return sorted(found)


def device_traits(vendor_id, product_id, isolation, numa_node, switch,
                  iommu_group):
    """Every device trait of one GPU's provider, sorted (device_spec).

    :param isolation: the GPU's verdict (``isolated`` or ``shared``).
    """
    isolated = DEVICE_ISOLATED if isolation == tags.ISOLATED else (
        DEVICE_SHARED_GROUP)
    return sorted([model_trait(vendor_id, product_id), isolated]
                  + topology_traits(numa_node, switch, iommu_group))


def read_device_traits(names):
    """What a GPU provider's traits say about it.

    :param names: the provider's trait names.
    :returns: a dict with ``model`` (``"10de:2330"``), ``numa_node`` (int),
        ``switch``, ``iommu_group`` (identifiers) and ``isolation``
        (``isolated``, ``shared`` or None), each None when no trait says.
    """
    facts = dict(model=None, numa_node=None, switch=None, iommu_group=None,
                 isolation=None)
    for name in names:
        if name.startswith(MODEL_PREFIX):
            facts['model'] = name[len(MODEL_PREFIX):].lower().replace('_',
                                                                      ':')
        elif name.startswith(NUMA_PREFIX):
            digits = name[len(NUMA_PREFIX):]
            facts['numa_node'] = int(digits) if digits.isdigit() else None
        elif name.startswith(SWITCH_PREFIX):
            facts['switch'] = name[len(SWITCH_PREFIX):]
        elif name.startswith(GROUP_PREFIX):
            facts['iommu_group'] = name[len(GROUP_PREFIX):]
        elif name == DEVICE_ISOLATED:
            facts['isolation'] = tags.ISOLATED
        elif name == DEVICE_SHARED_GROUP:
            facts['isolation'] = tags.SHARED
    return facts


def is_owned(trait):
    """True for traits this project manages; False for everyone else's."""
    return trait.startswith(TRAIT_PREFIX)
