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
"""What Placement's ``GET /allocation_candidates`` would return.

Nova's scheduler filters only the hosts Placement returns, each with its
allocation candidates. The simulator answers that query from the
``HostState`` usage (the state the scheduler itself keeps between
requests), which equals Placement's view when every claim succeeds:

* VCPU and MEMORY_MB: ``used + asked <= total * allocation_ratio``;
* without PCI-in-Placement: one candidate per host that maps the root
  request group to the compute node provider;
* with PCI-in-Placement: one provider per GPU (nova's PCI placement
  translator), a request group ``<pci request id>-<i>`` per requested GPU
  (nova's ``generate_request_groups_from_pci_requests``), and one candidate
  per *set* of free matching GPU providers, in lexicographic order of the
  device addresses. Placement itself returns every ordering of each set
  (56 for 2 GPUs of 8); all orderings of a set claim the same devices and
  every nova filter judges them alike, so the simulator keeps the first.
  Placement orders providers by its internal ids (creation order, which
  nova-compute makes address order); ``[scheduler] max_placement_results``
  caps the total number of candidates over all hosts, as it does in nova.
"""

import itertools

from gpu_passthrough_filter.sim import nova_env


def fits_resources(state, spec):
    """Placement's VCPU/MEMORY_MB check against the host's usage."""
    vcpu_cap = state.vcpus_total * (state.cpu_allocation_ratio or 1.0)
    if state.vcpus_used + spec.vcpus > vcpu_cap:
        return False
    ram_cap = state.total_usable_ram_mb * (state.ram_allocation_ratio or 1.0)
    ram_used = state.total_usable_ram_mb - state.free_ram_mb
    return ram_used + spec.memory_mb <= ram_cap


def _pool_traits(pool):
    return set(filter(None, (pool.get('traits') or '').split(',')))


def _free_providers(state, spec_entry, fleet_traits):
    """RP uuids of free GPUs matching one alias spec, in address order."""
    wanted = set(filter(None, (spec_entry.get('traits') or '').split(',')))
    providers = []
    for pool in sorted(state.pci_stats.pools, key=lambda p: p['address']):
        if pool.get('count', 0) < 1 or not pool.get('rp_uuid'):
            continue
        if wanted and not wanted <= fleet_traits.get(pool['rp_uuid'], set()):
            continue
        providers.append(pool['rp_uuid'])
    return providers


def _pci_candidates(state, spec, fleet_traits, limit):
    """Candidates mapping every PCI request group to a distinct GPU RP."""
    requests = spec.pci_requests.requests
    root = {'': [state.uuid]}
    # NOTE: one flavor alias gives one InstancePCIRequest; several aliases
    # draw from disjoint providers only if their traits differ, so
    # providers are kept distinct across requests (group_policy=isolate).
    choices = []
    for request in requests:
        free = _free_providers(state, request.spec[0], fleet_traits)
        choices.append((request, free))
    candidates = []
    for combo in _combinations(choices):
        mappings = dict(root)
        for request, providers in combo:
            for index, provider in enumerate(providers):
                mappings['%s-%d' % (request.request_id, index)] = [provider]
        candidates.append({'mappings': mappings,
                           'allocations': {}})
        if len(candidates) >= limit:
            break
    return candidates


def _combinations(choices, used=frozenset()):
    """Yield ``[(request, providers)]`` with distinct providers."""
    if not choices:
        yield []
        return
    (request, free), rest = choices[0], choices[1:]
    available = [provider for provider in free if provider not in used]
    for providers in itertools.combinations(available, request.count):
        for tail in _combinations(rest, used | set(providers)):
            yield [(request, providers)] + tail


def allocation_candidates(states, spec, pci_in_placement, fleet_traits,
                          max_results=1000):
    """``{host uuid: [candidate, ...]}`` for the hosts Placement returns.

    :param states: the ``HostState`` list, in Placement's provider order.
    :param spec: the ``RequestSpec``.
    :param pci_in_placement: whether GPUs are Placement providers.
    :param fleet_traits: ``{rp_uuid: set(traits)}`` of the GPU providers.
    :param max_results: ``[scheduler] max_placement_results``.
    """
    result, left = {}, max_results
    wants_pci = bool(spec.pci_requests and spec.pci_requests.requests)
    for state in states:
        if left <= 0:
            break
        if not fits_resources(state, spec):
            continue
        if pci_in_placement and wants_pci:
            candidates = _pci_candidates(state, spec, fleet_traits, left)
        else:
            candidates = [{'mappings': {'': [state.uuid]},
                           'allocations': {}}]
        if candidates:
            result[state.uuid] = candidates
            left -= len(candidates)
    return result


def provider_traits(fleet, aliases):
    """``{rp_uuid: set(traits)}`` of every GPU provider of the fleet."""
    return {nova_env.gpu_rp_uuid(host, gpu):
            set(aliases.traits_of(gpu.model.name))
            for host in fleet.hosts for gpu in host.gpus}
