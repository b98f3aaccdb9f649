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
"""Sequences of guests placed by the core alone: nothing is stranded.

A tiny placer does what filter + weigher do in nova: keep the hosts with a
feasible set, sum the scorers with the default multipliers of
``[gpu_passthrough] scorer_multipliers``, take the highest host (nova's
normalisation over hosts keeps this order) and its best set.
"""

from oslotest import base

from gpu_passthrough_filter.conf import scheduler as scheduler_conf
from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.policy import host_index
from gpu_passthrough_filter.policy import scorers
from tests.unit.policy import shapes


def _default(name):
    return [o for o in scheduler_conf.OPTS if o.name == name][0].default


def default_multipliers():
    return {name: float(value)
            for name, value in _default('scorer_multipliers').items()}


def default_scorers():
    """The default scorers, instantiated once for a whole placement run."""
    return {name: scorers.instantiate(scorers.SCORERS[name])
            for name in _default('scorers')}


def place(hosts, counts):
    """Place guests of ``counts`` GPUs one by one.

    :returns: one ``(host name, sorted slots)`` per guest, None if it
        found no host.
    """
    hosts = list(hosts)
    multipliers = default_multipliers()
    every = default_scorers()
    placements = []
    for count in counts:
        req = shapes.request(count)
        for scorer in every.values():
            if hasattr(scorer, 'observe'):
                scorer.observe(req)
        best = None
        for number, host in enumerate(hosts):
            idx = host_index.HostIndex(host)
            fit = feasibility.best_set(idx, req)
            if not fit.ok:
                continue
            weight = scorers.weighted_sum(idx, req, fit.best, every,
                                          multipliers)
            if best is None or weight > best[0]:
                best = (weight, number, fit.best)
        if best is None:
            placements.append(None)
            continue
        _, number, chosen = best
        host = hosts[number]
        busy = [slot for slot, gpu in enumerate(host.gpus)
                if not gpu.free or gpu.address in chosen.addresses]
        hosts[number] = shapes.occupy(host, *busy)
        placements.append((host.name, sorted(
            slot for slot, gpu in enumerate(host.gpus)
            if gpu.address in chosen.addresses)))
    return placements


class PackingTest(base.BaseTestCase):

    def test_small_guests_leave_a_whole_host_for_an_8_gpu_guest(self):
        """Four 1-GPU guests fill dgx 'a' slots 0-3.

        The 8-GPU guest gets all of 'b'.
        """
        placed = place([shapes.dgx_8gpu('a'), shapes.dgx_8gpu('b')],
                       [1, 1, 1, 1, 8])
        self.assertEqual([('a', [0]), ('a', [1]), ('a', [2]), ('a', [3]),
                          ('b', list(range(8)))], placed)

    def test_one_two_one_then_four_fill_one_dgx(self):
        """1, 2, 1 GPUs fill NUMA 0 (the 2-GPU guest on a whole switch).

        The 4-GPU guest gets all of NUMA 1.
        """
        placed = place([shapes.dgx_8gpu('a')], [1, 2, 1, 4])
        self.assertEqual([('a', [0]), ('a', [2, 3]), ('a', [1]),
                          ('a', [4, 5, 6, 7])], placed)

    def test_mixed_sequence_fills_two_dgx_exactly(self):
        """Guests of 2, 1, 4, 1, 4, 2, 2 GPUs fill two dgx hosts exactly.

        Every multi-GPU guest lands on one NUMA node, the 2-GPU guests
        on one switch.
        """
        placed = place([shapes.dgx_8gpu('a'), shapes.dgx_8gpu('b')],
                       [2, 1, 4, 1, 4, 2, 2])
        self.assertEqual([('a', [0, 1]), ('a', [2]), ('a', [4, 5, 6, 7]),
                          ('a', [3]), ('b', [0, 1, 2, 3]), ('b', [4, 5]),
                          ('b', [6, 7])], placed)
