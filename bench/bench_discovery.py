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
"""Discovery cost: the agent's sysfs scan against ``lspci -vvv``.

Method, and its limits, stated plainly:

1. **Side by side on this machine's real /sys**: ``lspci -vvv -nn
   -D`` (spawned as the agent would have to spawn it, its output parsed by
   nobody) against :func:`read_inventory` on ``/`` in-process, with every
   function counted as a GPU (``extra_gpu_ids``) so that it too looks up
   every name in ``pci.ids`` and classifies every IOMMU group. Both read
   the same devices; the ratio is per scan and therefore per device.
   ``lspci -vvv`` decodes config space capabilities the agent does not
   read, and the agent reads NUMA, IOMMU groups and the parent chain that
   ``lspci -vvv`` does not show; that is the "comparable information".
2. **A 16-GPU host tree.** The full scan of a generated tree (16 GPUs with
   their audio functions behind 4 PCIe switches, 2 NUMA nodes, one IOMMU
   group per function) is timed in-process and divided by its number of
   functions. That per-function cost is compared with ``lspci``'s
   per-device cost from step 1 (its time per run divided by this
   machine's device count). ``lspci``'s fixed start-up cost is spread
   over few devices on a small VM, which makes its per-device figure
   higher than it would be on a big host: read that ratio as an order of
   magnitude, and step 1's as the measured one.

3. **Whole processes on the bundled captured tree**
   (``tests/data/sysfs/32intel64-2p8co2t+8ve``, 28 functions): ``lspci
   -vvv -A linux-sysfs -O sysfs.path=<tree>/sys/bus/pci`` (lspci reads a
   captured tree too) against ``gpu-passthrough-agent discover
   --sysfs-root <tree> --format json``, CPU seconds (user + system) of the
   child process; ``python -c pass`` is the interpreter's own floor.

Timings are medians of repeated runs (wall clock, ``time.perf_counter``;
step 3: CPU time from ``os.wait4``).
Not a test: run with ``tox -e bench -- discovery``.
"""

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from gpu_passthrough_filter.inventory import sysfs

REPEAT = 30

#: The tests' sysfs tree writer, loaded by path: importing it through the
#: ``tests`` package would run that package's set-up (nova's eventlet
#: monkey patching), which has no place in a timing of the agent.
TREE_WRITER = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tests', 'unit', 'inventory', 'tree.py')


def _tree_module():
    spec = importlib.util.spec_from_file_location('sysfs_tree', TREE_WRITER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _median_seconds(function, repeat=REPEAT):
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def write_sixteen_gpu_host(root):
    """16 GPUs (+ audio) under 4 switches on 2 sockets; returns #functions.

    :param root: empty directory to write ``sys/`` into.
    """
    tree = _tree_module().Tree(root)
    tree.numa_node(0, '0-31')
    tree.numa_node(1, '32-63')
    group = 0
    for switch in range(4):
        socket = switch // 2
        base = 0x10 + switch * 0x20
        host_bridge = 'pci0000:%02x' % base
        root_port = '0000:%02x:00.0' % base
        upstream = '0000:%02x:00.0' % (base + 1)
        cpus = '0-31' if socket == 0 else '32-63'
        bridge = dict(class_code='0x060400', vendor='0x10b5',
                      device='0x9797', driver='pcieport',
                      numa_node=str(socket), local_cpulist=cpus)
        tree.add(root_port, [host_bridge], group=group, **bridge)
        tree.add(upstream, [host_bridge, root_port], group=group + 1,
                 **bridge)
        group += 2
        for port in range(4):
            downstream = '0000:%02x:%02x.0' % (base + 2, port * 4)
            bus = base + 3 + port
            parents = [host_bridge, root_port, upstream, downstream]
            tree.add(downstream, parents[:3], group=group, **bridge)
            tree.add('0000:%02x:00.0' % bus, parents, driver='vfio-pci',
                     group=group + 1, numa_node=str(socket),
                     local_cpulist=cpus)
            tree.add('0000:%02x:00.1' % bus, parents, class_code='0x040300',
                     device='0x22ba', driver='vfio-pci', group=group + 1,
                     numa_node=str(socket), local_cpulist=cpus)
            group += 2
    return len(os.listdir(os.path.join(root, 'sys', 'bus', 'pci',
                                       'devices')))


def _real_ids():
    """``vendor:device`` of every function of this machine."""
    inventory = sysfs.read_inventory('/')
    return sorted({function.model for function in inventory.functions
                   if function.vendor and function.device})


def bench_real_sysfs():
    """Step 1: lspci -vvv vs the reader on this machine's /sys."""
    lspci = shutil.which('lspci')
    if lspci is None:
        print('lspci not installed (apt-get install -y pciutils): skipped')
        return None
    devices = len(os.listdir('/sys/bus/pci/devices'))
    command = [lspci, '-vvv', '-nn', '-D']
    lspci_s = _median_seconds(lambda: subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        check=False))
    ids = _real_ids()
    reader_s = _median_seconds(
        lambda: sysfs.read_inventory('/', extra_gpu_ids=ids))
    print('this machine: %d PCI functions' % devices)
    print('  lspci -vvv -nn -D (spawned):  %8.2f ms per scan, %.3f ms '
          'per device' % (lspci_s * 1e3, lspci_s * 1e3 / devices))
    print('  read_inventory("/"):          %8.2f ms per scan, %.3f ms '
          'per device' % (reader_s * 1e3, reader_s * 1e3 / devices))
    print('  ratio reader / lspci:         %8.3f' % (reader_s / lspci_s))
    return lspci_s / devices


