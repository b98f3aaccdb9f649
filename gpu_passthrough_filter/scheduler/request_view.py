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
"""Nova's ``RequestSpec`` as the policy core's GPU request.

:func:`cached_request_facts` reads a ``RequestSpec`` once per request
(the filter and the weigher see the same spec for every host) into a
:class:`RequestFacts`, which turns into a
:class:`~gpu_passthrough_filter.policy.model.GPURequest` per host (a
resource-class alias names different models on different hosts).
"""

import dataclasses
import typing

from oslo_log import log as logging

from gpu_passthrough_filter.policy import extra_specs
from gpu_passthrough_filter.policy import host_index
from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.scheduler import values
from gpu_passthrough_filter import tags

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PCIAsk:
    """One flavor PCI alias request, before knowing whether it is a GPU.

    :param request_id: the ``InstancePCIRequest.request_id`` (prefix of its
        Placement request groups), or None.
    :param count: devices asked for.
    :param models: ``"vendor:product"`` models of the alias specs.
    :param vendors: vendor ids of the alias specs.
    """
    request_id: typing.Optional[str]
    count: int
    models: typing.FrozenSet[str]
    vendors: typing.FrozenSet[str]


class RequestFacts(object):
    """A ``RequestSpec`` read once, turned into a GPU request per host.

    :param asks: the flavor's :class:`PCIAsk` values.
    :param policies: the flavor's :class:`~.extra_specs.Policies`.
    :param vcpus: guest vCPUs.
    :param ram_mb: guest RAM in MiB.
    :param group_traits: ``{requester id: required traits}`` of the spec's
        Placement request groups (:func:`group_traits`).
    :param pci_request_count: how many PCI requests the spec holds (GPU
        or not).
    :param has_numa_topology: whether the guest has a NUMA topology.
    """

    def __init__(self, asks, policies, vcpus, ram_mb, group_traits=None,
                 pci_request_count=0, has_numa_topology=False):
        self.asks = tuple(asks)
        self.policies = policies
        self.vcpus = vcpus
        self.ram_mb = ram_mb
        self.group_traits = dict(group_traits or {})
        self.pci_request_count = pci_request_count
        self.has_numa_topology = has_numa_topology
        self._requests = {}

    def for_host(self, facts, vendor_ids, candidates=None):
        """The :class:`~.model.GPURequest` on one host and its request ids.

        A PCI ask is a GPU demand when it names a vendor of
        ``vendor_ids`` or a model the agent tagged on this host, or, for
        an alias that names only a Placement ``resource_class`` (and
        maybe ``traits``), when the host's allocation candidates map its
        request groups to GPU providers of this host; other asks (NICs,
        ...) are nova's business alone.

        :param facts: the host's :class:`HostFacts`.
        :param vendor_ids: ``[gpu_passthrough] gpu_vendor_ids`` (lower).
        :param candidates: the host's ``allocation_candidates`` (PCI in
            Placement), or None.
        :returns: ``(GPURequest, tuple of GPU request ids)``.
        """
        key = tuple(self._ask_key(ask, facts, vendor_ids, candidates)
                    for ask in self.asks)
        result = self._requests.get(key)
        if result is None:
            result = self._build(key)
            self._requests[key] = result
        return result

    @staticmethod
    def _ask_key(ask, facts, vendor_ids, candidates):
        """``(is a GPU demand, accepted models)`` of one ask on one host."""
        if ask.vendors & vendor_ids or ask.models & facts.tagged_models:
            return True, ask.models
        if ask.vendors or ask.models or not ask.request_id:
            return False, ask.models
        # NOTE: a resource-class alias (nova's advice for PCI in Placement:
        # one resource class over several device_spec matchers) names no
        # vendor or product; Placement already matched its resource class
        # and traits, so the GPUs its candidates map to are what it
        # accepts on this host.
        models = candidate_models(facts, candidates, ask.request_id)
        return bool(models), models

    def _build(self, key):
        gpu_asks = [(ask, models) for ask, (gpu, models)
                    in zip(self.asks, key) if gpu]
        request = model.GPURequest(
            demands=tuple(model.GPUDemand(ask.count, models)
                          for ask, models in gpu_asks),
            isolation=self.policies.isolation,
            numa_affinity=self.policies.numa_affinity,
            locality=self.policies.locality,
            vcpus=self.vcpus, ram_mb=self.ram_mb)
        return request, tuple(ask.request_id for ask, _ in gpu_asks
                              if ask.request_id)


