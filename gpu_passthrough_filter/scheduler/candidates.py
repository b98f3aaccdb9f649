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
"""Placement's allocation candidates seen as GPU sets.

With PCI in Placement nova asks Placement for one request group per GPU
(``<pci request id>-<i>``, one unit of the GPU's resource class) and claims
the chosen host's first allocation candidate. Placement returns every
ordering of every free GPU set, capped by ``[placement]
max_allocation_candidates`` and ``[scheduler] max_placement_results``, in
an order of its own; at cloud scale a host gets one or a few candidates,
rarely its best set (doc/source/admin/placement-at-scale.rst).

:class:`CandidateJudge` evaluates candidates as GPU sets, once per set.
:func:`candidate_for_set` builds the allocation request of a chosen set
from one candidate Placement did return for the host: the same request
groups and root allocation, each GPU group moved to a GPU provider of the
same kind (same resource class and traits, ``HostFacts.rp_kinds``, so
Placement's answer for that kind holds for it). It is built only when
Placement's list may have been cut (:func:`names_every_set`): a complete
list already holds every set that can be claimed, and a GPU missing from
all of it has no room (in use, or held by the agent with ``reserved``).
Placement checks capacity again when nova claims it (``PUT
/allocations``); a GPU taken meanwhile fails that claim and nova tries the
next host, as for any claim race.
"""

import copy
import math

from gpu_passthrough_filter.policy import feasibility

#: The trait nova-compute gives every PCI device provider, whatever its
#: device_spec says.
MANAGED_TRAIT = 'COMPUTE_MANAGED_PCI_DEVICE'


def gpu_groups(candidate, request_ids):
    """``{group: provider}`` of a candidate's GPU request groups.

    :param candidate: an allocation candidate (``mappings``,
        ``allocations``).
    :param request_ids: the GPU ``InstancePCIRequest`` ids.
    :returns: the mapping, or None when a GPU group maps to anything but
        exactly one provider.
    """
    prefixes = tuple('%s-' % rid for rid in request_ids)
    mappings = candidate.get('mappings') if isinstance(
        candidate, dict) else None
    if not isinstance(mappings, dict):
        return None
    groups = {}
    for group, providers in mappings.items():
        if not isinstance(group, str) or not group.startswith(prefixes):
            continue
        if not isinstance(providers, list) or len(providers) != 1:
            return None
        groups[group] = providers[0]
    return groups


def request_of(group):
    """The PCI request id of a request group ``<request id>-<i>``."""
    return group.rsplit('-', 1)[0]


class CandidateJudge(object):
    """Evaluates allocation candidates as GPU sets, once per distinct set.

    A 2-GPU request on an 8-GPU host gives 56 ordered candidates but 28
    distinct sets; each set is evaluated once.

    :param facts: the host's :class:`~.host_view.HostFacts`.
    :param request: the :class:`~gpu_passthrough_filter.policy.model.
        GPURequest` on this host.
    :param request_ids: the GPU request ids, in demand order.
    """

    def __init__(self, facts, request, request_ids):
        self.facts = facts
        self.request = request
        self.request_ids = request_ids
        self.first_reason = ''
        self._results = {}
        self._prefixes = tuple('%s-' % rid for rid in request_ids)

    def addresses(self, candidate):
        """GPU addresses of a candidate (None for an unknown provider)."""
        found = []
        rp_addresses = self.facts.rp_addresses
        for group, providers in candidate.get('mappings', {}).items():
            if not group.startswith(self._prefixes):
                continue
            for provider in providers:
                found.append(rp_addresses.get(provider))
        return found

    def claim_key(self, candidate):
        """What nova claims for a candidate, the same for all orderings.

        The request groups of one GPU request (``<request_id>-<i>``) are
        merged: which group gets which GPU changes nothing in the claim.
        """
        merged = {}
        for group, providers in candidate.get('mappings', {}).items():
            if group.startswith(self._prefixes):
                group = request_of(group)
            merged.setdefault(group, []).extend(providers)
        return tuple(sorted((group, tuple(sorted(providers)))
                            for group, providers in merged.items()))

    def _evaluate(self, candidate):
        addresses = self.addresses(candidate)
        if None in addresses:
            key = None
        else:
            key = frozenset(addresses)
            if len(key) != len(addresses):
                key = tuple(sorted(addresses))
        result = self._results.get(key) if key is not None else None
        if result is None:
            if key is None:
                result = feasibility.SetEvaluation(
                    False, 'a provider of %s is no GPU pool of this host'
                    % sorted(candidate.get('mappings', {}).items()), 0.0)
            else:
                result = feasibility.evaluate_set(
                    self.facts.index, self.request, addresses)
                self._results[key] = result
            if not result.ok and not self.first_reason:
                self.first_reason = result.reason
        return result

    def accepts(self, candidate):
        return self._evaluate(candidate).ok

    def quality(self, candidate):
        return self._evaluate(candidate).quality


