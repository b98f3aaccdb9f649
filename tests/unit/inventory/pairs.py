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
"""How discovered GPUs relate, for the discovery tests to state it.

The scheduler ranks sets with its own rule (:func:`gpu_passthrough_filter.
policy.feasibility.set_level`); these helpers only phrase what a captured
or generated tree must yield, pair by pair and switch by switch.
"""

import enum


class Locality(enum.IntEnum):
    """How close two GPUs are; lower is closer (faster peer-to-peer)."""
    #: Under one PCIe switch: P2P traffic stays in the switch.
    SAME_SWITCH = 0
    #: Same root complex (host bridge), different or no switches.
    SAME_ROOT = 1
    #: Same NUMA node, different root complexes.
    SAME_NUMA = 2
    #: Different NUMA nodes, or a NUMA node is unknown: traffic may cross
    #: the inter-socket link, and nothing better can be proven.
    CROSS_NUMA = 3


def pair_locality(gpu_a, gpu_b):
    """How close two GPUs are, as a :class:`Locality`.

    Rule: same switch beats same root complex beats same NUMA node; any
    unknown that could hide a cross-socket path counts as cross-NUMA.

    :param gpu_a: a :class:`~.model.GPU`.
    :param gpu_b: another one.
    """
    if gpu_a.switch is not None and gpu_a.switch == gpu_b.switch:
        return Locality.SAME_SWITCH
    if gpu_a.root_complex is not None and \
            gpu_a.root_complex == gpu_b.root_complex:
        return Locality.SAME_ROOT
    if gpu_a.numa_node is not None and gpu_a.numa_node == gpu_b.numa_node:
        return Locality.SAME_NUMA
    return Locality.CROSS_NUMA


def switch_groups(gpus):
    """GPUs by switch: upstream port address -> sorted GPU addresses.

    GPUs directly under a root port are left out.

    :param gpus: :class:`~.model.GPU` objects.
    """
    groups = {}
    for gpu in gpus:
        if gpu.switch is not None:
            groups.setdefault(gpu.switch, []).append(gpu.address)
    return {switch: sorted(members) for switch, members in groups.items()}
