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
"""``gpu-passthrough-agent discover``: show what the agent sees.

Reads sysfs once and prints the GPUs as a table (default) or the whole
inventory as JSON (``--format json``, readable back with
:meth:`~gpu_passthrough_filter.inventory.model.HostInventory.from_json`).
Per-device read problems are printed as warnings on standard error. The
exit status is 0 whenever anything could be read, also without GPUs or
IOMMU; 1 when not even the PCI device list could.
"""

import argparse
import os
import sys

from gpu_passthrough_filter.inventory import sysfs
from gpu_passthrough_filter import tags

#: Verdict -> colour in the table.
_VERDICT_STYLE = {tags.ISOLATED: 'green', tags.SHARED: 'red',
                  tags.UNKNOWN: 'yellow'}

#: Width of the table when the output is not a terminal (a pipe, a file,
#: a test): wide enough that no column is cut.
_PIPE_WIDTH = 200


def add_parser(subparsers):
    """Register ``discover``.

    :param subparsers: the ``gpu-passthrough-agent`` sub-parsers.
    """
    parser = subparsers.add_parser(
        'discover',
        help='Show the GPUs, their IOMMU isolation and PCIe locality.',
        description='Read sysfs and show every GPU with its NUMA node, '
                    'IOMMU group and isolation verdict, driver, PCIe '
                    'switch and link.')
    parser.add_argument(
        '--sysfs-root', default='/', metavar='DIR',
        help='Directory holding sys/ (default: /). Point it at a captured '
             'tree to inspect another machine.')
    parser.add_argument(
        '--format', choices=('table', 'json'), default='table',
        help='table (default) for people, json for tools.')
    parser.add_argument(
        '--extra-gpu-id', action='append', default=[], metavar='VID:DID',
        type=_gpu_id,
        help='Also count PCI vendor:device (hex) as a GPU, e.g. 1bcf:001c; '
             'may be repeated.')
    parser.add_argument(
        '--pci-ids', metavar='FILE',
        help='pci.ids database for names (default: the system one).')
    parser.add_argument(
        '--hostname',
        help='Host name to record (default: this machine\'s; for a '
        'captured --sysfs-root, its etc/hostname, else the directory\'s '
        'name).')
    parser.set_defaults(func=run)


def _gpu_id(text):
    try:
        sysfs.parse_gpu_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))
    return text


def run(args):
    """Discover and print; returns the exit status.

    :param args: the parsed command line.
    """
    err = _Stderr()
    try:
        inventory = sysfs.read_inventory(
            args.sysfs_root, args.extra_gpu_id, args.pci_ids, args.hostname)
    except sysfs.SysfsUnreadableError as exc:
        err.print('Error: nothing could be read: %s' % exc, markup=False)
        root = os.path.normpath(args.sysfs_root or '/')
        if os.path.basename(root) == 'sys' and os.path.isdir(
                os.path.join(root, 'bus', 'pci', 'devices')):
            err.print('Hint: --sysfs-root is the directory that holds '
                      'sys/; try --sysfs-root %s' % os.path.dirname(root),
                      markup=False)
        return 1
    for error in inventory.errors:
        err.print('Warning: %s %s: %s'
                  % (error.address, error.file, error.message), markup=False)
    if inventory.errors and not inventory.functions:
        err.print('Error: no PCI function could be read.', markup=False)
        return 1
    if args.format == 'json':
        sys.stdout.write(inventory.to_json(indent=2) + '\n')
        return 0
    print_table(inventory, _stdout_console())
    return 0


class _Stderr:
    """Plain lines on stderr.

    NOTE: not rich: importing it is a third of this command's cost as a
    process, and ``--format json`` (what scripts run) prints no table.
    """

    @staticmethod
    def print(text, markup=False):
        sys.stderr.write(text + '\n')


def _stdout_console():
    import rich.console
    if sys.stdout.isatty():
        return rich.console.Console(file=sys.stdout, highlight=False)
    return rich.console.Console(file=sys.stdout, width=_PIPE_WIDTH,
                                highlight=False)


def print_table(inventory, console):
    """Print the GPU table and the host notes.

    :param inventory: a :class:`~gpu_passthrough_filter.inventory.model.
        HostInventory`.
    :param console: a :class:`rich.console.Console`.
    """
    memory_only = [n.id for n in inventory.numa_nodes if not n.has_cpus]
    nodes = '%d NUMA node(s)' % (len(inventory.numa_nodes) - len(memory_only))
    if memory_only:
        nodes += ' with CPUs and %d memory-only (%s)' % (
            len(memory_only), ', '.join(map(str, memory_only)))
    console.print('Host %s: %d PCI functions, %s, %d IOMMU group(s)' % (
        inventory.hostname, len(inventory.functions), nodes,
        len(inventory.iommu_groups)), markup=False)
    if not inventory.iommu_enabled:
        console.print('IOMMU is off or not exposed: no IOMMU groups in '
                      'sysfs, so no GPU can be proven isolated.',
                      markup=False)
    if not inventory.gpus:
        console.print('No GPU found.', markup=False)
        return
    console.print(_gpu_table(inventory))
    for gpu in inventory.gpus:
        for reason in gpu.health_reasons:
            console.print('%s %s: %s' % (gpu.address, gpu.health, reason),
                          markup=False)


def _gpu_table(inventory):
    import rich.table
    import rich.text
    table = rich.table.Table(title='%d GPU(s)' % len(inventory.gpus),
                             title_justify='left')
    for column in ('GPU', 'Name', 'NUMA', 'IOMMU group', 'vfio ready',
                   'Driver', 'Switch', 'Link', 'Health'):
        table.add_column(column)
    for gpu in inventory.gpus:
        function = inventory.function(gpu.address)
        verdict = rich.text.Text(gpu.isolation,
                                 style=_VERDICT_STYLE[gpu.isolation])
        group = rich.text.Text('%s ' % _or_dash(gpu.iommu_group)) + verdict
        table.add_row(gpu.address, gpu.name, _or_dash(gpu.numa_node), group,
                      'yes' if gpu.vfio_ready else 'no',
                      _or_dash(gpu.driver), _or_dash(gpu.switch),
                      _link(function), gpu.health)
    return table


def _link(function):
    """``"8 GT/s x16"``, with the maximum when the link runs below it."""
    current = '%s x%s' % (_or_dash(function.cur_link_speed),
                          _or_dash(function.cur_link_width))
    maximum = '%s x%s' % (_or_dash(function.max_link_speed),
                          _or_dash(function.max_link_width))
    if current == maximum:
        return current
    return '%s (max %s)' % (current, maximum)


def _or_dash(value):
    return '-' if value is None else str(value)