def candidate_models(facts, candidates, request_id):
    """GPU models that allocation candidates give to one PCI request.

    :param facts: the host's :class:`HostFacts`.
    :param candidates: the host's ``allocation_candidates``, or None.
    :param request_id: the ``InstancePCIRequest.request_id``; its
        Placement request groups are ``<request_id>-<i>``.
    :returns: a frozenset of ``"vendor:product"`` models, empty when no
        candidate maps the request to a GPU provider of this host.
    """
    prefix = '%s-' % request_id
    addresses = set()
    for candidate in candidates or ():
        mappings = candidate.get('mappings') if isinstance(
            candidate, dict) else None
        for group, providers in (mappings or {}).items():
            if not group.startswith(prefix):
                continue
            for provider in providers:
                address = facts.rp_addresses.get(provider)
                if address is not None:
                    addresses.add(address)
    gpus = facts.index.gpus
    return frozenset(gpus[a].model for a in addresses if a in gpus)


#: The last request read: ``(spec_obj, pci_requests, flavor, defaults,
#: RequestFacts)``. The filter and weigher see one spec_obj for every host
#: of a request; one tuple assignment keeps it safe across threads.
_last_request = (None, None, None, None, None)


def cached_request_facts(spec_obj, opts):
    """:func:`request_facts`, read once per ``RequestSpec``.

    :param spec_obj: a nova ``RequestSpec``.
    :param opts: the ``CONF.gpu_passthrough`` group.
    """
    global _last_request
    flavor = values.field(spec_obj, 'flavor')
    pci_requests = values.field(spec_obj, 'pci_requests')
    defaults = (opts.default_isolation, opts.default_numa_affinity,
                opts.default_locality)
    last = _last_request
    if (last[0] is spec_obj and last[1] is pci_requests and
            last[2] is flavor and last[3] == defaults):
        facts = last[4]
    else:
        # NOTE: read and judged once per request: a malformed value logs
        # one line here, not one traceback per host in the filter and
        # again in the weigher.
        try:
            facts = request_facts(spec_obj, opts)
        except extra_specs.InvalidExtraSpec as exc:
            LOG.warning('GPU request %(request)s refused by its flavor: '
                        '%(error)s; [gpu_passthrough] error_policy=%(policy)s '
                        'decides for every host',
                        {'request': values.field(spec_obj, 'instance_uuid'),
                         'error': exc, 'policy': opts.error_policy})
            facts = exc
        _last_request = (spec_obj, pci_requests, flavor, defaults, facts)
    if isinstance(facts, Exception):
        raise facts
    return facts


def request_seen(host_states, spec_obj, opts, pci_in_placement):
    """The request as the cloud asked it, over the hosts that saw it.

    The GPU demands the hosts recognise (a resource-class alias maps to
    different models on different hosts), with every model some host
    accepts for them; for learning the workload, not for placing.

    :param host_states: nova ``HostState`` objects.
    :param spec_obj: a nova ``RequestSpec``.
    :param opts: the ``CONF.gpu_passthrough`` group.
    :param pci_in_placement: ``[filter_scheduler] pci_in_placement``.
    :returns: a :class:`~.model.GPURequest`.
    """
    facts_of_request = cached_request_facts(spec_obj, opts)
    ids = host_view.vendor_ids(opts)
    seen = None
    for host_state in host_states:
        request, _ids = facts_of_request.for_host(
            host_view.host_facts(host_state, opts), ids,
            host_view.placement_candidates(host_state, pci_in_placement))
        if seen is None or request.gpu_count > seen.gpu_count:
            seen = request
        elif request.gpu_count == seen.gpu_count and seen.demands:
            seen = _with_models_of(seen, request)
    if seen is None:
        nowhere = host_view.HostFacts(
            host_index.HostIndex(model.HostView('')), {}, frozenset())
        seen, _ids = facts_of_request.for_host(nowhere, ids, None)
    return seen


