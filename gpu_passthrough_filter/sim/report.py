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
"""Outputs of a comparison: terminal table, CSV files, PNG plot."""

import collections
import csv
import pathlib
import statistics

from rich import console as rich_console
from rich import table as rich_table


def _mean(values):
    values = [value for value in values if value is not None]
    return statistics.fmean(values) if values else None


def _fmt(value, pattern='%.0f'):
    return '-' if value is None else pattern % value


def by_policy(summaries):
    """``{policy: [Summary, ...]}`` (one per seed), in first-seen order."""
    grouped = collections.OrderedDict()
    for summary in summaries:
        grouped.setdefault(summary.policy, []).append(summary)
    return grouped


#: The one column whose values may wrap (on spaces, never cut).
_WRAPPING = 'failed by GPUs'


def _table(title, columns):
    table = rich_table.Table(title=title)
    for column in ('policy',) + columns:
        table.add_column(column, justify='left' if column == 'policy'
                         else 'right', no_wrap=column != _WRAPPING)
    return table


def summary_table(summaries, title):
    """Three rich tables, one row per policy (means over seeds).

    GPUs given, then locality and safety, then timings: split so that
    policy names, headers and values are never cut on a terminal of 100
    columns.
    """
    given = _table('%s\nunallocated GPUs when the arrived demand reaches '
                   '100%% and 130%% of the fleet' % title,
                   ('seeds', 'placed', 'GPUs given', '@100%', '@130%',
                    _WRAPPING))
    safety = _table('locality and isolation',
                    ('1 NUMA', '1 switch', 'iso breaks', 'failed boots',
                     'stranded'))
    timing = _table('time per request (ms) and per host (us)',
                    ('ms/req', 'us/host', 'nova PCI ms', 'project ms'))
    for policy, runs in by_policy(summaries).items():
        failed = collections.Counter()
        for run in runs:
            failed.update(run.failed_by_gpus)
        given.add_row(
            policy, str(len(runs)),
            '%s/%s' % (_fmt(_mean(r.placed for r in runs)),
                       _fmt(_mean(r.requests for r in runs))),
            '%s/%d' % (_fmt(_mean(r.allocated for r in runs)),
                       runs[0].gpus_total),
            _fmt(_mean(r.unallocated_at[100] for r in runs)),
            _fmt(_mean(r.unallocated_at[130] for r in runs)),
            ' '.join('%dg:%.0f' % (gpus, count / float(len(runs)))
                     for gpus, count in sorted(failed.items())) or '-')
        safety.add_row(
            policy,
            _fmt(_mean(r.one_numa_share for r in runs), '%.0f%%'
                 ) if runs[0].multi_gpu_vms else '-',
            _fmt(_mean(r.one_switch_share for r in runs), '%.0f%%'
                 ) if runs[0].multi_gpu_vms else '-',
            _fmt(_mean(r.isolation_breaks for r in runs)),
            _fmt(_mean(r.failed_boots for r in runs)),
            _fmt(_mean(r.stranded_gpus for r in runs)))
        timing.add_row(
            policy,
            _fmt(_mean(r.ms_per_request for r in runs), '%.1f'),
            _fmt(_mean(r.us_per_host for r in runs), '%.0f'),
            _fmt(_mean(r.nova_pci_ms for r in runs), '%.1f'),
            _fmt(_mean(r.project_ms for r in runs), '%.1f'))
    return rich_console.Group(given, safety, timing)


SUMMARY_FIELDS = ('policy', 'seed', 'requests', 'placed', 'gpus_total',
                  'allocated', 'unallocated_100', 'unallocated_130',
                  'failed_by_gpus', 'multi_gpu_vms', 'one_numa_pct',
                  'one_switch_pct', 'isolation_breaks', 'failed_boots',
                  'stranded_gpus',
                  'ms_per_request', 'us_per_host', 'seconds',
                  'nova_pci_ms_per_request', 'project_ms_per_request')


def write_csv(summaries, seeds, directory):
    """``summary.csv`` and ``curve.csv`` in ``directory``; returns paths."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    summary_path = directory / 'summary.csv'
    with open(summary_path, 'w', newline='') as stream:
        writer = csv.writer(stream)
        writer.writerow(SUMMARY_FIELDS)
        for summary, seed in zip(summaries, seeds):
            writer.writerow([
                summary.policy, seed, summary.requests, summary.placed,
                summary.gpus_total, summary.allocated,
                summary.unallocated_at[100], summary.unallocated_at[130],
                ' '.join('%d:%d' % item
                         for item in summary.failed_by_gpus.items()),
                summary.multi_gpu_vms, summary.one_numa_share,
                summary.one_switch_share, summary.isolation_breaks,
                summary.failed_boots, summary.stranded_gpus,
                '%.3f' % summary.ms_per_request,
                '%.1f' % summary.us_per_host, '%.1f' % summary.seconds,
                '%.3f' % summary.nova_pci_ms, '%.3f' % summary.project_ms])
    curve_path = directory / 'curve.csv'
    with open(curve_path, 'w', newline='') as stream:
        writer = csv.writer(stream)
        writer.writerow(('policy', 'seed', 'arrived_pct', 'allocated_pct'))
        for summary, seed in zip(summaries, seeds):
            for step, ratio in summary.curve:
                writer.writerow((summary.policy, seed, step, '%.3f' % ratio))
    return summary_path, curve_path


def plot(summaries, bound, path, title):
    """PNG of allocation ratio vs arrived demand, one line per policy.

    :param bound: the upper-bound curve (``[(step, percent)]``).
    :returns: the path, or None when matplotlib is not installed.
    """
    try:
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib import pyplot
    except ImportError:
        return None
    figure, axes = pyplot.subplots(figsize=(8, 5))
    if bound:
        axes.plot(*zip(*bound), linestyle=':', color='grey',
                  label='upper bound')
    for policy, runs in by_policy(summaries).items():
        steps = collections.defaultdict(list)
        for run in runs:
            for step, ratio in run.curve:
                steps[step].append(ratio)
        xs = sorted(steps)
        axes.plot(xs, [statistics.fmean(steps[x]) for x in xs], label=policy)
    axes.set_xlabel('arrived GPU demand (% of fleet GPUs)')
    axes.set_ylabel('GPUs allocated (% of fleet GPUs)')
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
