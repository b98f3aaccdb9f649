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
"""The service options this project recommends, as data.

One source for ``gpu-passthrough-agent placement-conf enable`` and
``nova-conf enable --packing-weights``, the devstack plugin, the simulator,
the functional tests and the admin guide
(doc/source/admin/placement-at-scale.rst and benchmarks.rst, where each
value is measured).

Pure module: no nova, oslo or openstacksdk import.
"""

import collections

Option = collections.namedtuple('Option', 'group name value why')

#: placement.conf of every Placement API host, for nova's PCI in Placement
#: with multi-GPU flavors. Without them an 8-GPU flavor on a free 8-GPU
#: host makes Placement enumerate 8! = 40,320 orderings per host.
PLACEMENT_OPTIONS = (
    Option('workarounds', 'optimize_for_wide_provider_trees', True,
           'prune candidate generation by capacity: an 8-GPU query on an '
           '8-GPU host stops taking minutes'),
    Option('placement', 'max_allocation_candidates', 1000,
           'cap the candidates Placement generates (equal to nova\'s '
           '[scheduler] max_placement_results, so that nova truncates '
           'nothing)'),
    Option('placement', 'allocation_candidates_generation_strategy',
           'breadth-first',
           'spread the capped candidates over the hosts: one per host '
           'first, not a thousand orderings of the first host\'s GPUs'),
)

#: nova.conf of the nova-scheduler hosts: nova's two PCI filters by the
#: names of their fast forms (the same verdicts,
#: :mod:`gpu_passthrough_filter.scheduler.nova_filters`), by nova's name.
#: nova-scheduler's weigher options for a GPU cloud. nova's defaults
#: spread; measured in doc/source/admin/benchmarks.rst (issue 13).
SCHEDULER_WEIGHT_OPTIONS = (
    Option('filter_scheduler', 'ram_weight_multiplier', -1.0,
           'stack by RAM instead of spreading ("negative values will tend '
           'to fill up (stack) hosts as much as possible", nova\'s help): '
           'the spreading default sends every small guest to the host with '
           'the most free RAM, the large host that the next 8-GPU guest '
           'needs whole'),
    Option('filter_scheduler', 'cpu_weight_multiplier', 0.0,
           'neutral: GPUPassthroughWeigher already weighs the vCPUs beside '
           'the free GPUs; stacking by vCPUs as well cost GPUs on the '
           'multi-GPU traces'),
    Option('filter_scheduler', 'io_ops_weight_multiplier', 0.0,
           'neutral: its default (-1) "will tend to distribute the '
           'workload across more hosts" (nova\'s help), the opposite of '
           'keeping blocks whole'),
)

FAST_NOVA_FILTERS = {'PciPassthroughFilter': 'FastPciPassthroughFilter',
                     'NUMATopologyFilter': 'FastNUMATopologyFilter'}

#: nova.conf of the nova-scheduler hosts: ``[scheduler]
#: max_placement_results`` must not cut Placement's capped answer.
NOVA_MAX_PLACEMENT_RESULTS = 1000


def scheduler_weight_overrides():
    """``{(group, name): value}`` of :data:`SCHEDULER_WEIGHT_OPTIONS`."""
    return {(option.group, option.name): option.value
            for option in SCHEDULER_WEIGHT_OPTIONS}


def placement_overrides():
    """``{(group, name): value}`` of :data:`PLACEMENT_OPTIONS`."""
    return {(option.group, option.name): option.value
            for option in PLACEMENT_OPTIONS}
