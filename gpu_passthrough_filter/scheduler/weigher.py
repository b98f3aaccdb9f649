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
"""GPUPassthroughWeigher: the sum of the policy core's scorers.

The scorers are loaded by name with stevedore from the
``gpu_passthrough_filter.scorers`` namespace (``[gpu_passthrough]
scorers``), each weighted by its ``[gpu_passthrough] scorer_multipliers``
entry. Nova's weight handler normalises the sum over the candidate hosts
and multiplies it by :meth:`GPUPassthroughWeigher.weight_multiplier`,
which host aggregates override with ``gpu_passthrough_weight_multiplier``.
"""

import nova.conf
from nova.scheduler import utils
from nova.scheduler import weights
from oslo_log import log as logging
from stevedore import named

from gpu_passthrough_filter import conf
from gpu_passthrough_filter.policy import extra_specs
from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.policy import scorers as scorers_mod
from gpu_passthrough_filter.scheduler import candidates as candidates_view
from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.scheduler import request_log
from gpu_passthrough_filter.scheduler import request_view

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
conf.register_scheduler_opts(CONF)

#: Host aggregate metadata key overriding ``[gpu_passthrough]
#: weight_multiplier``.
AGGREGATE_MULTIPLIER_KEY = 'gpu_passthrough_weight_multiplier'


def load_scorers(names):
    """A stevedore manager of the named scorers, in the given order.

    :param names: scorer entry-point names, e.g. ``['best_fit']``.
    :returns: a ``stevedore.named.NamedExtensionManager``.
    """
    def _missing(missing_names):
        LOG.warning('GPUPassthroughWeigher: unknown scorers %s ignored '
                    '(namespace %s)', sorted(missing_names),
                    scorers_mod.NAMESPACE)

    return named.NamedExtensionManager(
        scorers_mod.NAMESPACE, names=list(names), invoke_on_load=False,
        name_order=True, on_missing_entrypoints_callback=_missing,
        on_load_failure_callback=_load_failure)


def _load_failure(manager, entrypoint, error):
    LOG.warning('GPUPassthroughWeigher: scorer %s failed to load: %s',
                entrypoint, error)


class GPUPassthroughWeigher(weights.BaseHostWeigher):
    """Higher weight: a better GPU placement (packing, locality, blocks).

    :param scorer_manager: a stevedore extension manager of scorers (for
        tests, e.g. ``ExtensionManager.make_test_instance``); None loads
        ``[gpu_passthrough] scorers``, as nova does when it builds the
        weigher with no argument.
    """

    def __init__(self, scorer_manager=None):
        super(GPUPassthroughWeigher, self).__init__()
        if scorer_manager is None:
            scorer_manager = load_scorers(CONF.gpu_passthrough.scorers)
        self.scorers = {ext.name: scorers_mod.instantiate(ext.plugin)
                        for ext in scorer_manager}
        #: Scorers that learn from every request (``observe(request)``).
        self.observers = [scorer for scorer in self.scorers.values()
                          if callable(getattr(scorer, 'observe', None))]
        #: Where GPUPassthroughFilter records the requests: the process's
        #: log (one per nova-scheduler worker).
        self.use_log(request_log.REQUESTS)

    def use_log(self, log):
        """Learn from ``log`` from now on (a simulated scheduler worker).

        :param log: a :class:`~.request_log.RequestLog`.
        """
        self.requests = log
        self._cursor = log.cursor()

    def weigh_objects(self, weighed_obj_list, weight_properties):
        """Show the requests to the learning scorers, then weigh each host.

        Nova calls this once per request with the hosts that passed the
        filters, and not at all when at most one host passed: the learning
        scorers see every request GPUPassthroughFilter recorded since the
        last call (:mod:`.request_log`), or this one alone when the filter
        is not enabled. Never raises: a failure to learn is logged and the
        hosts are weighed with what the scorers knew before.
        """
        if self.observers and weighed_obj_list:
            try:
                self._observe(weighed_obj_list, weight_properties)
            except extra_specs.InvalidExtraSpec:
                pass  # logged once for the request by host_view
            except Exception:
                LOG.exception('GPUPassthroughWeigher: could not learn from '
                              'request %s',
                              request_view.describe_spec(weight_properties))
        return super(GPUPassthroughWeigher, self).weigh_objects(
            weighed_obj_list, weight_properties)

    def _observe(self, weighed_obj_list, spec_obj):
        self._cursor, requests = self.requests.since(self._cursor)
        if self.requests.last_spec is not spec_obj:
            # NOTE: GPUPassthroughFilter did not record this request (it is
            # not enabled): learn from what the weigher sees.
            requests.append(request_view.request_seen(
                [weighed.obj for weighed in weighed_obj_list], spec_obj,
                CONF.gpu_passthrough,
                CONF.filter_scheduler.pci_in_placement))
        for request in requests:
            for scorer in self.observers:
                scorer.observe(request)

    def weight_multiplier(self, host_state):
        """Override the weight multiplier (per aggregate)."""
        return utils.get_weight_multiplier(
            host_state, AGGREGATE_MULTIPLIER_KEY,
            CONF.gpu_passthrough.weight_multiplier)

    def _weigh_object(self, host_state, weight_properties):
        """Higher weights win: the weighted sum of the scorers.

        Never raises: on an error the host weighs 0.0 (logged).

        :param host_state: a nova ``HostState`` that passed the filters.
        :param weight_properties: the nova ``RequestSpec``.
        """
        try:
            return self._weigh(host_state, weight_properties)
        except extra_specs.InvalidExtraSpec:
            return 0.0  # logged once for the request by host_view
        except Exception:
            LOG.exception('GPUPassthroughWeigher failed on host %(host)s '
                          'for request %(request)s; weight 0.0',
                          {'host': host_state,
                           'request': request_view.describe_spec(
                               weight_properties)})
            return 0.0

    def _weigh(self, host_state, spec_obj):
        opts = CONF.gpu_passthrough
        facts = host_view.host_facts(host_state, opts)
        candidates = host_view.placement_candidates(
            host_state, CONF.filter_scheduler.pci_in_placement)
        request, request_ids = request_view.cached_request_facts(
            spec_obj, opts).for_host(facts, host_view.vendor_ids(opts),
                                     candidates)
        chosen = self._chosen_set(candidates, facts, request, request_ids)
        multipliers = _multipliers(opts.scorer_multipliers)
        return scorers_mod.weighted_sum(facts.index, request, chosen,
                                        self.scorers, multipliers)

    @staticmethod
    def _chosen_set(candidates, facts, request, request_ids):
        """The GPU set nova will give on this host, or None.

        :param candidates: the host's allocation candidates (PCI in
            Placement), or None.
        """
        if not request.wants_gpus:
            return None
        if candidates:
            # The filter put the best candidate first; nova claims it.
            judge = candidates_view.CandidateJudge(facts, request, request_ids)
            addresses = judge.addresses(candidates[0])
            if None not in addresses:
                gpu_set = feasibility.evaluate_set(
                    facts.index, request, addresses).gpu_set
                if gpu_set is not None:
                    return gpu_set
        return feasibility.best_set(facts.index, request).best


def _multipliers(configured):
    result = {}
    for name, value in (configured or {}).items():
        try:
            result[name] = float(value)
        except (TypeError, ValueError):
            LOG.warning('GPUPassthroughWeigher: scorer multiplier %s=%r is '
                        'not a number; 1.0 used', name, value)
    return result
