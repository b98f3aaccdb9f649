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
"""Real Placement's allocation-candidates query for GPU flavors.

Placement 16's own application and database (in-process, in-memory SQLite,
:mod:`gpu_passthrough_filter.testing.real_placement`) holds N compute nodes
registered as nova-compute registers them with ``[pci]
report_in_placement``: one child provider per GPU with one unit of
``CUSTOM_GPU``. The query is the one nova 34's scheduler sends for a
flavor ``pci_passthrough:alias=gpu:K``: built by nova's own
``resources_from_request_spec`` from a real ``RequestSpec`` (one request
group per GPU, ``group_policy=none``, ``limit`` = ``[scheduler]
max_placement_results`` = 1000).

For each Placement configuration, host size (8 or 16 GPUs), host count
(1, 10, 100, 1000) and K (1, 2, 4, 8) it reports the median latency of
three queries, the candidates returned, the distinct GPU sets among them
and the hosts covered. A query still running after ``--budget`` seconds
(default 20) is stopped and shown as ``>budget``; without a candidate cap
Placement builds every candidate of every host, so at larger host counts
the same query is shown with the lower bound scaled by the host count.

``tox -e bench -- placement`` or ``python bench/bench_placement.py
[--max-hosts N] [--gpus-per-host 8,16] [--budget S]``.
"""

import argparse
import json
import os
import select
import signal
import statistics
import sys
import tempfile
import time

from oslo_config import cfg

from gpu_passthrough_filter.sim import nova_env
from gpu_passthrough_filter.sim import workload
from gpu_passthrough_filter.testing import real_placement

CONF = cfg.CONF
RESOURCE_CLASS = nova_env.GPU_RESOURCE_CLASS
HOST_COUNTS = (1, 10, 100, 1000)
GPU_COUNTS = (1, 2, 4, 8)
REPEATS = 3

#: ``(name, {(group, option): value})``: Placement 16's defaults, the two
#: options its help recommends for nova's PCI in Placement alone and
#: together, and the project's recommended configuration.
CONFIGS = (
    ('default', {}),
    ('breadth-first, max 1000', {
        ('placement', 'allocation_candidates_generation_strategy'):
            'breadth-first',
        ('placement', 'max_allocation_candidates'): 1000}),
    ('depth-first, max 1000, optimize', {
        ('placement', 'max_allocation_candidates'): 1000,
        ('workarounds', 'optimize_for_wide_provider_trees'): True}),
    ('recommended', {
        ('placement', 'allocation_candidates_generation_strategy'):
            'breadth-first',
        ('placement', 'max_allocation_candidates'): 1000,
        ('workarounds', 'optimize_for_wide_provider_trees'): True}),
)


def nova_querystring(gpus):
    """The query nova's scheduler sends for a ``gpu:<gpus>`` flavor."""
    from nova.scheduler import utils as scheduler_utils

    CONF.set_override('pci_in_placement', True, 'filter_scheduler')
    CONF.set_override('alias', ['{"name": "gpu", "resource_class": "%s"}'
                                % RESOURCE_CLASS], 'pci')
    from nova.pci import request as pci_request
    pci_request.get_alias_from_config.cache_clear()
    try:
        spec = nova_env.request_spec(
            workload.VMRequest('bench', 8, 65536, gpus), 0, {})
        resources = scheduler_utils.resources_from_request_spec(
            nova_env._context(), spec, None, enable_pinning_translate=True)
        return resources.to_querystring()
    finally:
        CONF.clear_override('pci_in_placement', 'filter_scheduler')
        CONF.clear_override('alias', 'pci')
        pci_request.get_alias_from_config.cache_clear()


def summarize(answer, roots):
    """``(candidates, distinct GPU sets, hosts covered)`` of an answer."""
    sets, hosts = set(), set()
    for request in answer['allocation_requests']:
        providers = set(request['allocations'])
        hosts.update(providers & roots)
        sets.add(frozenset(providers - roots))
    return len(answer['allocation_requests']), len(sets), len(hosts)


