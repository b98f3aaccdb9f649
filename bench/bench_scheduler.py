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
"""Scheduling speed: this project's filter + weigher against nova's own.

The same real ``HostState`` objects (built by the simulator the way
nova-compute and nova-scheduler build them: tagged device_spec, real
``PciDevice``/``PciDeviceStats``, ``ComputeNode`` with a NUMA topology)
and the same real ``RequestSpec`` go through nova's real filter and weigher
handlers twice:

* reference: nova's ``PciPassthroughFilter`` + ``NUMATopologyFilter`` and
  ``PCIWeigher``;
* project: ``GPUPassthroughFilter`` and ``GPUPassthroughWeigher``.

Each pass is timed several times and the best time kept; the result is the
ratio project / nova for 1,000 and 10,000 hosts of 8 GPUs (2 NUMA nodes x 2
switches x 2 GPUs), for 1-, 2- and 4-GPU requests, in legacy PCI tracking
(no PCI-in-Placement candidates). The first project pass builds each host's
cached view; the "warm" column is a later pass over unchanged hosts, which
is what the scheduler sees between two requests on an idle fleet.
"""

import functools
import sys
import time


from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter.sim import fleet as sim_fleet
from gpu_passthrough_filter.sim import nova_env
from gpu_passthrough_filter.sim import runner
from gpu_passthrough_filter.sim import workload

HOST_COUNTS = (1000, 10000)
GPU_COUNTS = (1, 2, 4)
REPEATS = 3
PROFILE_REQUESTS = 1000

NOVA = runner.Policy(
    'nova', enabled_filters=['PciPassthroughFilter', 'NUMATopologyFilter'],
    weight_classes=['nova.scheduler.weights.pci.PCIWeigher'])
PROJECT = runner.Policy(
    'project', enabled_filters=['GPUPassthroughFilter'],
    available_filters=list(runner.PROJECT_AVAILABLE),
    weight_classes=['gpu_passthrough_filter.scheduler.all_weighers'])


def _fleet(count):
    model = sim_fleet.OPENB_MODELS['G3']
    hosts = [sim_fleet.SimHost(
        name='bench-%05d' % index, vcpus=128, memory_mb=786432,
        gpus=tuple(sim_fleet.build_gpus(8, model)))
        for index in range(count)]
    return hosts, model


def _host_states(hosts, aliases):
    return [nova_env.host_state(host, index, aliases, False)
            for index, host in enumerate(hosts)]


def _give_candidates(states):
    # NOTE: nova's PCI filters are candidate filters: a host reaches them
    # with the allocation candidates Placement returned for it, one per
    # host for a request whose PCI devices Placement does not track.
    for state in states:
        state.allocation_candidates = [
            {'mappings': {'': [state.uuid]}, 'allocations': {}}]


@functools.lru_cache()
def _profile_requests(count=PROFILE_REQUESTS):
    """GPU requests of the openb ``default`` trace, as the scorers see them.

    Every 4th request of the trace, its GPU requests: 996 of them, with 48
    of the trace's 68 distinct GPU shapes (the trace lists pods by creation
    time).
    """
    trace = workload.load_openb_trace('default').requests[::4]
    return tuple(model.GPURequest(
        demands=(model.GPUDemand(request.gpus),), vcpus=request.vcpus,
        ram_mb=request.memory_mb)
        for request in trace if request.gpus)[:count]


def _warm_profiles(weighers, requests):
    # NOTE: a scheduler that has run a while has a full workload profile;
    # an empty one would make the learning scorers look cheaper than they
    # are. Not timed.
    for weigher in weighers:
        for scorer in getattr(weigher, 'observers', ()):
            for request in requests:
                scorer.observe(request)


def _pass(policy, states, spec):
    _give_candidates(states)
    filter_handler, filters = runner.load_filters(policy)
    weigh_handler, weighers = runner.load_weighers(policy)
    _warm_profiles(weighers, _profile_requests())
    started = time.perf_counter()
    passed = filter_handler.get_filtered_objects(filters, states, spec)
    weighed = weigh_handler.get_weighed_objects(weighers, list(passed), spec)
    elapsed = time.perf_counter() - started
    return elapsed, len(weighed)


def _best(policy, states, spec):
    times, passed = [], None
    for _ in range(REPEATS):
        elapsed, passed = _pass(policy, states, spec)
        times.append(elapsed)
    return times[0], min(times[1:] or times), passed


def main(argv):
    host_counts = tuple(int(arg) for arg in argv) or HOST_COUNTS
    print('hosts  gpus  nova ms  project ms (first / warm)  ratio warm  '
          'passed nova/project')
    for count in host_counts:
        hosts, model = _fleet(count)
        aliases = nova_env.AliasBook({model.name: model}, [(model.name,)])
        for gpus in GPU_COUNTS:
            request = workload.VMRequest(
                name='bench', vcpus=8 * gpus, memory_mb=65536 * gpus,
                gpus=gpus, models=(model.name,))
            results = {}
            for policy in (NOVA, PROJECT):
                runner.configure(policy, aliases)
                try:
                    states = _host_states(hosts, aliases)
                    spec = nova_env.request_spec(request, 0, {})
                    results[policy.name] = _best(policy, states, spec)
                finally:
                    runner.reset(policy)
            nova_first, nova_warm, nova_passed = results['nova']
            first, warm, passed = results['project']
            print('%5d  %4d  %7.1f  %7.1f / %7.1f  %9.2f  %d/%d' % (
                count, gpus, nova_warm * 1e3, first * 1e3, warm * 1e3,
                warm / nova_warm, nova_passed, passed), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
