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
"""Which GPU sets of one host can a request get, and which is best.

Two entry points, pure functions of plain data:

* :func:`find_sets` / :func:`best_set`: build the best sets directly, block
  by block, never by enumerating combinations. The candidate scopes are
  every PCIe switch, every NUMA node and the whole host; in each scope the
  units (IOMMU groups under strict isolation, GPUs otherwise) are taken in
  best-fit order (:meth:`.HostIndex.units`), and the sets are ranked.
* :func:`evaluate_set`: check a given set (e.g. a Placement allocation
  candidate) in O(len(set)) once the :class:`.HostIndex` exists.

Rank of sets (most important first): one NUMA node when the request
prefers it, fewer stranded GPUs, fewer fully free aligned blocks broken,
better PCIe locality, tighter fit. :attr:`GPUSet.quality` encodes that
order as a float so that sets of one host sort by it.

Which GPUs a demand accepts, and whether GPUs can be shared out among a
request's demands, is :mod:`.matching`; the CPU and RAM a host keeps for
its free GPUs is :mod:`.reservation`.

Pure module: no nova, oslo or openstacksdk import.
"""

import collections
import dataclasses
import enum
import logging
import typing

from gpu_passthrough_filter.policy import host_index
from gpu_passthrough_filter.policy import matching
from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter import tags

#: How many units the exact search may visit per scope before it gives up
#: on that scope (the greedy first try succeeds without backtracking for
#: hosts whose groups are single GPUs; only odd shared-group mixes search).
_SEARCH_BUDGET = 20000

# NOTE: the standard library's logger, not oslo.log: the core imports no
# oslo; nova's oslo.log configuration handles it like any other logger.
LOG = logging.getLogger(__name__)

#: Default number of ranked sets :func:`find_sets` returns.
DEFAULT_LIMIT = 8


class SetLocality(enum.IntEnum):
    """How close the GPUs of a set are to each other (higher is better)."""
    #: GPUs on different NUMA nodes, or a NUMA node is unknown.
    CROSS = 0
    #: All GPUs on one known NUMA node.
    NUMA = 1
    #: Two or more GPUs all under one PCIe switch (peer-to-peer capable).
    SWITCH = 2


@dataclasses.dataclass(frozen=True)
class GPUSet:
    """One feasible set of GPUs for a request, with the facts that rank it.

    :param addresses: PCI addresses of the GPUs.
    :param level: :class:`SetLocality` of the set.
    :param numa_node: the one known NUMA node of all GPUs, or None.
    :param switch: the one switch of all GPUs, or None.
    :param stranded: free GPUs made unusable by this set (IOMMU group
        mates left behind; only possible with isolation ``any``).
    :param broken: GPUs in fully free aligned blocks (switch, NUMA node,
        host) that the set breaks without taking them whole.
    :param leftover: free GPUs left in the switches and NUMA nodes the set
        touches (lower is a tighter fit).
    :param quality: the rank of the set on its host as a float in
        [0.0, 1.0], higher is better; comparable only between sets of one
        host.
    """
    addresses: typing.FrozenSet[str]
    level: SetLocality
    numa_node: typing.Optional[int]
    switch: typing.Optional[str]
    stranded: int
    broken: int
    leftover: int
    quality: float

    def __len__(self):
        return len(self.addresses)

    def sorted_addresses(self):
        return sorted(self.addresses)


@dataclasses.dataclass(frozen=True)
class Fit:
    """What :func:`find_sets` found on one host.

    :param ok: True when the host can serve the request (always True for
        a request without GPUs, with no sets).
    :param sets: feasible :class:`GPUSet` objects, best first.
    :param reason: why the host was rejected, with numbers; a short
        summary when it fits.
    """
    ok: bool
    sets: typing.Tuple[GPUSet, ...] = ()
    reason: str = ''

    @property
    def best(self):
        """The best :class:`GPUSet`, or None."""
        return self.sets[0] if self.sets else None

    def __bool__(self):
        return self.ok


#: The empty set: what a request without GPUs gets.
_NO_GPU_SET = GPUSet(frozenset(), SetLocality.CROSS, None, None, 0, 0, 0,
                     1.0)


