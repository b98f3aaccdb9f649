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
"""Nova's two PCI filters with the same verdicts and less work per request.

Nova 34 builds new host states for every request, and its two PCI filters
then do the most expensive work of the whole select for every host:

* ``PciPassthroughFilter`` deep-copies the host's ``PciDeviceStats`` for
  every allocation candidate, to try the request on the copy;
* ``NUMATopologyFilter`` clones the whole ``RequestSpec`` for every host,
  even for a request that has no NUMA topology (the clone only protects the
  spec from ``numa_fit_instance_to_host``, which such a request never
  calls).

:class:`FastPciPassthroughFilter` keeps nova's verdict for each candidate by
what it is a function of (every key and value of the host's PCI pools, the
PCI requests without their per-boot ids, the providers the candidate maps
each request to), so a host whose pools did not change since a request of
the same shape costs a lookup. :class:`FastNUMATopologyFilter` skips the
clone when the request has no NUMA topology and is nova's filter
otherwise. Both subclass nova's filters and call nova's own code for every
verdict they do not know; ``tests/unit/scheduler/test_nova_filters.py``
compares them with nova's classes on random hosts and requests (verdicts
and the allocation candidates kept).
"""

import nova.conf
from nova.scheduler.filters import numa_topology_filter
from nova.scheduler.filters import pci_passthrough_filter
from oslo_log import log as logging

from gpu_passthrough_filter import conf
from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.scheduler import values

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
conf.register_scheduler_opts(CONF)

#: Verdicts kept per host value (request shapes x candidate mappings);
#: beyond it the host's verdicts start again from empty.
MAX_VERDICTS_PER_HOST = 64

#: PCI verdicts by host pool values (``FastPciPassthroughFilter``).
PCI_VERDICTS = values.ValueCache()


class FastPciPassthroughFilter(pci_passthrough_filter.PciPassthroughFilter):
    """Nova's ``PciPassthroughFilter``, each verdict computed once."""

    def host_passes(self, host_state, spec_obj):
        pci_requests = spec_obj.pci_requests
        requests = pci_requests.requests if pci_requests else None
        if not requests or not host_state.pci_stats:
            return super().host_passes(host_state, spec_obj)
        try:
            shape = self._shape_of(requests)
            verdicts = _verdicts_of(host_state)
        except Exception:
            # NOTE: whatever makes the key fail (a field nova does not
            # set), nova's own code decides, and raises what it raises.
            return super().host_passes(host_state, spec_obj)
        stats = host_state.pci_stats

        def supported(candidate):
            mappings = candidate['mappings']
            try:
                key = (shape, _mapping_shape(requests, mappings))
            except Exception:
                return stats.support_requests(
                    requests, provider_mapping=mappings)
            verdict = verdicts.get(key)
            if verdict is None:
                verdict = bool(stats.support_requests(
                    requests, provider_mapping=mappings))
                if len(verdicts) >= MAX_VERDICTS_PER_HOST:
                    verdicts.clear()
                verdicts[key] = verdict
            return verdict

        if not self.filter_candidates(host_state, supported):
            LOG.debug("%(host_state)s doesn't have the required PCI devices"
                      " (%(requests)s)",
                      {'host_state': host_state, 'requests': pci_requests})
            return False
        return True

    _last_shape = (None, None)

    def _shape_of(self, requests):
        # NOTE: nova calls host_passes once per host with the same request
        # list; its shape is computed once per request. One tuple, read
        # and replaced whole: safe between the scheduler's threads.
        seen, shape = self._last_shape
        if seen is not requests:
            shape = _request_shape(requests)
            self._last_shape = (requests, shape)
        return shape


class FastNUMATopologyFilter(numa_topology_filter.NUMATopologyFilter):
    """Nova's ``NUMATopologyFilter`` without the clone it does not need."""

    def host_passes(self, host_state, spec_obj):
        if spec_obj.obj_attr_is_set('numa_topology') and \
                not spec_obj.numa_topology:
            # NOTE: without a requested topology nova's filter checks only
            # the CPU policy, which reads the spec and changes nothing.
            return self._satisfies_cpu_policy(
                host_state, spec_obj.flavor.extra_specs,
                spec_obj.image.properties)
        return super().host_passes(host_state, spec_obj)


def _verdicts_of(host_state):
    values = host_view.pool_values_of(host_state)
    verdicts = PCI_VERDICTS.get(values)
    if verdicts is None:
        verdicts = {}
        PCI_VERDICTS.put(values, verdicts,
                         CONF.gpu_passthrough.host_cache_size)
    return verdicts


def _request_shape(requests):
    """The PCI requests as nova's support check reads them, hashable.

    Every field that is set, but the per-boot ``request_id``: a request's
    providers are found by it (``_mapping_shape``), so its position stands
    in for it.
    """
    return tuple(
        tuple((name, _plain(getattr(request, name)))
              for name in sorted(request.fields)
              if name != 'request_id' and request.obj_attr_is_set(name))
        for request in requests)


def _mapping_shape(requests, mappings):
    """The providers a candidate gives each request, as nova reads them.

    ``PciDeviceStats._get_rp_uuids_for_request``: the first provider of
    every request group whose id starts with the request's id; an empty
    mapping makes nova read the providers from the request's spec, which
    :func:`_request_shape` holds.
    """
    if not mappings:
        return None
    return tuple(
        tuple(sorted(providers[0] for group, providers in mappings.items()
                     if group.startswith(request.request_id)))
        for request in requests)


def _plain(value):
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_plain(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _plain(v)) for k, v in value.items()))
    return repr(value)
