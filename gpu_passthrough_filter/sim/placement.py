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
"""A model of Placement 16's ``GET /allocation_candidates`` for GPUs.

Nova's scheduler filters only the hosts Placement returns, each with its
allocation candidates. The simulator answers that query from the
``HostState`` usage (equal to Placement's view when every claim
succeeds), the way Placement 16 builds its answer
(``placement/objects/allocation_candidate.py``), checked against the real
Placement in ``tests/functional/test_sim_placement.py``:

* VCPU and MEMORY_MB: ``used + asked <= total * allocation_ratio``;
* without PCI in Placement: one candidate per host (the root provider);
* with PCI in Placement: nova asks one request group ``<pci request
  id>-<i>`` per GPU (one unit each). Placement lists, per group, the free
  providers that match it and takes the Cartesian product of the lists per
  host, dropping products that use a provider twice (its capacity is 1):
  every *ordering* of every free set (56 for 2 GPUs of 8, 40,320 for 8 of
  8). ``[workarounds] optimize_for_wide_provider_trees`` prunes a prefix
  as soon as it exceeds capacity instead of building the whole product
  first; the candidates are the same, the work is not;
* ``[placement] allocation_candidates_generation_strategy``: depth-first
  takes every candidate of one host before the next, breadth-first one of
  each host in turn; ``[placement] max_allocation_candidates`` stops the
  generation;
* Placement keeps the candidates in a Python set and returns them in its
  iteration order (string hashes: it changes with every Placement
  process); nova's ``limit`` (``[scheduler] max_placement_results``) then
  keeps the first ones. The model shuffles with its seeded random
  generator; likewise the order of each group's provider list and of the
  hosts, which real Placement takes from its database and sets, is one
  seeded permutation per run (stable across requests, as it is within one
  Placement process).

:attr:`Answer.steps` counts Placement's work: the product positions
visited (every position up to the last candidate taken without the
optimization; every prefix tried with it).
"""

import dataclasses
import heapq
import itertools
import math
import random
import typing

from gpu_passthrough_filter import recommended
from gpu_passthrough_filter.sim import nova_env

#: Strategies of ``allocation_candidates_generation_strategy``.
DEPTH_FIRST = 'depth-first'
BREADTH_FIRST = 'breadth-first'

#: More candidates than this in one answer: the simulator refuses the
#: configuration (real Placement takes minutes or hours for it).
MAX_ENUMERATED = 100000


class UnboundedQuery(RuntimeError):
    """The configuration makes Placement enumerate too many candidates."""


@dataclasses.dataclass(frozen=True)
class PlacementConfig:
    """The Placement options that shape allocation candidates.

    :param max_allocation_candidates: ``[placement]
        max_allocation_candidates`` (-1: no limit).
    :param strategy: ``[placement]
        allocation_candidates_generation_strategy``.
    :param optimize_wide_trees: ``[workarounds]
        optimize_for_wide_provider_trees``.
    """
    max_allocation_candidates: int = -1
    strategy: str = DEPTH_FIRST
    optimize_wide_trees: bool = False

    @classmethod
    def from_options(cls, options):
        """From ``{(group, name): value}`` (Placement's own option names)."""
        return cls(
            max_allocation_candidates=int(options.get(
                ('placement', 'max_allocation_candidates'), -1)),
            strategy=options.get(
                ('placement', 'allocation_candidates_generation_strategy'),
                DEPTH_FIRST),
            optimize_wide_trees=bool(options.get(
                ('workarounds', 'optimize_for_wide_provider_trees'), False)))


#: Placement 16's defaults.
DEFAULT = PlacementConfig()
#: The project's recommendation (:mod:`gpu_passthrough_filter.recommended`).
RECOMMENDED = PlacementConfig.from_options(
    recommended.placement_overrides())


@dataclasses.dataclass
class Answer:
    """One modelled ``GET /allocation_candidates`` answer.

    :param candidates: ``{host uuid: [candidate, ...]}``, hosts in the
        order of the answer.
    :param generated: candidates Placement built before nova's limit.
    :param steps: Placement's work (see the module docstring).
    """
    candidates: typing.Dict[str, list]
    generated: int = 0
    steps: int = 0