class SetEvaluation(typing.NamedTuple):
    """:func:`evaluate_set` result."""
    ok: bool
    reason: str
    #: :attr:`GPUSet.quality` of the set, 0.0 when not ok.
    quality: float
    #: The :class:`GPUSet` itself, None when not ok.
    gpu_set: typing.Optional[GPUSet] = None


# -- topology scores: pair -> set ------------------------------------------

def set_level(gpus):
    """Locality of a set of GPUs as a :class:`SetLocality`.

    Rule: the weakest pair decides; a single GPU has no peers, so it is
    NUMA when its NUMA node is known and CROSS otherwise. Computed from
    the set's switches and NUMA nodes in O(len(gpus)), which equals the
    weakest of its pairs (same known switch, then same known NUMA node).

    :param gpus: an iterable of :class:`~.model.GPUView`.
    """
    gpus = list(gpus)
    nodes = {gpu.numa_node for gpu in gpus}
    one_numa = len(nodes) == 1 and None not in nodes
    if len(gpus) >= 2:
        switches = {gpu.switch for gpu in gpus}
        if len(switches) == 1 and None not in switches:
            return SetLocality.SWITCH
    return SetLocality.NUMA if one_numa else SetLocality.CROSS


# -- set facts and quality ---------------------------------------------------

def _facts(idx, request, addresses):
    # Facts of a feasible set; O(len(addresses)).
    gpus = [idx.gpus[a] for a in addresses]
    level = set_level(gpus)
    nodes = {gpu.numa_node for gpu in gpus}
    switches = {gpu.switch for gpu in gpus}
    numa_node = nodes.pop() if len(nodes) == 1 else None
    switch = switches.pop() if len(switches) == 1 else None
    stranded = sum(1 for _mate in stranded_mates(idx, addresses))
    broken, leftover = _broken_and_leftover(idx, gpus)
    one_numa = numa_node is not None
    numa_penalty = int(
        request.numa_affinity == model.NumaAffinity.PREFERRED and
        not one_numa)
    quality = _quality(idx.total, numa_penalty, stranded, broken, level,
                       leftover)
    return GPUSet(frozenset(addresses), level, numa_node, switch, stranded,
                  broken, leftover, quality)


def stranded_mates(idx, addresses):
    """The free GPUs a set of GPUs leaves unusable, one address each.

    Rule: a free, usable GPU whose IOMMU group the set touches but does
    not take is lost until the guest leaves.

    :param idx: the host's :class:`~.host_index.HostIndex`.
    :param addresses: the set's PCI addresses (a set or frozenset).
    """
    for key in {idx.group_key[a] for a in addresses}:
        for mate in idx.group_members[key]:
            if mate not in addresses and mate in idx.usable:
                yield mate


def _broken_and_leftover(idx, gpus):
    # Rule: a fully free switch, NUMA node or host that the set touches
    # without taking it whole is "broken" for the size of the block (the
    # big guests that block could have held); leftover counts free GPUs
    # remaining in the touched switches and NUMA nodes.
    per_switch = {}
    per_numa = {}
    for gpu in gpus:
        if gpu.switch is not None:
            per_switch[gpu.switch] = per_switch.get(gpu.switch, 0) + 1
        if gpu.numa_node is not None:
            per_numa[gpu.numa_node] = per_numa.get(gpu.numa_node, 0) + 1
    broken = leftover = 0
    for switch, taken in per_switch.items():
        free = idx.switch_free[switch]
        leftover += free - taken
        if free == idx.switch_total[switch] and taken < free:
            broken += free
    for node, taken in per_numa.items():
        free = idx.numa_free[node]
        leftover += free - taken
        if free == idx.numa_total[node] and taken < free:
            broken += free
    if idx.host_fully_free and len(gpus) < idx.total:
        broken += idx.total
    return broken, max(leftover, 0)


def _quality(total, numa_penalty, stranded, broken, level, leftover):
    # The rank key as one float: a mixed-radix number of the penalties in
    # rank order, each below its radix, scaled to [0, 1].
    n = max(total, 1)
    digits = ((numa_penalty, 2), (stranded, n + 1), (broken, 3 * n + 1),
              (SetLocality.SWITCH - level, 3), (leftover, 2 * n + 1))
    penalty = 0
    largest = 0
    for value, radix in digits:
        penalty = penalty * radix + min(max(int(value), 0), radix - 1)
        largest = largest * radix + radix - 1
    return 1.0 - float(penalty) / largest


