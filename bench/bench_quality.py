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
"""Quality benchmark: the simulator on openb ``default`` and ``multigpu50``.

Runs ``gpu-passthrough-sim`` once per trace with the built-in policies
(nova-default, nova-pci-in-placement, gpu-passthrough when installed) and
prints, per trace, the unallocated GPUs at 130% arrived demand of each
policy as a ratio to nova-default's. ``BENCH_QUALITY_HOSTS`` (default 60)
and ``BENCH_QUALITY_SEEDS`` (default 1) size the run; the numbers in
``doc/source/admin/benchmarks.rst`` say which values produced them.
"""

import csv
import os
import sys
import tempfile

from gpu_passthrough_filter.cmd import sim

TRACES = ('default', 'multigpu50')


def _unallocated(directory):

    rows = list(csv.DictReader(open(os.path.join(directory,
                                                 'summary.csv'))))
    by_policy = {}
    for row in rows:
        by_policy.setdefault(row['policy'], []).append(
            float(row['unallocated_130'] or 'nan'))
    return {policy: sum(values) / len(values)
            for policy, values in by_policy.items()}


def main(argv):
    hosts = os.environ.get('BENCH_QUALITY_HOSTS', '60')
    seeds = os.environ.get('BENCH_QUALITY_SEEDS', '1')
    for trace in TRACES:
        with tempfile.TemporaryDirectory() as output:
            sim.main(['--trace', trace, '--hosts', hosts, '--seeds', seeds,
                      '--output', output, '--no-plot'] + list(argv))
            unallocated = _unallocated(output)
        reference = unallocated.get('nova-default')
        print('%s: unallocated GPUs at 130%% (hosts=%s seeds=%s)'
              % (trace, hosts, seeds))
        for policy, value in unallocated.items():
            ratio = value / reference if reference else float('nan')
            print('  %-24s %8.1f  x%.2f of nova-default'
                  % (policy, value, ratio))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
