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
"""Property tests of the policy core on random hosts and requests.

The rules are checked by :func:`valid`, written again here from the
policy's definition (not from the code), and by brute force over every
subset of small hosts: find_sets finds a set exactly when one exists.
"""

import itertools

import hypothesis
from hypothesis import strategies as st
from oslotest import base

from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.policy import host_index
from gpu_passthrough_filter.policy import matching
from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter.policy import scorers
from gpu_passthrough_filter import tags

MODELS = ('10de:2330', '10de:20b5')
SETTINGS = hypothesis.settings(max_examples=100, deadline=None)


@st.composite
def gpus(draw):
    count = draw(st.integers(4, 9) | st.integers(0, 9))
    result = []
    for slot in range(count):
        result.append(model.GPUView(
            address='0000:%02x:00.0' % slot,
            model=draw(st.sampled_from(MODELS)),
            numa_node=draw(st.sampled_from((None, 0, 1))),
            iommu_group=draw(st.sampled_from(
                (str(slot), 'g0', 'g1', None, 'g2', str(slot)))),
            isolation=draw(st.sampled_from(
                (tags.ISOLATED, tags.ISOLATED, tags.SHARED, tags.UNKNOWN))),
            switch=draw(st.sampled_from((None, 's0', 's1', 's2'))),
            free=draw(st.sampled_from((True, True, True, False)))))
    return tuple(result)


optional_amount = st.one_of(st.none(), st.floats(0, 1024))


@st.composite
def hosts(draw):
    return model.HostView(
        'h', draw(gpus()), draw(optional_amount), draw(optional_amount),
        draw(optional_amount), draw(optional_amount))


@st.composite
def requests(draw):
    demands = tuple(
        model.GPUDemand(draw(st.sampled_from((2, 1, 1, 2, 3, 4, 0))),
                        frozenset(draw(st.sets(st.sampled_from(MODELS),
                                               max_size=2))))
        for _ in range(draw(st.sampled_from((1, 1, 1, 2, 0)) |
                            st.just(1))))
    return model.GPURequest(
        demands, draw(st.sampled_from(model.Isolation)),
        draw(st.sampled_from(model.NumaAffinity)),
        draw(st.sampled_from(model.Locality)),
        draw(st.floats(0, 256)), draw(st.floats(0, 4096)))


def valid(host, request, addresses):
    """The policy, restated: is ``addresses`` a valid set for request?"""
    by_address = {g.address: g for g in host.gpus}
    chosen = [by_address[a] for a in addresses]
    demands = [d for d in request.demands if d.count > 0]
    if not demands:
        return not chosen
    return (len(chosen) == sum(d.count for d in demands) and
            all(_gpu_allowed(host, request, gpu, addresses)
                for gpu in chosen) and
            _placement_allowed(request, chosen) and
            _models_fit(chosen, demands))


def _gpu_allowed(host, request, gpu, addresses):
    # Free, no busy group mate; strict: proven isolation, whole groups.
    mates = [g for g in host.gpus if gpu.iommu_group is not None and
             g.iommu_group == gpu.iommu_group]
    if not gpu.free or any(not mate.free for mate in mates):
        return False
    if request.isolation != model.Isolation.STRICT:
        return True
    if gpu.isolation == tags.UNKNOWN:
        return False
    if gpu.isolation == tags.SHARED and gpu.iommu_group is None:
        return False
    return all(mate.address in addresses for mate in mates)


def _placement_allowed(request, chosen):
    # numa_affinity=required; locality for two GPUs or more.
    nodes = {g.numa_node for g in chosen}
    switches = {g.switch for g in chosen}
    one_node = len(nodes) == 1 and None not in nodes
    one_switch = len(switches) == 1 and None not in switches
    if request.numa_affinity == model.NumaAffinity.REQUIRED and not one_node:
        return False
    if len(chosen) < 2:
        return True
    if request.locality == model.Locality.NUMA:
        return one_node
    if request.locality == model.Locality.SWITCH:
        return one_switch
    return True


