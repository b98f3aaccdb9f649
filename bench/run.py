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
"""Run the benchmarks: ``tox -e bench [-- NAME ...]``.

Each ``bench/bench_<name>.py`` has a ``main(argv)`` that prints its results
as ratios against a reference measured in the same run (nova's own filters,
or ``lspci``). With no argument every benchmark runs; results go to the
terminal and are recorded by hand in ``doc/source/admin/benchmarks.rst``
with the command that produced them.
"""

import importlib.util
import pathlib
import sys

BENCH_DIR = pathlib.Path(__file__).resolve().parent


def _benchmarks():
    return {path.stem[len('bench_'):]: path
            for path in sorted(BENCH_DIR.glob('bench_*.py'))}


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv):
    available = _benchmarks()
    names = argv or list(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        print('unknown benchmark(s): %s; available: %s'
              % (', '.join(unknown), ', '.join(available)))
        return 2
    for name in names:
        print('=== %s ===' % name, flush=True)
        _load(available[name]).main([])
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
