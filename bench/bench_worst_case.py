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
"""The GPU-set search's cost per host on large hosts (the worst cases).

The policy core alone (``feasibility.best_set`` on a fresh host index, so
nothing is cached): hosts of 16, 32 and 64 isolated GPUs of two models,
4 per switch, two NUMA nodes, and the same with GPUs in shared 2-GPU
groups under strict isolation; requests of one alias and of two aliases,
feasible and not. Prints milliseconds per host (best of 3).
``tox -e bench -- worst_case``.
"""

import sys
import time

from gpu_passthrough_filter.policy import feasibility
from gpu_passthrough_filter.policy import host_index
from gpu_passthrough_filter.policy import model
from gpu_passthrough_filter import tags

H100, A100 = '10de:2330', '10de:20b2'


def host(count, shared):
    gpus = []
    for i in range(count):
        group = str(i // 2) if shared else str(i)
        gpus.append(model.GPUView(
            address='0000:%02x:00.0' % (i + 1), model=(H100, A100)[i % 2],
            numa_node=i * 2 // count, iommu_group=group,
            isolation=tags.SHARED if shared else tags.ISOLATED,
            switch='sw%d' % (i // 4)))
    return model.HostView(name='h%d' % count, gpus=tuple(gpus))


def requests(count):
    def ask(*demands):
        return model.GPURequest(demands=tuple(
            model.GPUDemand(n, frozenset(models)) for n, models in demands))
    return [
        ('1 alias, 3', ask((3, (H100,)))),
        ('1 alias, 7 any', ask((7, ()))),
        ('2 aliases, 3+5', ask((3, (H100,)), (5, (A100,)))),
        ('2 aliases, 7 any+1', ask((7, ()), (1, (A100,)))),
        ('2 aliases, infeasible', ask((count // 2 + 1, (H100,)),
                                      (1, (A100,)))),
    ]


def main(argv):
    print('%-6s %-7s %-24s %8s %s' % ('GPUs', 'groups', 'request',
                                      'ms/host', 'fits'))
    worst = 0.0
    for count in (16, 32, 64):
        for shared in (False, True):
            view = host(count, shared)
            for name, request in requests(count):
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    fit = feasibility.best_set(host_index.HostIndex(view),
                                               request)
                    times.append(time.perf_counter() - start)
                worst = max(worst, min(times))
                print('%-6d %-7s %-24s %8.2f %s' % (
                    count, 'shared' if shared else 'own', name,
                    min(times) * 1e3, fit.ok), flush=True)
    print('worst: %.2f ms per host' % (worst * 1e3))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