def _models_fit(chosen, demands):
    # Brute force: try every assignment of GPUs to demands.
    for choice in itertools.product(range(len(demands)), repeat=len(chosen)):
        counts = [0] * len(demands)
        for gpu, i in zip(chosen, choice):
            if demands[i].models and gpu.model not in demands[i].models:
                break
            counts[i] += 1
        else:
            if counts == [d.count for d in demands]:
                return True
    return not chosen and not demands


def any_valid_set(host, request):
    addresses = sorted({g.address for g in host.gpus})
    need = request.gpu_count
    return any(valid(host, request, frozenset(combo))
               for combo in itertools.combinations(addresses, need))


class FindSetsPropertyTest(base.BaseTestCase):

    @SETTINGS
    @hypothesis.given(hosts(), requests())
    def test_sets_are_valid_and_found_exactly_when_one_exists(self, host,
                                                              request):
        fit = feasibility.find_sets(host, request, limit=20)
        for gpu_set in fit.sets:
            self.assertTrue(valid(host, request, gpu_set.addresses),
                            gpu_set)
            result = feasibility.evaluate_set(host, request,
                                              gpu_set.addresses)
            self.assertTrue(result.ok, result.reason)
            self.assertEqual(gpu_set.quality, result.quality)
        if request.wants_gpus:
            self.assertEqual(any_valid_set(host, request), fit.ok,
                             fit.reason)
            self.assertEqual(fit.ok, bool(fit.sets))
        qualities = [s.quality for s in fit.sets]
        self.assertEqual(sorted(qualities, reverse=True), qualities)

    @SETTINGS
    @hypothesis.given(hosts(), requests(), st.data())
    def test_evaluate_set_agrees_with_the_rules(self, host, request, data):
        addresses = sorted({g.address for g in host.gpus})
        need = request.gpu_count
        if not addresses:
            chosen = set()
        elif need <= len(addresses) and data.draw(st.booleans()):
            chosen = data.draw(st.sets(st.sampled_from(addresses),
                                       min_size=need, max_size=need))
        else:
            chosen = data.draw(st.sets(st.sampled_from(addresses)))
        result = feasibility.evaluate_set(host, request, chosen)
        self.assertEqual(valid(host, request, frozenset(chosen)),
                         result.ok, result.reason)
        self.assertTrue(0.0 <= result.quality <= 1.0)

    @SETTINGS
    @hypothesis.given(hosts(), requests())
    def test_scorers_return_floats_in_unit_range(self, host, request):
        idx = host_index.HostIndex(host)
        chosen = feasibility.best_set(idx, request).best
        for name, plugin in scorers.SCORERS.items():
            scorer = scorers.instantiate(plugin)
            if hasattr(scorer, 'observe'):
                scorer.observe(request)
            for candidate in (chosen, None):
                value = scorer(idx, request, candidate)
                self.assertIsInstance(value, float, name)
                self.assertTrue(0.0 <= value <= 1.0, (name, value))

    @SETTINGS
    @hypothesis.given(hosts(), requests())
    def test_usable_gpus_obey_isolation(self, host, request):
        idx = host_index.HostIndex(host)
        for gpu in (idx.gpus[a] for a in idx.usable_for(request.isolation)):
            self.assertTrue(gpu.free)
            if request.isolation == model.Isolation.STRICT:
                self.assertNotEqual(tags.UNKNOWN, gpu.isolation)


class CoverablePropertyTest(base.BaseTestCase):
    """``coverable`` (can the GPUs fill the demands) against brute force."""

    @SETTINGS
    @hypothesis.given(
        st.dictionaries(st.sampled_from(MODELS + ('10de:26b9',)),
                        st.integers(0, 4)),
        st.lists(st.tuples(st.integers(1, 4),
                           st.sets(st.sampled_from(MODELS + ('10de:26b9',)),
                                   max_size=2)), min_size=1, max_size=3))
    def test_agrees_with_trying_every_assignment(self, models, asks):
        demands = [model.GPUDemand(count, frozenset(accepted))
                   for count, accepted in asks]
        pool = [m for m, n in sorted(models.items()) for _ in range(n)]
        need = sum(d.count for d in demands)
        brute = any(_models_fit(list(chosen), demands)
                    for chosen in itertools.combinations(
                        [model.GPUView('a%d' % i, m) for i, m in
                         enumerate(pool)], need))
        self.assertEqual(brute, matching.coverable(models, demands))