def _rank_key(gpu_set):
    return (-gpu_set.quality, gpu_set.sorted_addresses())


# -- policy checks (shared by find_sets and evaluate_set) -------------------

def _locality_required(request):
    # Locality applies to multi-GPU guests only.
    if request.gpu_count < 2:
        return model.Locality.ANY
    return model.Locality(request.locality)


def _policy_violation(request, gpus):
    """Why ``gpus`` break the NUMA/locality policy, or ''."""
    nodes = {gpu.numa_node for gpu in gpus}
    one_numa = len(nodes) == 1 and None not in nodes
    if request.numa_affinity == model.NumaAffinity.REQUIRED and not one_numa:
        return 'GPUs on NUMA nodes %s, not one known node' % _show(nodes)
    locality = _locality_required(request)
    if locality == model.Locality.NUMA and not one_numa:
        return 'GPUs on NUMA nodes %s, locality=numa' % _show(nodes)
    if locality == model.Locality.SWITCH:
        switches = {gpu.switch for gpu in gpus}
        if len(switches) != 1 or None in switches:
            return 'GPUs under switches %s, locality=switch' % _show(switches)
    return ''


def _show(values):
    return '[%s]' % ', '.join(sorted(str(v) for v in values))


# -- evaluate a given set ----------------------------------------------------

def evaluate_set(host, request, addresses):
    """Check one concrete GPU set against ``request``.

    :param host: a :class:`.HostIndex` (cheap) or a
        :class:`~.model.HostView` (indexed first).
    :param request: a :class:`~.model.GPURequest`.
    :param addresses: iterable of PCI addresses (lower-case).
    :returns: a :class:`SetEvaluation`; its quality equals the
        :attr:`GPUSet.quality` that :func:`find_sets` would give the same
        set.
    """
    gpu_set, reason = _evaluate(host_index.as_index(host), request,
                                addresses)
    if gpu_set is None:
        return SetEvaluation(False, reason, 0.0)
    return SetEvaluation(True, reason, gpu_set.quality, gpu_set)


def _evaluate(idx, request, addresses):
    addresses = list(addresses)
    unique = frozenset(addresses)
    if not matching.active(request):
        if unique:
            return None, 'no GPU requested, set has %d' % len(unique)
        return _NO_GPU_SET, 'no GPU requested'
    reason = _membership_violation(idx, request, addresses, unique)
    if not reason:
        reason = _policy_violation(request, [idx.gpus[a] for a in unique])
    if reason:
        return None, reason
    return _facts(idx, request, unique), 'ok'


def _membership_violation(idx, request, addresses, unique):
    demands = matching.active(request)
    need = sum(d.count for d in demands)
    if len(unique) != len(addresses):
        return 'an address repeats in %s' % _show(addresses)
    if len(unique) != need:
        return 'set has %d GPUs, request needs %d' % (len(unique), need)
    unknown = [a for a in unique if a not in idx.gpus]
    if unknown:
        return 'not GPUs of this host: %s' % _show(unknown)
    usable = idx.usable_for(request.isolation)
    refused = [a for a in unique if a not in usable]
    if refused:
        return ('not usable under %s isolation (busy, busy group mate or '
                'isolation not proven): %s' % (
                    model.Isolation(request.isolation).value,
                    _show(refused)))
    if request.isolation == model.Isolation.STRICT:
        for key in {idx.group_key[a] for a in unique}:
            missing = [m for m in idx.group_members[key] if m not in unique]
            if missing:
                return ('strict isolation needs whole IOMMU groups; group '
                        '%s also holds %s' % (key[1], _show(missing)))
    models = collections.Counter(idx.gpus[a].model for a in unique)
    if not matching.assignable(models, demands):
        return 'models %s do not match %s' % (
            _show(models), matching.describe_request(request))
    return ''


# -- build the best sets -----------------------------------------------------

