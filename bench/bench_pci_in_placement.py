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
"""The scheduler's side of a PCI-in-Placement request at 1,000 hosts.

What nova-scheduler does with Placement's answer under the recommended
Placement configuration (breadth-first, ``max_allocation_candidates =
1000``: one candidate per host at 1,000 hosts; the simulator's model of
Placement, checked against the real one in
``tests/functional/test_sim_placement.py``): every enabled filter, then
every weigher, through nova's own handlers, on host states built fresh for
the request as Nova 34's host manager builds them (no plugin cache is
warm). Two pipelines on the same states and candidates:

* nova: nova's default filters + PciPassthroughFilter + NUMATopologyFilter,
  all nova weighers (the simulator's ``nova-pci-in-placement``);
* project: the same with GPUPassthroughFilter before PciPassthroughFilter
  and GPUPassthroughWeigher (``gpu-passthrough``; ``claim_best_set``
  builds each host's best set from its one candidate).

*first*: the first request after a scheduler start (the plugins'
cross-request cache, ``[gpu_passthrough] host_cache_size``, empty);
*steady*: the median of the next requests (nova's host states are new, the
hosts unchanged: in a running cloud each request changes one host).

Add the Placement query's own latency from ``bench_placement`` (same
fleet shape) for the whole request. ``tox -e bench -- pci_in_placement``.
"""

import statistics
import sys
import time

from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.sim import fleet as sim_fleet
from gpu_passthrough_filter.sim import nova_env
from gpu_passthrough_filter.sim import placement
from gpu_passthrough_filter.sim import runner
from gpu_passthrough_filter.sim import workload

HOSTS = 1000
GPU_COUNTS = (1, 2, 4, 8)
REPEATS = 4


def _fleet(count):
    model = sim_fleet.OPENB_MODELS['G3']
    return sim_fleet.Fleet([sim_fleet.SimHost(
        name='bench-%05d' % index, vcpus=128, memory_mb=786432,
        gpus=tuple(sim_fleet.build_gpus(8, model)))
        for index in range(count)]), model


def _select(simulation, fleet, spec):
    """One request's filters and weighers on fresh host states (seconds)."""
    states = [nova_env.host_state(host, index, simulation.aliases, True)
              for index, host in enumerate(fleet.hosts)]
    answer = simulation.placement.allocation_candidates(states, spec, True)
    by_uuid = {state.uuid: state for state in states}
    hosts = []
    for host_uuid, candidates in answer.candidates.items():
        by_uuid[host_uuid].allocation_candidates = candidates
        hosts.append(by_uuid[host_uuid])
    started = time.perf_counter()
    chosen = simulation._sorted_hosts(spec, hosts)
    return time.perf_counter() - started, len(hosts), bool(chosen)


def main(argv):
    count = int(argv[0]) if argv else HOSTS
    fleet, model = _fleet(count)
    policies = {p.name: p for p in runner.builtin_policies()}
    pipelines = (('nova', policies['nova-pci-in-placement']),
                 ('project', policies['gpu-passthrough']))
    print('%d hosts of 8 GPUs, recommended Placement (one candidate per '
          'host); the first request, then the median of %d more'
          % (count, REPEATS - 1))
    print('gpus  hosts  nova s  project s (first / steady)  ratio steady')
    for gpus in GPU_COUNTS:
        request = workload.VMRequest('bench', 8 * gpus, 65536 * gpus, gpus)
        aliases = nova_env.AliasBook({model.name: model}, [()])
        medians, firsts, seen = {}, {}, 0
        for name, policy in pipelines:
            host_view.FACTS_BY_VALUE.clear()
            simulation = runner.Simulation(
                fleet, policy, aliases,
                placement_config=placement.RECOMMENDED)
            try:
                times = []
                for index in range(REPEATS):
                    spec = nova_env.request_spec(request, index,
                                                 policy.extra_specs)
                    seconds, seen, ok = _select(simulation, fleet, spec)
                    assert ok, 'no host for %d GPUs' % gpus
                    times.append(seconds)
                firsts[name] = times[0]
                medians[name] = statistics.median(times[1:])
            finally:
                simulation.close()
        print('%4d  %5d  %6.3f  %7.3f / %7.3f  %12.2f' % (
            gpus, seen, medians['nova'], firsts['project'],
            medians['project'], medians['project'] / medians['nova']),
            flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
