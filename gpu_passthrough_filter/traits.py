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


def is_owned(trait):
    """True for traits this project manages; False for everyone else's."""
    return trait.startswith(TRAIT_PREFIX)
