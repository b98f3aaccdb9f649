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
"""Which GPUs the agent offers for passthrough, and why: one decision.

The nova_pci publisher lists the offered GPUs in ``[pci] device_spec`` (and
says in a comment why every other GPU is left out); the placement publisher
derives the host's traits from the same list, so the two never disagree.

Rule: a GPU is offered when its IOMMU group is *isolated*; a GPU of a
*shared* group only when the operator asked for shared groups
(``[nova_pci] include_shared_groups``) and every endpoint of the group is
a function of one of the group's GPUs (the scheduler then hands the group
out whole, by its ``gpupt_group_gpus`` tag). *Unknown* is never offered:
the agent does not offer what it could not prove safe.

A GPU that is *unhealthy* (:mod:`gpu_passthrough_filter.inventory.health`)
or cordoned by the operator (:mod:`.cordon`) must take no new guest. With
PCI in Placement it stays offered and is *held*: the placement publisher
reserves its resource provider, which works at once, without a restart of
nova-compute, and leaves a guest already on it alone. Without Placement
(legacy PCI tracking) it is left out of ``[pci] device_spec``, which nova
reads only at start.

Pure module: no nova, oslo or openstacksdk import.
"""

import dataclasses
import typing

from gpu_passthrough_filter.inventory import health
from gpu_passthrough_filter import tags


@dataclasses.dataclass(frozen=True)
class Choice:
    """The decision about one GPU.

    :param gpu: the :class:`~gpu_passthrough_filter.inventory.model.GPU`.
    :param offered: True when it goes into ``[pci] device_spec``.
    :param reason: why, in words, for the file's comments and the logs.
    :param group_gpus: number of GPUs in its IOMMU group (1 without one).
    :param held: why an offered GPU must take no new guest (unhealthy,
        cordoned), None when it may.
    """
    gpu: typing.Any
    offered: bool
    reason: str
    group_gpus: int
    held: typing.Optional[str] = None


def choose(inventory, include_shared_groups=False, hold_in_placement=False):
    """Decide for every GPU of ``inventory``, sorted by address.

    :param inventory: a :class:`~gpu_passthrough_filter.inventory.model.
        HostInventory`.
    :param include_shared_groups: offer GPUs of groups shared only by GPUs.
    :param hold_in_placement: keep held GPUs offered (PCI in Placement:
        the placement publisher reserves them) instead of leaving them out.
    :returns: a list of :class:`Choice`.
    """
    gpus_by_group = {}
    for gpu in inventory.gpus:
        if gpu.iommu_group is not None:
            gpus_by_group.setdefault(gpu.iommu_group, []).append(gpu)
    choices = []
    for gpu in sorted(inventory.gpus, key=lambda item: item.address):
        mates = gpus_by_group.get(gpu.iommu_group, [gpu])
        offered, reason = _decide(inventory, gpu, mates,
                                  include_shared_groups)
        held = held_reason(gpu) if offered else None
        if held and not hold_in_placement:
            offered, reason, held = False, held, None
        choices.append(Choice(gpu, offered, reason, len(mates), held))
    return choices


def held_reason(gpu):
    """Why ``gpu`` must take no new guest now, or None.

    :param gpu: a :class:`~gpu_passthrough_filter.inventory.model.GPU`.
    """
    reasons = []
    if gpu.cordon:
        reasons.append(gpu.cordon)
    if gpu.health == health.UNHEALTHY:
        reasons.append('unhealthy: %s' % '; '.join(gpu.health_reasons))
    return '; '.join(reasons) or None


def offers(isolation, include_shared_groups=False):
    """The rule on the verdict alone: may a GPU of this group be offered?

    :func:`choose` adds the checks that need the whole inventory (ids
    readable, no foreign endpoint in a shared group); the simulator, whose
    GPUs have no inventory, applies this part.

    :param isolation: one of :data:`~gpu_passthrough_filter.tags.
        ISOLATION_VERDICTS`.
    :param include_shared_groups: ``[nova_pci] include_shared_groups``.
    """
    return isolation == tags.ISOLATED or (
        isolation == tags.SHARED and include_shared_groups)


def offered(choices):
    """The GPUs of ``choices`` that are offered, in order."""
    return [choice.gpu for choice in choices if choice.offered]


def _decide(inventory, gpu, mates, include_shared_groups):
    if not gpu.vendor or not gpu.device:
        return False, 'vendor or device id unreadable'
    group = gpu.iommu_group
    if gpu.isolation == tags.ISOLATED:
        return True, 'IOMMU group %s is isolated' % group
    if gpu.isolation == tags.UNKNOWN:
        why = gpu.isolation_reason or 'isolation could not be proven'
        return False, 'isolation unknown: %s' % why
    strangers = _foreign_endpoints(inventory, group, mates)
    if strangers:
        return False, ('IOMMU group %s is shared with %s, which is not a '
                       'GPU' % (group, ', '.join(strangers)))
    others = ', '.join(mate.address for mate in mates
                       if mate.address != gpu.address)
    if not offers(gpu.isolation, include_shared_groups):
        return False, ('IOMMU group %s is shared with GPU(s) %s; set '
                       '[nova_pci] include_shared_groups to offer the '
                       'group whole' % (group, others))
    return True, ('IOMMU group %s is shared only by GPUs (%s); offered '
                  'whole ([nova_pci] include_shared_groups)' % (group, others))


def _foreign_endpoints(inventory, group, mates):
    """Endpoints of ``group`` that are no function of its GPUs, sorted.

    A member the agent could not read counts as foreign: it cannot be
    proven to be a GPU's.
    """
    own = {address for mate in mates
           for address in (mate.functions or [mate.address])}
    foreign = []
    for address in inventory.iommu_groups.get(group, []):
        function = inventory.function(address)
        if address in own or (function is not None and function.is_bridge):
            continue
        foreign.append(address)
    return sorted(foreign)
