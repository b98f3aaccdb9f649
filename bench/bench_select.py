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
"""The whole select, as Nova 34 runs it, with and without the project.

For every request, what nova-scheduler does (``runner.Simulation`` with
``fresh_host_states``):

1. read the compute node records and build new ``HostState`` objects
   (Nova 34's ``HostManager._get_host_states``; not in the select time,
   the same for both pipelines: column *read s*);
2. Placement's answer (the simulator's model of Placement 16 under the
   recommended configuration, checked against the real one in
   ``tests/functional/test_sim_placement.py``): with PCI in Placement, one
   candidate per host up to 1,000 candidates; legacy PCI, one candidate
   (the root provider) per host up to ``max_placement_results`` = 1,000;
3. **the select** (timed): every enabled filter, then every weigher,
   through nova's own handlers, and the chosen host's consumption;
4. the chosen host's new usage written back to its record, as
   nova-compute's resource tracker reports it after the claim.

Two pipelines on the same fleet and the same requests (1, 2, 4 and 8 GPUs
in turn, 8 vCPUs and 64 GiB per GPU):

* nova: nova's recommended PCI passthrough pipeline (default filters +
  PciPassthroughFilter + NUMATopologyFilter, all nova weighers);
* project: the project's recommended pipeline (GPUPassthroughFilter before
  the fast forms of nova's two PCI filters, all nova weighers +
  GPUPassthroughWeigher, the recommended options).

The project's caches start empty (a scheduler just started): *first* is
the first request, *steady* the median of the others, *run* the sum of all
requests. ``tox -e bench -- select`` or ``python bench/bench_select.py
[HOSTS ...] [--requests N] [--mode legacy|placement]``.
"""

import argparse
import statistics
import sys

from gpu_passthrough_filter.scheduler import host_view
from gpu_passthrough_filter.scheduler import nova_filters
from gpu_passthrough_filter.sim import fleet as sim_fleet
from gpu_passthrough_filter.sim import nova_env
from gpu_passthrough_filter.sim import placement
from gpu_passthrough_filter.sim import runner
from gpu_passthrough_filter.sim import workload

HOSTS = (1000, 10000)
GPU_SIZES = (1, 2, 4, 8)
MODES = {'legacy': False, 'placement': True}


def _fleet(count):
    model = sim_fleet.OPENB_MODELS['G3']
    return sim_fleet.Fleet([sim_fleet.SimHost(
        name='bench-%05d' % index, vcpus=128, memory_mb=786432,
        gpus=tuple(sim_fleet.build_gpus(8, model)))
        for index in range(count)]), model


def _requests(count):
    sizes = [GPU_SIZES[index % len(GPU_SIZES)] for index in range(count)]
    return [workload.VMRequest('bench-%d' % index, 8 * gpus, 65536 * gpus,
                               gpus) for index, gpus in enumerate(sizes)]


def _policies(pci_in_placement):
    by_name = {policy.name: policy for policy in runner.builtin_policies()}
    nova = by_name['nova-pci-in-placement' if pci_in_placement
                   else 'nova-default']
    project = by_name['gpu-passthrough']
    project.pci_in_placement = pci_in_placement
    return (('nova', nova), ('project', project))


def _run(fleet, model, policy, requests):
    """Seconds of each request's select, and how many were placed."""
    host_view.FACTS_BY_VALUE.clear()
    nova_filters.PCI_VERDICTS.clear()
    aliases = nova_env.AliasBook({model.name: model}, [()])
    simulation = runner.Simulation(
        fleet, policy, aliases, placement_config=placement.RECOMMENDED,
        fresh_host_states=True)
    selects, reads, placed = [], [], 0
    try:
        for index, request in enumerate(requests):
            result = simulation.schedule(index, request)
            selects.append(result.seconds)
            reads.append(simulation.read_seconds)
            placed += bool(result.host)
    finally:
        simulation.close()
    return selects, statistics.median(reads), placed


def _row(count, mode, results):
    nova, read, nova_placed = results['nova']
    project, _, placed = results['project']
    steady_nova = statistics.median(nova[1:])
    steady = statistics.median(project[1:])
    print('%6d  %-9s  %6.2f  %7.3f  %7.3f / %7.3f  %6.2f  %6.2f  %d/%d' % (
        count, mode, read, steady_nova, project[0], steady,
        steady / steady_nova, sum(project) / sum(nova), nova_placed,
        placed), flush=True)


def main(argv):
    parser = argparse.ArgumentParser(prog='bench_select')
    parser.add_argument('hosts', nargs='*', type=int, default=list(HOSTS))
    parser.add_argument('--requests', type=int, default=12)
    parser.add_argument('--mode', choices=sorted(MODES), action='append')
    args = parser.parse_args(argv)
    requests = _requests(args.requests)
    print('fresh host states per request, each boot written back; %d '
          'requests of %s GPUs in turn; seconds per request'
          % (len(requests), '/'.join(map(str, GPU_SIZES))))
    print('hosts   PCI        read s  nova s   project s first / steady  '
          'ratio   run     placed nova/project')
    for count in args.hosts:
        fleet, model = _fleet(count)
        for mode in args.mode or sorted(MODES):
            results = {}
            for name, policy in _policies(MODES[mode]):
                results[name] = _run(fleet, model, policy, requests)
            _row(count, mode, results)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