def fits_resources(state, spec):
    """Placement's VCPU/MEMORY_MB check against the host's usage."""
    vcpu_cap = state.vcpus_total * (state.cpu_allocation_ratio or 1.0)
    if state.vcpus_used + spec.vcpus > vcpu_cap:
        return False
    # NOTE: Placement's capacity is (total - reserved) x ratio; the host
    # state counts the reserved RAM as used (the resource tracker does).
    reserved = min(nova_env.CONF.reserved_host_memory_mb,
                   state.total_usable_ram_mb)
    ram_cap = ((state.total_usable_ram_mb - reserved) *
               (state.ram_allocation_ratio or 1.0))
    ram_used = state.total_usable_ram_mb - state.free_ram_mb - reserved
    return ram_used + spec.memory_mb <= ram_cap


class PlacementModel(object):
    """Placement's answers for one simulated fleet.

    :param config: a :class:`PlacementConfig`.
    :param fleet_traits: ``{rp_uuid: set(traits)}`` of the GPU providers
        (:func:`provider_traits`).
    :param seed: seed of the orders real Placement takes from hashes.
    """

    def __init__(self, config=RECOMMENDED, fleet_traits=None, seed=0):
        self.config = config
        self.fleet_traits = fleet_traits or {}
        self.random = random.Random(seed)
        self._rank = {}

    def _order(self, key):
        """A stable pseudo-random rank of a provider or host uuid."""
        rank = self._rank.get(key)
        if rank is None:
            rank = self._rank[key] = self.random.random()
        return rank

    def allocation_candidates(self, states, spec, pci_in_placement,
                              max_results=1000):
        """The modelled answer for ``spec`` over ``states``.

        :param states: the ``HostState`` list.
        :param spec: the ``RequestSpec``.
        :param pci_in_placement: whether GPUs are Placement providers.
        :param max_results: ``[scheduler] max_placement_results``.
        :returns: an :class:`Answer`.
        :raises UnboundedQuery: for more than :data:`MAX_ENUMERATED`
            candidates (Placement's defaults and an 8-GPU flavor).
        """
        wants_pci = bool(pci_in_placement and spec.pci_requests and
                         spec.pci_requests.requests)
        viable = sorted((s for s in states if fits_resources(s, spec)),
                        key=lambda s: self._order(s.uuid))
        generators, sizes, answer = [], [], Answer({})
        for rank, state in enumerate(viable):
            if wants_pci:
                lists = self.group_lists(state, spec)
                if not _enough(lists):
                    continue
                generators.append(
                    self._host_generator(rank, state, spec, lists, answer))
                sizes.append(math.prod(len(free) for _, free in lists))
            else:
                generators.append(
                    iter([(1, rank, state.uuid, _candidate(state, spec, ()))]))
                sizes.append(1)
        # NOTE: breadth-first is a round robin over each host's product
        # iterator: without the optimization the invalid products take
        # their turn too, so a candidate comes at the round of its product
        # position (its key); with it, at the round of its ordinal.
        merged = (itertools.chain(*generators)
                  if self.config.strategy == DEPTH_FIRST
                  else heapq.merge(*generators))
        cap = self.config.max_allocation_candidates
        if cap >= 0:
            merged = itertools.islice(merged, cap)
        built, last_round = [], 0
        for key, _rank, host_uuid, candidate in merged:
            built.append((host_uuid, candidate))
            last_round = key
            if len(built) > MAX_ENUMERATED:
                raise UnboundedQuery(
                    'Placement would build more than %d allocation '
                    'candidates for this request (every ordering of every '
                    'free GPU set); real Placement takes minutes here. Use '
                    'the recommended Placement configuration.'
                    % MAX_ENUMERATED)
        if (wants_pci and self.config.strategy == BREADTH_FIRST and
                not self.config.optimize_wide_trees):
            # Every host walked its product up to the last round.
            answer.steps = sum(min(last_round, size) for size in sizes)
        answer.generated = len(built)
        self.random.shuffle(built)
        for host_uuid, candidate in built[:max_results]:
            answer.candidates.setdefault(host_uuid, []).append(candidate)
        return answer

    def group_lists(self, state, spec):
        """``[(group name, [free provider, ...])]`` in Placement's order."""
        lists = []
        for request in spec.pci_requests.requests:
            free = self._free_providers(state, request.spec[0])
            for index in range(request.count):
                lists.append(('%s-%d' % (request.request_id, index), free))
        return lists

    def _free_providers(self, state, spec_entry):
        wanted = set(filter(None, (spec_entry.get('traits') or '').split(',')))
        providers = []
        for pool in state.pci_stats.pools:
            if pool.get('count', 0) < 1 or not pool.get('rp_uuid'):
                continue
            traits = self.fleet_traits.get(pool['rp_uuid'], set())
            if wanted and not wanted <= traits:
                continue
            providers.append(pool['rp_uuid'])
        return sorted(providers, key=self._order)

    def _host_generator(self, rank, state, spec, lists, answer):
        """``(round, rank, host uuid, candidate)`` of one host in order."""
        names = [name for name, _ in lists]
        choices = [providers for _, providers in lists]
        if self.config.optimize_wide_trees:
            products = enumerate(_pruned_product(choices, answer), 1)
        else:
            products = _filtered_product(choices, answer)
        for key, choice in products:
            yield (key, rank, state.uuid,
                   _candidate(state, spec, zip(names, choice)))


