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
"""GPUPassthroughFilter: hosts that can give the guest a policy-safe GPU set.

Glue only: read the host state and request spec (:mod:`.host_view`), ask
the policy core, log, return. Two modes:

* Legacy PCI (``[filter_scheduler] pci_in_placement = False``): the filter
  can only check that a feasible GPU set exists; nova-compute's PCI claim
  then picks the devices itself and may pick another set.
* PCI-in-Placement: the scheduler claims the chosen host's *first*
  allocation candidate and the compute's PCI claim follows its provider
  mappings, so pruning the candidates to feasible sets and putting the
  best first chooses the exact GPUs.
"""

import nova.conf
from nova.scheduler import filters
from oslo_log import log as logging

from gpu_passthrough_filter import conf
from gpu_passthrough_filter.policy import extra_specs
from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.policy import matching
from gpu_passthrough_filter.policy import reservation
from gpu_passthrough_filter.scheduler import candidates as candidates_view
from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.scheduler import request_log
from gpu_passthrough_filter.scheduler import request_view

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
conf.register_scheduler_opts(CONF)

#: ``[gpu_passthrough] error_policy`` value that passes a host on error.
FAIL_OPEN = 'fail_open'


class GPUPassthroughFilter(filters.BaseHostFilter):
    """Pass a host only if it can give the request a policy-safe GPU set."""

    # NOTE: a rebuild keeps the guest on its host with the GPUs it holds;
    # those GPUs left the host's pools when they were claimed, so checking
    # the host again would reject the host the guest already runs on (as
    # nova's own PciPassthroughFilter, which does not run on rebuild).
    RUN_ON_REBUILD = False

    #: Where the filtered requests are recorded for GPUPassthroughWeigher:
    #: the process's log (one per nova-scheduler worker).
    requests = request_log.REQUESTS

    def __init__(self):
        super(GPUPassthroughFilter, self).__init__()
        #: vCPUs and RAM per GPU of the recent GPU guests, for the reserve
        #: kept beside free GPUs (``[gpu_passthrough] reserve_share``).
        self.share = reservation.LearnedShare()

    def use_log(self, log):
        """Record into ``log`` instead (a simulated scheduler worker).

        :param log: a :class:`~.request_log.RequestLog`.
        """
        self.requests = log

    def filter_all(self, filter_obj_list, spec_obj):
        """Filter the hosts, then record the request for the weigher.

        Nova calls this once per request and instance (and skips the
        weighers when at most one host passes); the record lets the
        learning scorers of GPUPassthroughWeigher see every request
        (:mod:`.request_log`). Never raises.
        """
        hosts = list(filter_obj_list)
        passed = list(super(GPUPassthroughFilter, self).filter_all(
            hosts, spec_obj))
        try:
            seen = request_view.request_seen(
                passed or hosts, spec_obj, CONF.gpu_passthrough,
                CONF.filter_scheduler.pci_in_placement)
            self.requests.record(spec_obj, seen)
            self.share.observe(seen)
        except extra_specs.InvalidExtraSpec:
            pass  # logged once for the request by host_view
        except Exception:
            LOG.exception('GPUPassthroughFilter could not record request '
                          '%s for the weigher',
                          request_view.describe_spec(spec_obj))
        return passed

    def host_passes(self, host_state, spec_obj):
        """Return True if ``host_state`` can serve ``spec_obj``'s GPUs.

        Never raises: an unexpected error is logged with the host and the
        request, and ``[gpu_passthrough] error_policy`` decides.

        :param host_state: a nova ``HostState``.
        :param spec_obj: a nova ``RequestSpec``.
        """
        try:
            return self._host_passes(host_state, spec_obj)
        except extra_specs.InvalidExtraSpec:
            # Logged once for the request by host_view.
            return CONF.gpu_passthrough.error_policy == FAIL_OPEN
        except Exception:
            opts = CONF.gpu_passthrough
            LOG.exception(
                'GPUPassthroughFilter failed on host %(host)s for request '
                '%(request)s; error_policy=%(policy)s',
                {'host': host_state,
                 'request': request_view.describe_spec(spec_obj),
                 'policy': opts.error_policy})
            return opts.error_policy == FAIL_OPEN

    def _host_passes(self, host_state, spec_obj):
        opts = CONF.gpu_passthrough
        request_facts = request_view.cached_request_facts(spec_obj, opts)
        reserve = reservation.reserve_per_gpu(
            opts.reserved_vcpus_per_free_gpu,
            opts.reserved_ram_mb_per_free_gpu, opts.reserve_share,
            self.share)
        if not request_facts.asks and not any(reserve):
            return True
        facts = host_view.host_facts(host_state, opts)
        candidates = host_view.placement_candidates(
            host_state, CONF.filter_scheduler.pci_in_placement)
        request, request_ids = request_facts.for_host(
            facts, host_view.vendor_ids(opts), candidates)
        if not request.wants_gpus:
            return self._keeps_reserve(facts, request, reserve)
        if candidates is not None:
            # NOTE: with PCI in Placement the scheduler claims one of these
            # candidates; a host left with none cannot get this guest, as
            # nova's own candidate filters conclude too.
            return self._prune_candidates(
                host_state, request_facts, facts, request, request_ids,
                _candidate_limit(request_facts, request_ids, opts))
        fit = feasibility.best_set(facts.index, request)
        if not fit.ok:
            LOG.debug('GPUPassthroughFilter rejected host %(host)s: '
                      '%(reason)s (%(untagged)d GPUs without agent tags)',
                      {'host': facts.index.name, 'reason': fit.reason,
                       'untagged': facts.untagged})
        return fit.ok

    @staticmethod
    def _keeps_reserve(facts, request, reserve):
        """A guest without GPUs: pass unless it eats the GPUs' reserve."""
        ok, reason = reservation.keeps_gpu_reserve(facts.index, request,
                                                   *reserve)
        if not ok:
            LOG.debug('GPUPassthroughFilter rejected host %(host)s: '
                      '%(reason)s', {'host': facts.index.name,
                                     'reason': reason})
        return ok

    def _prune_candidates(self, host_state, request_facts, facts, request,
                          request_ids, limit):
        """Keep the feasible allocation candidates, best set first.

        :param limit: keep at most this many candidates, one per distinct
            GPU set; 0 keeps every feasible candidate.
        """
        candidates = host_state.allocation_candidates
        judge = candidates_view.CandidateJudge(facts, request, request_ids)
        # NOTE: one pass instead of nova's CandidateFilterMixin,
        # which formats every candidate into two debug messages even when
        # debug logging is off; one debug line per host says what happened.
        kept, claims = [], set()
        for candidate in candidates:
            if limit:
                claim = judge.claim_key(candidate)
                if claim in claims:
                    continue  # another ordering of a set already kept
                claims.add(claim)
            if judge.accepts(candidate):
                kept.append(candidate)
        # NOTE: sorted() is stable: among sets of equal quality Placement's
        # own order stays.
        kept.sort(key=judge.quality, reverse=True)
        built = None
        if candidates and CONF.gpu_passthrough.claim_best_set:
            built = self._best_set_candidate(
                host_state, request_facts, facts, request, request_ids,
                judge, kept)
            if built is not None:
                kept.insert(0, built)
        if limit:
            del kept[limit:]
        host_state.allocation_candidates = kept
        if not kept:
            LOG.debug('GPUPassthroughFilter rejected host %(host)s: none of '
                      '%(count)d allocation candidates is a feasible GPU '
                      'set for %(what)s; first reason: %(reason)s',
                      {'host': facts.index.name, 'count': len(candidates),
                       'what': matching.describe_request(request),
                       'reason': judge.first_reason})
        else:
            LOG.debug('GPUPassthroughFilter kept %(kept)d of %(count)d '
                      'allocation candidates on host %(host)s%(built)s',
                      {'kept': len(kept), 'count': len(candidates),
                       'host': facts.index.name,
                       'built': ', best set %s built' % sorted(
                           judge.addresses(built)) if built else ''})
        return bool(kept)

    @staticmethod
    def _best_set_candidate(host_state, request_facts, facts, request,
                            request_ids, judge, kept):
        """The candidate of the host's best set, if Placement left it out.

        :returns: a new candidate, or None when the best returned one is
            as good, when Placement returned every set it could (no other
            set has room), or when the best set cannot be built from a
            returned one.
        """
        best = feasibility.best_set(facts.index, request).best
        if best is None:
            return None
        if kept and judge.quality(kept[0]) >= best.quality:
            return None
        candidates = host_state.allocation_candidates
        if candidates_view.names_every_set(candidates, request_ids):
            # NOTE: the best claimable set is among them; a better set of
            # the host's pools needs a GPU Placement has no room on (held
            # by the agent, or claimed since the pools were read).
            return None
        vouched = candidates_view.vouched_kinds(candidates, request_ids,
                                                facts.rp_kinds)
        template = kept[0] if kept else candidates[0]
        return candidates_view.candidate_for_set(
            template, best.addresses, request, request_ids, facts,
            facts.rp_kinds, vouched, request_facts.group_traits)


def _candidate_limit(request_facts, request_ids, opts):
    """``[gpu_passthrough] max_candidates_per_host`` where trimming is safe.

    Trimming is safe when no later nova filter can judge two feasible GPU
    sets differently: every PCI request of the guest is a GPU request of
    this project (PciPassthroughFilter then only checks the pools that the
    set was built from) and the guest has no NUMA topology
    (NUMATopologyFilter then filters no candidate).
    """
    limit = opts.max_candidates_per_host
    if not limit or request_facts.has_numa_topology:
        return 0
    if request_facts.pci_request_count != len(request_ids):
        return 0
    return limit