def find_sets(host, request, limit=DEFAULT_LIMIT):
    """Feasible GPU sets for ``request`` on one host, best first.

    :param host: a :class:`.HostIndex` (results are cached on it) or a
        :class:`~.model.HostView`.
    :param request: a :class:`~.model.GPURequest`.
    :param limit: the most sets to return (at least 1).
    :returns: a :class:`Fit`.
    """
    idx = host_index.as_index(host)
    key = ('find_sets', _request_key(request), max(int(limit), 1))
    return idx.cached(key, lambda: _find_sets(idx, request, key[2]))


def best_set(host, request):
    """The best feasible set only; ``fit.best`` is it (or None).

    :param host: a :class:`.HostIndex` or a :class:`~.model.HostView`.
    :param request: a :class:`~.model.GPURequest`.
    :returns: a :class:`Fit` with at most one set.
    """
    return find_sets(host, request, limit=1)


def _request_key(request):
    # CPU and RAM do not change which GPU sets fit.
    return (request.demands, model.Isolation(request.isolation),
            model.NumaAffinity(request.numa_affinity),
            model.Locality(request.locality))


def _find_sets(idx, request, limit):
    demands = matching.active(request)
    if not demands:
        return Fit(True, (), 'no GPU requested')
    units = tuple(u for u in idx.units(request.isolation)
                  if all(any(d.accepts(g.model) for d in demands)
                         for g in u.gpus))
    found = {}
    for scope in _scopes(request, units):
        chosen = _select(scope, demands)
        if chosen is None:
            continue
        addresses = frozenset(g.address for u in chosen for g in u.gpus)
        if addresses in found:
            continue
        gpus = [idx.gpus[a] for a in addresses]
        if _policy_violation(request, gpus):
            continue
        found[addresses] = _facts(idx, request, addresses)
    if not found:
        return Fit(False, (), _rejection(idx, request, units))
    ranked = tuple(sorted(found.values(), key=_rank_key)[:limit])
    return Fit(True, ranked, 'fits: %s, best %s' % (
        matching.describe_request(request), _show(ranked[0].addresses)))


def _scopes(request, units):
    """Unit lists to fill a set from: switches, NUMA nodes, the host."""
    by_switch = collections.OrderedDict()
    by_numa = collections.OrderedDict()
    locality = _locality_required(request)
    numa_bound = (request.numa_affinity == model.NumaAffinity.REQUIRED or
                  locality == model.Locality.NUMA)
    for unit in units:
        node = unit.numa_node
        if unit.switch is not None:
            switch_key = (unit.switch, node if numa_bound else None)
            by_switch.setdefault(switch_key, []).append(unit)
        if node is not None:
            by_numa.setdefault(node, []).append(unit)
    scopes = list(by_switch.values())
    if locality != model.Locality.SWITCH:
        scopes.extend(by_numa.values())
        if not numa_bound:
            scopes.append(list(units))
    return scopes