def _enough(lists):
    """Placement's capacity pre-check: enough distinct free providers."""
    providers = set()
    for _, free in lists:
        if not free:
            return False
        providers.update(free)
    return len(providers) >= len(lists)


def _candidate(state, spec, group_providers):
    """One allocation request as Placement writes it (1.34 mappings)."""
    mappings = {'': [state.uuid]}
    allocations = {state.uuid: {'resources': {
        'VCPU': spec.vcpus, 'MEMORY_MB': spec.memory_mb}}}
    for name, provider in group_providers:
        mappings[name] = [provider]
        allocations[provider] = {'resources': {
            nova_env.GPU_RESOURCE_CLASS: 1}}
    return {'mappings': mappings, 'allocations': allocations}


def _filtered_product(choices, answer):
    """The product filtered afterwards: Placement without the optimization.

    Yields ``(product position, providers)``.

    Every product position up to a candidate is work, kept or not. Groups
    with one provider list (one alias) walk the injective products
    directly (``itertools.permutations`` yields them in product order);
    the positions skipped are counted arithmetically.
    """
    sizes = [len(c) for c in choices]
    if all(c is choices[0] for c in choices):
        indexed = itertools.permutations(range(sizes[0]), len(choices))
    else:
        indexed = (i for i in itertools.product(*[range(n) for n in sizes])
                   if len({choices[g][j] for g, j in enumerate(i)}) ==
                   len(i))
    walked = 0
    for indexes in indexed:
        position = _position(indexes, sizes)
        answer.steps += position - walked
        walked = position
        yield position, [choices[g][j] for g, j in enumerate(indexes)]


def _position(indexes, sizes):
    """1-based position of ``indexes`` in ``itertools.product`` order."""
    position = 0
    for index, size in zip(indexes, sizes):
        position = position * size + index
    return position + 1


def _pruned_product(choices, answer):
    """Placement with ``optimize_for_wide_provider_trees``.

    Depth-first over the groups; a prefix is dropped as soon as it reuses
    a provider.
    """
    chosen, used = [], set()

    def extend(level):
        if level == len(choices):
            yield list(chosen)
            return
        for provider in choices[level]:
            answer.steps += 1
            if provider in used:
                continue
            chosen.append(provider)
            used.add(provider)
            yield from extend(level + 1)
            used.discard(provider)
            chosen.pop()

    return extend(0)


def orderings(free, count):
    """Candidates Placement builds for ``count`` GPUs of ``free``."""
    if count > free:
        return 0
    return math.perm(free, count)


def provider_traits(fleet, aliases):
    """``{rp_uuid: set(traits)}`` of every GPU provider of the fleet."""
    return {nova_env.gpu_rp_uuid(host, gpu):
            set(aliases.traits_of(gpu.model.name))
            for host in fleet.hosts for gpu in host.gpus}
