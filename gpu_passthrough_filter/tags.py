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
"""The names the agent publishes and the scheduler reads: one contract.

The agent writes these as tags of ``[pci] device_spec`` entries in a nova
config file; nova-compute's PCI tracker copies device_spec tags into the
scheduler's ``HostState.pci_stats`` pools as string keys (verified on Nova
34: one pool per device address). Both sides import this module so that a
rename cannot split them. These names are a published interface: never
rename one, add a new one instead.

The value rules live here too, as one :func:`encode` (every writer: the
agent, the simulator, the functional tests' fake computes) and one
:func:`decode` (the scheduler), so that a GPU survives the round trip
(``tests/unit/test_tags.py``).

Pure module: no nova, oslo or openstacksdk import.
"""

import dataclasses
import typing

#: Prefix of every tag this project owns; a pool carrying none of them was
#: not written by the agent ("untagged host").
TAG_PREFIX = 'gpupt_'

#: IOMMU group number of the GPU on its host, e.g. ``"42"``. GPUs that share
#: a group must be given to a guest together.
IOMMU_GROUP = 'gpupt_iommu_group'

#: The agent's isolation verdict for the GPU's IOMMU group, one of
#: :data:`ISOLATION_VERDICTS`.
ISOLATION = 'gpupt_isolation'

#: Identifier of the PCIe switch the GPU sits under (the address of the
#: switch's upstream port), or ``"none"`` when the GPU hangs directly off a
#: root port.
SWITCH = 'gpupt_switch'

#: Identifier of the PCIe root port / root complex the GPU sits under.
#: Decided (issue 16): kept in the contract, ranked by nothing today. It
#: shows in nova's pools and the agent's file for operators, and a
#: root-complex locality level (between one switch and one NUMA node) can
#: use it later without a device_spec change, which would need a
#: nova-compute restart on every host.
ROOT = 'gpupt_root'

#: Host NUMA node of the GPU as sysfs reports it (or as the agent derived it
#: from ``local_cpulist`` when ``numa_node`` is ``-1``). ``"-1"``: unknown.
NUMA_NODE = 'gpupt_numa_node'

#: GPU model, ``<vendor_id>:<product_id>`` in lower-case hex, e.g.
#: ``"10de:2330"``.
MODEL = 'gpupt_model'

#: Number of GPUs in the same IOMMU group (``"1"`` for an isolated GPU).
GROUP_GPUS = 'gpupt_group_gpus'

ALL_TAGS = (IOMMU_GROUP, ISOLATION, SWITCH, ROOT, NUMA_NODE, MODEL,
            GROUP_GPUS)

# IOMMU isolation verdicts.
#: The group holds only this GPU's own functions plus bridges: safe to pass
#: through alone.
ISOLATED = 'isolated'
#: The group holds another endpoint (a second GPU, a NIC, ...): the whole
#: group must go to one guest, or none of it.
SHARED = 'shared'
#: Isolation could not be proven (IOMMU off, missing or unreadable data).
UNKNOWN = 'unknown'
ISOLATION_VERDICTS = (ISOLATED, SHARED, UNKNOWN)
#: Verdicts that prove what a guest gets: the GPU alone, or its whole group.
PROVEN_VERDICTS = frozenset((ISOLATED, SHARED))

#: Value of :data:`SWITCH` for a GPU directly under a root port.
NO_SWITCH = 'none'


@dataclasses.dataclass(frozen=True)
class GPUTags:
    """What the tags of one GPU say, decoded.

    ``None`` means unknown (or, for :attr:`switch`, no switch). The root is
    published for operators and a future root-complex locality level; the
    scheduler's policy does not read it yet.
    """
    iommu_group: typing.Optional[str] = None
    isolation: str = UNKNOWN
    switch: typing.Optional[str] = None
    root: typing.Optional[str] = None
    numa_node: typing.Optional[int] = None
    model: typing.Optional[str] = None
    group_gpus: typing.Optional[int] = None


def encode(gpu_tags):
    """The tags of one GPU as ``device_spec`` holds them (all strings).

    :param gpu_tags: a :class:`GPUTags`; ``root`` is the root complex when
        known, else the root port.
    :returns: ``{tag name: value}`` for every tag of :data:`ALL_TAGS`.
    """
    isolation = (gpu_tags.isolation if gpu_tags.isolation in
                 ISOLATION_VERDICTS else UNKNOWN)
    node = gpu_tags.numa_node
    return {
        IOMMU_GROUP: _or_unknown(gpu_tags.iommu_group),
        ISOLATION: isolation,
        SWITCH: gpu_tags.switch or NO_SWITCH,
        ROOT: gpu_tags.root or UNKNOWN,
        NUMA_NODE: str(node) if node is not None and node >= 0 else '-1',
        MODEL: _or_unknown(gpu_tags.model),
        GROUP_GPUS: _or_unknown(gpu_tags.group_gpus),
    }


def decode(mapping):
    """The :class:`GPUTags` of a pool or device_spec entry, never raising.

    Every value is read defensively: a malformed one means unknown (the
    pools come from each compute's own config file).

    :param mapping: a dict holding (some of) the tags.
    """
    isolation = mapping.get(ISOLATION)
    isolation = isolation.strip().lower() if isinstance(isolation, str) \
        else None
    group_gpus = decode_integer(mapping.get(GROUP_GPUS))
    return GPUTags(
        iommu_group=decode_identifier(mapping.get(IOMMU_GROUP)),
        isolation=isolation if isolation in ISOLATION_VERDICTS else UNKNOWN,
        switch=decode_identifier(mapping.get(SWITCH)),
        root=decode_identifier(mapping.get(ROOT)),
        numa_node=decode_node(mapping.get(NUMA_NODE)),
        model=decode_identifier(mapping.get(MODEL)),
        group_gpus=group_gpus if group_gpus and group_gpus > 0 else None)


def decode_integer(value):
    """An int from an int or a string of ASCII decimal digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    # NOTE: str.isdigit() accepts '¹' and other digits int() refuses;
    # only ASCII decimal digits are a count or a node.
    text = value.strip() if isinstance(value, str) else ''
    digits = text[1:] if text.startswith('-') else text
    if digits and digits.isascii() and digits.isdigit():
        return int(text)
    return None


def decode_node(value):
    """A NUMA node number (>= 0), or None for unknown ("-1", junk)."""
    node = decode_integer(value)
    return node if node is not None and node >= 0 else None


def decode_identifier(value):
    """A lower-case identifier, or None for missing, "none", "unknown"."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    if not value or value in (NO_SWITCH, UNKNOWN, '-1'):
        return None
    return value


def _or_unknown(value):
    return UNKNOWN if value is None else str(value)