def bench_sixteen_gpus(lspci_per_device_s):
    """Step 2: the full scan of a 16-GPU host tree."""
    with tempfile.TemporaryDirectory() as root:
        functions = write_sixteen_gpu_host(root)
        inventory = sysfs.read_inventory(root, hostname='bench')
        assert len(inventory.gpus) == 16, inventory.gpus
        reader_s = _median_seconds(
            lambda: sysfs.read_inventory(root, hostname='bench'))
    per_function = reader_s / functions
    print('16-GPU tree: %d PCI functions' % functions)
    print('  read_inventory(tree):         %8.2f ms per scan, %.3f ms '
          'per function' % (reader_s * 1e3, per_function * 1e3))
    if lspci_per_device_s:
        print('  per-device ratio reader / lspci (lspci from this '
              'machine): %.3f' % (per_function / lspci_per_device_s))


def _child_cpu_seconds(command, repeat=9):
    """Median CPU seconds (user + system) of a child process."""
    samples = []
    for _ in range(repeat):
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(child.pid, 0)
        samples.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(samples)


#: The interpreter that runs ``discover`` in step 3: this one by default
#: (tox's editable install), or one of a plain install, e.g.
#: ``GPUPT_BENCH_PYTHON=/tmp/plain/bin/python`` after ``python3 -m venv
#: /tmp/plain && /tmp/plain/bin/pip install --no-deps .``
PYTHON = os.environ.get('GPUPT_BENCH_PYTHON', sys.executable)


def bench_whole_process(python=PYTHON, repeat=9):
    """Step 3: the discover command against lspci, as processes."""
    tree = os.path.join(os.path.dirname(TREE_WRITER), os.pardir, os.pardir,
                        'data', 'sysfs', '32intel64-2p8co2t+8ve')
    tree = os.path.normpath(tree)
    lspci = shutil.which('lspci')
    agent = [python, '-m', 'gpu_passthrough_filter.cmd.agent',
             'discover', '--sysfs-root', tree, '--format', 'json',
             '--extra-gpu-id', '1bcf:001c']
    floor = _child_cpu_seconds([python, '-c', 'pass'], repeat)
    ours = _child_cpu_seconds(agent, repeat)
    print('step 3, whole processes on %s (%s):'
          % (os.path.basename(tree), python))
    print('  python -c pass          %.3f s CPU' % floor)
    print('  discover --format json  %.3f s CPU' % ours)
    if lspci is None:
        print('  lspci not installed: no ratio')
        return
    theirs = _child_cpu_seconds([lspci, '-vvv', '-A', 'linux-sysfs', '-O',
                                 'sysfs.path=%s/sys/bus/pci' % tree], repeat)
    print('  lspci -vvv              %.3f s CPU' % theirs)
    print('  ratio discover / lspci  %.1f' % (ours / max(theirs, 1e-4)))


def main(argv):
    bench_whole_process()
    lspci_per_device_s = bench_real_sysfs()
    bench_sixteen_gpus(lspci_per_device_s)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
