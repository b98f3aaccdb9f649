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
"""IOMMU group verdicts: can a GPU be given to a guest on its own?

VFIO hands a guest whole IOMMU groups. A GPU is *isolated* when every
other member of its group is one of its own functions (HDMI audio, USB-C
controller of the same card) or a bridge, which VFIO tolerates; *shared*
when an endpoint of another device is in the group; *unknown* when this
cannot be proven either way. The rule is one-sided on purpose: a GPU is
never called isolated on missing or unreadable data.

Pure module: no nova, oslo or openstacksdk import.
"""

import collections

from gpu_passthrough_filter import tags

Verdict = collections.namedtuple('Verdict', 'isolation reason vfio_ready')

#: Drivers that leave a function ready for assignment. Variant drivers
#: (``nvgrace-gpu-vfio-pci``, ``mlx5_vfio_pci``) are vfio-pci too.
VFIO_DRIVER_SUFFIXES = ('vfio-pci', 'vfio_pci')


def is_vfio_driver(driver):
    """True when ``driver`` is vfio-pci or one of its variants.

    :param driver: a driver name, or None when unbound.
    """
    return driver is not None and driver.endswith(VFIO_DRIVER_SUFFIXES)


def classify(gpu_functions, group, members, functions, iommu_enabled,
             unreadable_drivers=()):
    """The isolation verdict and vfio readiness of one GPU.

    :param gpu_functions: addresses of the GPU's own functions.
    :param group: the GPU's IOMMU group number, or None.
    :param members: addresses in that group (from ``iommu_groups``).
    :param functions: address -> :class:`~.model.PciFunction` read.
    :param iommu_enabled: whether the host exposes IOMMU groups at all.
    :param unreadable_drivers: addresses whose ``driver`` link could not
        be read: such a function is not known to be unbound.
    :returns: a :class:`Verdict`.
    """
    if not iommu_enabled:
        return Verdict(tags.UNKNOWN, 'IOMMU off or not exposed (no IOMMU '
                       'groups)', False)
    if group is None:
        return Verdict(tags.UNKNOWN, 'no readable iommu_group link', False)
    own = set(gpu_functions)
    gpu_address = min(own)
    if gpu_address not in members:
        return Verdict(tags.UNKNOWN, 'group %s does not list %s'
                       % (group, gpu_address), False)
    disagreeing = _disagreeing(group, members, functions)
    if disagreeing:
        # NOTE: the group's listing and the devices' own iommu_group links
        # are two views of one kernel fact; when they differ neither can
        # be trusted to prove that the GPU is alone.
        return Verdict(tags.UNKNOWN, 'group %s: sysfs disagrees about %s'
                       % (group, ', '.join(disagreeing)), False)
    foreign, unreadable = _foreign_members(own, members, functions)
    ready = not unreadable and _vfio_ready(members, functions,
                                           set(unreadable_drivers))
    if foreign:
        return Verdict(tags.SHARED, 'group %s also holds %s'
                       % (group, ', '.join(foreign)), ready)
    if unreadable:
        return Verdict(tags.UNKNOWN, 'group %s: unreadable member(s) %s'
                       % (group, ', '.join(unreadable)), False)
    return Verdict(tags.ISOLATED, 'group %s holds only the GPU\'s own '
                   'functions and bridges' % group, ready)


def _disagreeing(group, members, functions):
    """Where the group's listing and the devices' own links disagree.

    Listed members whose ``iommu_group`` link names another group, and
    functions whose link names ``group`` but that the group does not
    list; sorted.
    """
    listed = set(members)
    wrong = [address for address in listed
             if address in functions and
             functions[address].iommu_group not in (None, group)]
    unlisted = [address for address, function in functions.items()
                if function.iommu_group == group and address not in listed]
    return sorted(wrong + unlisted)


def _foreign_members(own, members, functions):
    """Endpoints of other devices in the group, and unreadable members."""
    foreign = []
    unreadable = []
    for address in members:
        function = functions.get(address)
        if address in own:
            continue
        if function is None or function.class_code is None:
            unreadable.append(address)
        elif not function.is_bridge:
            foreign.append(address)
    return foreign, unreadable


def _vfio_ready(members, functions, unreadable_drivers):
    """Every endpoint of the group bound to vfio-pci or unbound."""
    for address in members:
        function = functions[address]
        if function.is_bridge:
            continue
        if address in unreadable_drivers:
            return False
        if function.driver is not None and \
                not is_vfio_driver(function.driver):
            return False
    return True