def _with_models_of(request, other):
    if len(request.demands) != len(other.demands):
        return request
    demands = tuple(
        dataclasses.replace(mine, models=mine.models | theirs.models
                            if mine.models and theirs.models
                            else frozenset())
        for mine, theirs in zip(request.demands, other.demands))
    return dataclasses.replace(request, demands=demands)


def request_facts(spec_obj, opts):
    """Read a ``RequestSpec`` into :class:`RequestFacts`.

    :param spec_obj: a nova ``RequestSpec``.
    :param opts: the ``CONF.gpu_passthrough`` group (policy defaults).
    :raises extra_specs.InvalidExtraSpec: for a bad ``gpu_passthrough:*``
        value in the flavor.
    """
    flavor = values.field(spec_obj, 'flavor')
    flavor_specs = values.field(flavor, 'extra_specs') or {}
    policies = extra_specs.parse_policies(flavor_specs, opts)
    pci_requests = values.spec_field(
        values.spec_field(spec_obj, 'pci_requests'), 'requests') or ()
    return RequestFacts(
        _pci_asks(spec_obj), policies,
        values.number(values.field(spec_obj, 'vcpus')) or 0.0,
        values.number(values.field(spec_obj, 'memory_mb')) or 0.0,
        group_traits(spec_obj), pci_request_count=len(pci_requests),
        has_numa_topology=values.spec_field(
            spec_obj, 'numa_topology') is not None)


def _pci_asks(spec_obj):
    pci_requests = values.field(spec_obj, 'pci_requests')
    asks = []
    for request in (values.field(pci_requests, 'requests') or ()):
        # NOTE: requests without alias_name come from neutron ports
        # (SR-IOV NICs), never from a GPU flavor.
        if values.field(request, 'alias_name') is None:
            continue
        count = tags.decode_integer(values.field(request, 'count'))
        if not count or count < 1:
            LOG.warning('PCI request %(id)s (alias %(alias)s) asks for '
                        '%(count)r devices; not a GPU demand',
                        {'id': values.field(request, 'request_id'),
                         'alias': values.field(request, 'alias_name'),
                         'count': values.field(request, 'count')})
            continue
        specs = [s for s in (values.field(request, 'spec') or ())
                 if isinstance(s, dict)]
        vendors = frozenset(
            values.hex_id(s.get('vendor_id')) for s in specs) - {''}
        models = frozenset(
            '%s:%s' % (values.hex_id(s.get('vendor_id')),
                       values.hex_id(s.get('product_id')))
            for s in specs if s.get('vendor_id') and s.get('product_id'))
        asks.append(PCIAsk(values.field(request, 'request_id'), count, models,
                           vendors))
    return asks


def group_traits(spec_obj):
    """``{requester id: required traits}`` of the spec's request groups.

    With PCI in Placement nova adds one group per requested device
    (``RequestSpec.requested_resources``); these are the traits Placement
    matched each group's provider against.
    """
    groups = values.spec_field(spec_obj, 'requested_resources') or ()
    result = {}
    for group in groups:
        requester = values.spec_field(group, 'requester_id')
        if isinstance(requester, str):
            result[requester] = frozenset(
                values.spec_field(group, 'required_traits') or ())
    return result


def describe_spec(spec_obj):
    """A request spec in a few words, for error logs."""
    # For the error log only: must not raise itself.
    try:
        flavor = spec_obj.flavor
        return '%s (flavor %s, extra specs %s)' % (
            getattr(spec_obj, 'instance_uuid', '?'), flavor.name,
            dict(flavor.extra_specs))
    except Exception:
        return repr(spec_obj)