def _select(units, demands):
    """Units (in order) that together satisfy ``demands`` exactly, or None.

    The first solution of a depth-first search that tries units in the
    given (best-fit) order: with single-GPU units it is the greedy choice
    and never backtracks.
    """
    need = sum(d.count for d in demands)
    if len(demands) == 1:
        # NOTE: every unit here matches the only demand (the caller keeps
        # matching units only), so a greedy pass by size usually finishes.
        chosen = _greedy(units, need)
        if chosen is not None:
            return chosen
    else:
        if not matching.coverable(_model_counts(units), demands):
            return None  # too few GPUs of some model: nothing to search
        chosen = _greedy_by_demand(units, demands)
        if chosen is not None:
            return chosen
    suffix = [0] * (len(units) + 1)
    for i in range(len(units) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + units[i].size
    if suffix[0] < need:
        return None
    budget = [_SEARCH_BUDGET]
    chosen = []
    models = collections.Counter()
    if _search(units, demands, need, suffix, 0, chosen, models, budget):
        return list(chosen)
    if budget[0] <= 0:
        asked = ' + '.join('%d x %s' % (d.count, '/'.join(sorted(d.models))
                                        if d.models else 'any')
                           for d in demands)
        LOG.warning(
            'GPU-set search stopped after %(steps)d steps over %(units)d '
            'IOMMU groups or GPUs for %(demands)s; this scope is treated as '
            'not fitting', {'steps': _SEARCH_BUDGET, 'units': len(units),
                            'demands': asked})
    return None


def _model_counts(units):
    return collections.Counter(g.model for u in units for g in u.gpus)


def _greedy_by_demand(units, demands):
    """Fill the most selective demand first with units only it accepts.

    Exact when each unit's GPUs match one demand only (one model per
    alias, the common case); None when it does not finish, and the search
    decides.
    """
    order = sorted(range(len(demands)),
                   key=lambda i: len(demands[i].models or ()) or 10 ** 9)
    chosen, used = [], set()
    for index in order:
        need = demands[index].count
        for position, unit in enumerate(units):
            if need == 0:
                break
            if position in used or unit.size > need:
                continue
            if all(demands[index].accepts(g.model) for g in unit.gpus):
                chosen.append(unit)
                used.add(position)
                need -= unit.size
        if need:
            return None
    if not matching.assignable(_model_counts(chosen), demands):
        return None
    return [units[i] for i in sorted(used)]


def _greedy(units, need):
    chosen = []
    for unit in units:
        if unit.size <= need:
            chosen.append(unit)
            need -= unit.size
            if need == 0:
                return chosen
    return None


def _search(units, demands, need, suffix, start, chosen, models, budget):
    if need == 0:
        return True
    # NOTE: a unit of the same make-up (size and models) as one that
    # already failed at this depth fails too: everything after it was
    # also after the earlier one. Skipping them turns a search over many
    # identical IOMMU groups from combinatorial into linear.
    failed = set()
    for i in range(start, len(units)):
        if suffix[i] < need or budget[0] <= 0:
            return False
        unit = units[i]
        if unit.size > need:
            continue
        make_up = _make_up(unit)
        if make_up in failed:
            continue
        budget[0] -= 1
        for gpu in unit.gpus:
            models[gpu.model] += 1
        if matching.assignable(models, demands):
            chosen.append(unit)
            if _search(units, demands, need - unit.size, suffix, i + 1,
                       chosen, models, budget):
                return True
            chosen.pop()
        failed.add(make_up)
        for gpu in unit.gpus:
            models[gpu.model] -= 1
            if not models[gpu.model]:
                del models[gpu.model]
    return False


def _make_up(unit):
    return (unit.size, tuple(sorted(g.model for g in unit.gpus)))


# -- rejection reasons -------------------------------------------------------

def _rejection(idx, request, units):
    what = matching.describe_request(request)
    need = request.gpu_count
    usable = sum(u.size for u in units)
    free = sum(1 for g in idx.gpus.values() if g.free)
    shared = sum(u.size for u in units if u.size > 1 or u.strands)
    isolation = model.Isolation(request.isolation).value
    if usable < need:
        return ('needs %s; %d usable under %s isolation (%d free GPUs: '
                '%d of unknown isolation, %d with a busy IOMMU group '
                'mate)' % (what, usable, isolation, free,
                           _count_unknown(idx), free - idx.free))
    locality = _locality_required(request)
    if locality == model.Locality.SWITCH:
        scope_name, largest = 'switch', _largest(units, 'switch')
    elif (locality == model.Locality.NUMA or
          request.numa_affinity == model.NumaAffinity.REQUIRED):
        scope_name, largest = 'NUMA node', _largest(units, 'numa_node')
    else:
        scope_name, largest = 'host', usable
    text = ('needs %s %s; largest usable %s block is %d (%d free GPUs, '
            '%d in shared groups)' % (
                what, _scope_phrase(scope_name), scope_name, largest,
                free, shared))
    if largest >= need:
        text += '; no exact combination of whole IOMMU groups'
    return text


def _scope_phrase(scope_name):
    return {'switch': 'under one switch', 'NUMA node': 'on one NUMA node',
            'host': 'on this host'}[scope_name]


def _largest(units, attribute):
    sizes = collections.Counter()
    for unit in units:
        value = getattr(unit, attribute)
        if value is not None:
            sizes[value] += unit.size
    return max(sizes.values()) if sizes else 0


def _count_unknown(idx):
    return sum(1 for g in idx.gpus.values()
               if g.free and g.isolation not in tags.PROVEN_VERDICTS)
