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

One source for ``gpu-passthrough-agent placement-conf enable``, the
devstack plugin, the functional tests and the admin guide
(doc/source/admin/placement-at-scale.rst, where each value is measured).

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
FAST_NOVA_FILTERS = {'PciPassthroughFilter': 'FastPciPassthroughFilter',
                     'NUMATopologyFilter': 'FastNUMATopologyFilter'}

#: nova.conf of the nova-scheduler hosts: ``[scheduler]
#: max_placement_results`` must not cut Placement's capped answer.
NOVA_MAX_PLACEMENT_RESULTS = 1000


def placement_overrides():
    """``{(group, name): value}`` of :data:`PLACEMENT_OPTIONS`."""
    return {(option.group, option.name): option.value
            for option in PLACEMENT_OPTIONS}