class Fleet(object):
    """A real Placement with a growing number of GPU hosts."""

    def __init__(self, placement, gpus_per_host):
        self.placement = placement
        self.gpus_per_host = gpus_per_host
        self.roots = set()

    def grow(self, hosts):
        while len(self.roots) < hosts:
            name = 'gpu%d-%05d' % (self.gpus_per_host, len(self.roots))
            gpus = [('0000:%02x:00.0' % (0x10 + i), RESOURCE_CLASS, ())
                    for i in range(self.gpus_per_host)]
            root, _ = self.placement.add_gpu_host(name, gpus)
            self.roots.add(root)


def measure(placement, querystring, roots):
    times, answer = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        answer = placement.allocation_candidates(querystring)
        times.append(time.perf_counter() - start)
    return (statistics.median(times),) + summarize(answer, roots)


def measure_with_deadline(placement, querystring, roots, deadline):
    """:func:`measure` in a forked child; None if it outlives ``deadline``.

    Placement cannot be interrupted inside one request (its default
    configuration spends minutes on an 8-GPU query); the child holds a
    copy of the in-memory database and is killed at the deadline.
    """
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: measure, report, exit without cleanup
        os.close(reader)
        try:
            os.write(writer, json.dumps(
                measure(placement, querystring, roots)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    ready, _, _ = select.select([reader], [], [], deadline)
    if not ready:
        os.kill(child, signal.SIGKILL)
    with os.fdopen(reader) as stream:
        text = stream.read() if ready else ''
    os.waitpid(child, 0)
    return tuple(json.loads(text)) if text else None


def run(gpus_per_host, host_counts, budget, out):
    queries = {k: nova_querystring(k) for k in GPU_COUNTS
               if k <= gpus_per_host}
    out('\n%d-GPU hosts; query for K GPUs: %s' % (
        gpus_per_host, queries[max(queries)]))
    out('%-34s %5s %2s %10s %6s %6s %6s' % (
        'placement config', 'hosts', 'K', 'latency s', 'cands', 'sets',
        'hosts'))
    directory = tempfile.mkdtemp(prefix='bench-placement-')
    database = 'sqlite:///%s/placement.db' % directory
    with real_placement.RealPlacement(database=database) as placement:
        placement.ensure_classes([RESOURCE_CLASS])
        fleet = Fleet(placement, gpus_per_host)
        stopped = {}
        for hosts in host_counts:
            start = time.perf_counter()
            fleet.grow(hosts)
            out('(%d hosts registered in %.0f s)' % (
                hosts, time.perf_counter() - start))
            for name, options in CONFIGS:
                placement.use(options)
                for k, querystring in queries.items():
                    out(_row(placement, name, options, hosts, k,
                             querystring, fleet, stopped, budget))


def _row(placement, name, options, hosts, k, querystring, fleet, stopped,
         budget):
    key = (name, k)
    if key in stopped:
        # NOTE: without a cap Placement builds every candidate of every
        # host, so a query stopped at fewer hosts is at least this much
        # slower here: a lower bound, not a measurement.
        bound = budget * hosts / stopped[key]
        return '%-34s %5d %2d %10s %6s %6s %6s' % (
            name, hosts, k, '>%.0f' % bound, '-', '-', '-')
    measured = measure_with_deadline(placement, querystring, fleet.roots,
                                     budget * REPEATS)
    if measured is None:
        if ('placement', 'max_allocation_candidates') not in options:
            stopped[key] = hosts
        return '%-34s %5d %2d %10s %6s %6s %6s' % (
            name, hosts, k, '>%.0f' % budget, '-', '-', '-')
    seconds, candidates, sets, covered = measured
    return '%-34s %5d %2d %10.3f %6d %6d %6d' % (
        name, hosts, k, seconds, candidates, sets, covered)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--max-hosts', type=int, default=1000)
    parser.add_argument('--gpus-per-host', default='8,16')
    parser.add_argument('--budget', type=float, default=20.0,
                        help='seconds one query may be expected to take')
    args = parser.parse_args(argv)
    counts = [n for n in HOST_COUNTS if n <= args.max_hosts]
    for size in (int(s) for s in args.gpus_per_host.split(',')):
        run(size, counts, args.budget, lambda line: print(line, flush=True))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