def names_every_set(candidates, request_ids):
    """Whether ``candidates`` hold every GPU set of the providers they use.

    Placement enumerates every free set of a host unless the list was cut
    (``max_allocation_candidates``): when the candidates of one GPU
    request name all ``C(n, k)`` sets of the ``n`` providers they use, no
    other provider of the host had room for this request (it is in use,
    or reserved: held by the agent). A cut list names fewer; one
    candidate, or several requests, can say nothing.

    :param candidates: the host's allocation candidates.
    :param request_ids: the GPU request ids.
    """
    if len(request_ids) != 1:
        return False
    sets, providers, size = set(), set(), None
    for candidate in candidates:
        groups = gpu_groups(candidate, request_ids)
        if not groups:
            return False
        chosen = frozenset(groups.values())
        sets.add(chosen)
        providers |= chosen
        size = len(groups)
    return bool(size) and len(providers) > size and len(sets) == math.comb(
        len(providers), size)


def vouched_kinds(candidates, request_ids, kinds):
    """``{request id: kinds}`` that Placement matched to each request."""
    vouched = {rid: set() for rid in request_ids}
    for candidate in candidates:
        for group, provider in (gpu_groups(candidate, request_ids)
                                or {}).items():
            kind = kinds.get(provider)
            if kind is not None and request_of(group) in vouched:
                vouched[request_of(group)].add(kind)
    return vouched


def candidate_for_set(template, addresses, request, request_ids, facts,
                      kinds, vouched, group_traits=None):
    """The allocation request that claims ``addresses``, or None.

    :param template: a candidate Placement returned for this host.
    :param addresses: the GPU set to claim (PCI addresses).
    :param request: the host's ``GPURequest`` (its demands, in the order of
        ``request_ids``, say which models each request accepts).
    :param request_ids: the GPU request ids.
    :param facts: the host's ``HostFacts`` (``rp_addresses``).
    :param kinds: the host's ``HostFacts.rp_kinds``.
    :param vouched: :func:`vouched_kinds` of the host's candidates.
    :param group_traits: ``{request group: required traits}`` as nova
        asked Placement (``RequestSpec.requested_resources``); a group
        that requires a trait of its own is moved only onto providers of
        an agent-tagged kind, whose traits the kind determines.
    :returns: a new candidate dict; None when the template's GPU groups
        cannot be moved onto the set (a group mapped to several providers,
        a GPU of a kind Placement did not offer to its request).
    """
    groups = gpu_groups(template, request_ids)
    providers = {address: rp for rp, address in facts.rp_addresses.items()}
    if not groups or len(groups) != len(addresses) or any(
            address not in providers for address in addresses):
        return None
    allocations = template.get('allocations')
    old = set(groups.values())
    if (not isinstance(allocations, dict) or len(old) != len(groups) or
            not old <= set(allocations)):
        return None
    accepted = _accepted_models(request, request_ids)
    traited = {group for group, traits in (group_traits or {}).items()
               if set(traits or ()) - {MANAGED_TRAIT}}
    assignment = _assign(sorted(groups), [providers[a] for a in
                                          sorted(addresses)],
                         lambda group, rp: _fits(group, rp, facts, kinds,
                                                 vouched, accepted, traited))
    if assignment is None:
        return None
    candidate = copy.deepcopy(template)
    new_allocations = {rp: value for rp, value in
                       candidate['allocations'].items() if rp not in old}
    for group, rp in assignment.items():
        candidate['mappings'][group] = [rp]
        new_allocations[rp] = copy.deepcopy(allocations[groups[group]])
    candidate['allocations'] = new_allocations
    return candidate


def _accepted_models(request, request_ids):
    """``{request id: accepted models}`` (empty: any model)."""
    return {rid: demand.models for rid, demand in
            zip(request_ids, request.demands)}


def _fits(group, rp, facts, kinds, vouched, accepted, traited):
    rid = request_of(group)
    kind = kinds.get(rp)
    if kind not in vouched.get(rid, ()):
        return False
    if kind[2] is None and group in traited:
        return False  # untagged: its traits are unknown
    models = accepted.get(rid)
    gpu = facts.index.gpus.get(facts.rp_addresses[rp])
    return gpu is not None and (not models or gpu.model in models)


def _assign(groups, rps, fits):
    """A perfect matching of groups to providers (Kuhn's algorithm).

    Sizes are at most the GPUs of one host; one augmenting path per group.
    """
    owner = {}

    def augment(group, seen):
        for rp in rps:
            if rp in seen or not fits(group, rp):
                continue
            seen.add(rp)
            if rp not in owner or augment(owner[rp], seen):
                owner[rp] = group
                return True
        return False

    for group in groups:
        if not augment(group, set()):
            return None
    return {group: rp for rp, group in owner.items()}
