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
"""``gpu-passthrough-sim``: compare scheduler policies on a GPU fleet.

With no option it replays a short ATC'23-protocol run of the openb
``default`` trace on a 60-host sample of the bundled openb fleet through
nova's real scheduler code, once per policy, and prints the comparison.
"""

import argparse
import concurrent.futures
import logging
import os
import sys
import warnings

from rich import console as rich_console
from rich import progress as rich_progress

from gpu_passthrough_filter.sim import fleet as fleet_mod
from gpu_passthrough_filter.sim import metrics
from gpu_passthrough_filter.sim import report
from gpu_passthrough_filter.sim import workload


def build_parser():
    parser = argparse.ArgumentParser(
        prog='gpu-passthrough-sim', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_argument_group('fleet')
    group.add_argument('--fleet', default='openb', help=(
        '"openb" (bundled cluster), a YAML fleet file, or a directory of '
        'agent JSON inventories (default: openb)'))
    group.add_argument('--hosts', type=int, default=60, help=(
        'openb: sample this many hosts (seeded); 0 = the whole fleet '
        '(default: 60)'))
    group.add_argument('--cpu-nodes', choices=('auto', 'yes', 'no'),
                       default='auto', help=(
                           'openb: add the cluster\'s CPU-only nodes, '
                           'sampled in the same proportion as the GPU '
                           'nodes (auto: when the trace has plain VMs; '
                           'default: auto)'))
    group.add_argument('--shared-group-fraction', type=float, default=0.0,
                       help='openb: fraction of hosts whose GPUs sit in '
                       'shared two-GPU IOMMU groups (default: 0)')
    group.add_argument('--layout', default='', help=(
        'openb: GPU layouts, GPUS=NUMAxSWITCHESxGPUS items, e.g. '
        '"8=2x4x1" (defaults: 8=2x2x2,4=2x1x2,2=2x0x1,1=1x0x1)'))
    group.add_argument('--cpu-allocation-ratio', type=float, default=1.0)
    group.add_argument('--ram-allocation-ratio', type=float, default=1.0)
    group = parser.add_argument_group('workload')
    group.add_argument('--trace', default='default', help=(
        'openb pod list name (%s) or CSV path, or "synthetic"'
        % ', '.join(workload.OPENB_TRACES)))
    group.add_argument('--mix', default='1:0.6,2:0.2,4:0.1,8:0.1',
                       help='synthetic: GPUS:WEIGHT items')
    group.add_argument('--plain-vm-factor', type=_non_negative,
                       default=1.0, help=(
                           "scale the trace's plain VMs (no GPU) to this "
                           "many times their count, keeping their shapes: a "
                           "CPU-heavy stress workload from a bundled trace, "
                           "e.g. 2.5 (default: 1)"))
    group.add_argument('--arrival-order', default='shuffled',
                       choices=('shuffled', 'smallest-first'), help=(
                           "shuffled: the ATC'23 protocol; smallest-first: "
                           'the same arrivals with the GPU requests in '
                           'ascending GPU count, plain VMs in place (a cold '
                           'start: 1-GPU guests first, 8-GPU ones last)'))
    group.add_argument('--target', type=_positive, default=1.3, help=(
        'arrived GPU demand as a share of fleet GPUs (default: 1.3)'))
    group.add_argument('--seeds', type=int, default=1,
                       help='number of seeds (runs per policy)')
    group.add_argument('--seed', type=int, default=0, help='first seed')
    group.add_argument('--numa-affinity', default='preferred',
                       choices=('preferred', 'required', 'none'),
                       help='gpu_passthrough:numa_affinity of GPU VMs under '
                       'the project policy')
    group = parser.add_argument_group('policies')
    group.add_argument('--policies', default='', help=(
        'YAML policy file (see doc/source/admin/simulator.rst); default: '
        'nova-default, nova-pci-in-placement, gpu-passthrough'))
    group.add_argument('--only', default='',
                       help='comma-separated policy names to run')
    group.add_argument('--no-fast-nova-filters', dest='fast_nova_filters',
                       action='store_false', default=True, help=(
                           "run nova's PciPassthroughFilter and "
                           "NUMATopologyFilter as they are; by default every "
                           "policy runs their fast forms, which give the same "
                           "verdicts (the same placements) in less time"))
    group.add_argument('--max-placement-results', type=int, default=1000)
    group.add_argument('--scheduler-workers', type=_positive_int, default=1,
                       help='nova-scheduler workers: requests go to them in '
                       'turn and each learns its own request mix, as '
                       'separate processes do (default: 1)')
    group.add_argument('--placement', default='recommended', choices=(
        'recommended', 'default'), help=(
        "the modelled Placement's options: the project's recommended "
        "ones (breadth-first, max_allocation_candidates = 1000, "
        "optimize_for_wide_provider_trees) or Placement's defaults, with "
        "which multi-GPU flavors make Placement enumerate every ordering "
        "(default: recommended)"))
    group.add_argument('--max-allocation-candidates', type=int, default=None,
                       help="override the modelled Placement's [placement] "
                       "max_allocation_candidates (e.g. the host count: one "
                       "candidate per host, as at 1,000 hosts with the "
                       "recommended 1,000)")
    group.add_argument('--jobs', type=int, default=1, help=(
        'runs in parallel processes (default: 1)'))
    group = parser.add_argument_group('output')
    group.add_argument('--output', default='sim-output', help=(
        'directory for summary.csv, curve.csv and allocation.png'))
    group.add_argument('--no-plot', action='store_true')
    return parser


def _policies(args):
    from gpu_passthrough_filter.sim import runner
    policies = (runner.load_policies(args.policies) if args.policies
                else runner.builtin_policies(args.numa_affinity))
    if args.only:
        wanted = set(args.only.split(','))
        policies = [policy for policy in policies if policy.name in wanted]
    if args.fast_nova_filters:
        policies = [runner.with_fast_nova_filters(p) for p in policies]
    usable = []
    for policy in policies:
        why = runner.missing_plugins(policy)
        if why:
            print('policy %s skipped: %s' % (policy.name, why))
        else:
            usable.append(policy)
    return usable


def load_fleet(args, has_plain_vms):
    if args.fleet == 'openb':
        cpu = (args.cpu_nodes == 'yes' or
               (args.cpu_nodes == 'auto' and has_plain_vms))
        return fleet_mod.load_openb(
            hosts=args.hosts or None, seed=args.seed,
            shared_group_fraction=args.shared_group_fraction,
            cpu_nodes=cpu, layouts=fleet_mod.parse_layouts(args.layout))
    if os.path.isdir(args.fleet):
        return fleet_mod.load_inventories(args.fleet)
    return fleet_mod.load_yaml(args.fleet)


def load_requests(args):
    if args.trace == 'synthetic':
        trace = workload.Trace(workload.synthetic(
            workload.parse_mix(args.mix), 5000, seed=args.seed), 0,
            'synthetic %s' % args.mix)
    else:
        trace = workload.load_openb_trace(args.trace)
    if args.plain_vm_factor != 1.0:
        trace = workload.Trace(
            workload.scale_plain(trace.requests, args.plain_vm_factor,
                                 seed=args.seed),
            trace.dropped_fractional,
            '%s, plain VMs x%g' % (trace.source, args.plain_vm_factor))
    if args.arrival_order != 'shuffled':
        trace = workload.Trace(trace.requests, trace.dropped_fractional,
                               '%s, %s' % (trace.source, args.arrival_order))
    return trace


def _placement_config(name, max_candidates=None):
    import dataclasses

    from gpu_passthrough_filter.sim import placement
    config = {'recommended': placement.RECOMMENDED,
              'default': placement.DEFAULT}[name]
    if max_candidates is not None:
        config = dataclasses.replace(
            config, max_allocation_candidates=max_candidates)
    return config


def _quiet():
    logging.disable(logging.WARNING)
    warnings.simplefilter('ignore')


def _run_job(args, policy, seed, progress_queue=None):
    """Run one (policy, seed); returns its Summary (picklable)."""
    _quiet()
    from gpu_passthrough_filter.sim import nova_env
    from gpu_passthrough_filter.sim import runner
    trace = load_requests(args)
    fleet = load_fleet(args, any(not r.gpus for r in trace.requests))
    arrivals = workload.atc_protocol(trace.requests, fleet.gpu_count,
                                     args.target, seed)
    if args.arrival_order == 'smallest-first':
        arrivals = workload.smallest_first(arrivals)
    aliases = nova_env.AliasBook(fleet.models(),
                                 [r.models for r in arrivals])
    result = runner.run_policy(
        fleet, arrivals, policy, aliases, seed=seed,
        progress=progress_queue, cpu_ratio=args.cpu_allocation_ratio,
        ram_ratio=args.ram_allocation_ratio,
        max_placement_results=args.max_placement_results,
        workers=args.scheduler_workers,
        placement_config=_placement_config(
            args.placement, args.max_allocation_candidates))
    summary = metrics.summarize(
        result, fleet, workload.typical_gpu_shape(trace.requests),
        upto=int(round(args.target * 100)))
    bound = metrics.upper_bound_curve(result.placements, fleet.gpu_count,
                                      int(round(args.target * 100)))
    return summary, bound, len(arrivals)


def _run_all(args, jobs, console):
    summaries, seeds, bound = [], [], None
    columns = (rich_progress.TextColumn('{task.description}'),
               rich_progress.BarColumn(),
               rich_progress.MofNCompleteColumn(),
               rich_progress.TimeElapsedColumn())
    with rich_progress.Progress(*columns, console=console) as bar:
        task = bar.add_task('runs (policy x seed)', total=len(jobs))
        if args.jobs <= 1:
            for policy, seed in jobs:
                request_task = bar.add_task(
                    '  %s seed %d' % (policy.name, seed))
                summary, bound, total = _run_job(
                    args, policy, seed,
                    lambda n, t=request_task: bar.advance(t, n))
                bar.update(request_task, total=total, completed=total)
                summaries.append(summary)
                seeds.append(seed)
                bar.advance(task)
        else:
            with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
                futures = [pool.submit(_run_job, args, policy, seed)
                           for policy, seed in jobs]
                for (policy, seed), future in zip(jobs, futures):
                    summary, bound, _ = future.result()
                    summaries.append(summary)
                    seeds.append(seed)
                    bar.advance(task)
    return summaries, seeds, bound


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError('%r is not a positive integer'
                                         % text)
    return value


def _non_negative(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError('%s is below 0' % text)
    return value


def _positive(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError('%s is not above 0' % text)
    return value


def main(argv=None):
    try:
        import nova  # noqa: F401 (the simulator drives nova's own code)
    except ImportError:
        sys.stderr.write('gpu-passthrough-sim needs nova: install the '
                         'project with its simulator, e.g. pip install '
                         '-c upper-constraints.txt ".[sim]"\n')
        return 2
    args = build_parser().parse_args(argv)
    console = rich_console.Console(
        width=None if sys.stdout.isatty() else 150)
    _quiet()
    try:
        trace = load_requests(args)
        fleet = load_fleet(args, any(not r.gpus for r in trace.requests))
        policies = _policies(args)
    except (ValueError, OSError) as error:
        console.print('[red]error:[/red] %s' % error)
        return 2
    if not policies:
        console.print('[red]error:[/red] no policy selected')
        return 2
    console.print('fleet: %s, %d GPUs; trace: %s, %d whole-GPU or plain '
                  'VMs, %d fractional-GPU pods left out; target %.0f%%'
                  % (fleet.source, fleet.gpu_count, trace.source,
                     len(trace.requests), trace.dropped_fractional,
                     args.target * 100))
    jobs = [(policy, args.seed + offset) for policy in policies
            for offset in range(args.seeds)]
    summaries, seeds, bound = _run_all(args, jobs, console)
    title = '%s on %s' % (trace.source, fleet.source)
    console.print(report.summary_table(summaries, title))
    paths = report.write_csv(summaries, seeds, args.output)
    if not args.no_plot:
        png = report.plot(summaries, bound,
                          os.path.join(args.output, 'allocation.png'), title)
        paths += (png or 'no plot: matplotlib is not installed',)
    console.print('upper bound: every GPU of the fleet (%d) given at 100%% '
                  'demand; written: %s' % (fleet.gpu_count,
                                           ', '.join(map(str, paths))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
