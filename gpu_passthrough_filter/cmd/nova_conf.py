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
"""``gpu-passthrough-agent nova-conf enable|disable``.

Turns GPUPassthroughFilter (and, unless ``--no-weigher``, the weigher) on or
off in the nova.conf of the hosts that run nova-scheduler, in place and
idempotently: running it twice changes the file once. The edit logic lives
in :mod:`gpu_passthrough_filter.cmd.novaconf`.

Exit status: 0 on success (changed or not), 1 when the file cannot be
read, parsed or written, or nova's defaults are needed but nova is not
installed.
"""

import re
import sys

from gpu_passthrough_filter.cmd import config_edit
from gpu_passthrough_filter.cmd import novaconf
from gpu_passthrough_filter import recommended

DEFAULT_CONFIG_FILE = '/etc/nova/nova.conf'


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'nova-conf',
        help="Turn the scheduler plugins on or off in a nova.conf.",
        description="Edit [filter_scheduler] available_filters, "
                    "enabled_filters and weight_classes of a nova.conf in "
                    "place, keeping comments, other sections and nova's "
                    "defaults. Run it where nova-scheduler runs, then "
                    "restart nova-scheduler.")
    actions = parser.add_subparsers(dest='action', metavar='ACTION')
    actions.required = True
    enable = actions.add_parser(
        'enable', help='List the filter (and the weigher) in nova.conf.')
    enable.add_argument(
        '--weigher', dest='weigher', action='store_true', default=True,
        help='Also list GPUPassthroughWeigher in weight_classes (default).')
    enable.add_argument(
        '--no-weigher', dest='weigher', action='store_false',
        help='Leave the weigher out, removing it if it is listed.')
    enable.add_argument(
        '--add-nova-gpu-filters', action='store_true',
        help="Also list nova's PciPassthroughFilter and NUMATopologyFilter "
        "when enabled_filters lacks them (a GPU cloud needs both; disable "
        "leaves them).")
    enable.add_argument(
        '--fast-nova-filters', action='store_true',
        help="Name nova's PciPassthroughFilter and NUMATopologyFilter by "
        "this project's fast forms, FastPciPassthroughFilter and "
        "FastNUMATopologyFilter: the same verdicts, each computed once per "
        "host state and request shape (recommended; disable names them "
        "back).")
    enable.add_argument(
        '--packing-weights', action='store_true',
        help="Also set nova's RAM, CPU and I/O weighers as the project "
        "recommends for a GPU cloud: [filter_scheduler] "
        "ram_weight_multiplier = -1 (stack), cpu_weight_multiplier = 0 and "
        "io_ops_weight_multiplier = 0 (nova's defaults spread guests over "
        "the large hosts that multi-GPU guests need whole; disable leaves "
        "them).")
    enable.set_defaults(func=run, enable=True)
    disable = actions.add_parser(
        'disable', help='Remove the filter and the weigher from nova.conf.')
    disable.set_defaults(func=run, enable=False, weigher=False,
                         add_nova_gpu_filters=False, fast_nova_filters=False,
                         packing_weights=False)
    alias = actions.add_parser(
        'alias', help="Print the [pci] alias entries the agent writes for "
        "GPU models, one JSON per line, for nova-api and nova-scheduler.",
        description="The same alias names and resource classes as the "
        "agent's generated nova-compute config (one rule for both sides): "
        "gpu-<vendor>-<device> unless named, with the model's resource "
        "class under --placement.")
    alias.add_argument('models', nargs='+', metavar='VENDOR:DEVICE',
                       help='GPU models, e.g. 10de:26b9.')
    alias.add_argument('--placement', action='store_true',
                       help='Add the resource class (PCI in Placement).')
    alias.add_argument('--name', action='append', default=[],
                       metavar='VENDOR:DEVICE=NAME',
                       help='Alias name of a model, as the agent\'s '
                       '[nova_pci] alias_names.')
    alias.set_defaults(func=run_alias)
    for sub in (enable, disable):
        sub.add_argument(
            '--config-file', default=DEFAULT_CONFIG_FILE,
            help='The nova.conf to edit (default: %(default)s).')
        sub.add_argument(
            '--dry-run', action='store_true',
            help='Print the change as a unified diff; write nothing.')
    return parser


def _defaults_or_none():
    try:
        return novaconf.nova_defaults()
    except ImportError:
        return None


def run(args, out=None, err=None):
    """Apply the edit asked for by the parsed ``args``.

    :param args: the argparse namespace (``config_file``, ``enable``,
        ``weigher``, ``dry_run``).
    :param out: stream for the report; standard output by default.
    :param err: stream for errors; standard error by default.
    :returns: the exit status.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    defaults = _defaults_or_none()
    if defaults is None:
        err.write('nova is not installed here: cannot read its default '
                  'scheduler options. Run this where nova-scheduler runs.\n')
        return 1

    def edit(text):
        result = novaconf.configure(
            text, defaults, enable_filter=args.enable,
            enable_weigher=args.weigher,
            nova_gpu_filters=args.add_nova_gpu_filters,
            fast_nova_filters=args.fast_nova_filters)
        if args.packing_weights:
            weights = novaconf.configure_values(result.text, [
                (option.group, option.name, option.value)
                for option in recommended.SCHEDULER_WEIGHT_OPTIONS])
            result = novaconf.EditResult(weights.text,
                                         result.changes + weights.changes)
        if args.enable:
            for warning in novaconf.missing_gpu_filters(result.text,
                                                        defaults):
                err.write('%s: warning: %s\n' % (args.config_file, warning))
            if _pci_in_placement(result.text):
                err.write(PLACEMENT_HINT % args.config_file)
        return result

    return config_edit.edit_file(args.config_file, edit, args.dry_run, out,
                                 err)


#: What ``enable`` says when nova.conf turns on PCI in Placement.
PLACEMENT_HINT = (
    '%s: note: [filter_scheduler] pci_in_placement is on: run '
    '"gpu-passthrough-agent placement-conf enable" on every Placement API '
    'host (without it an 8-GPU flavor makes Placement enumerate every '
    'ordering of every free GPU set)\n')


def _pci_in_placement(text):
    entries = novaconf.IniDocument(text).find('filter_scheduler',
                                              'pci_in_placement')
    return bool(entries) and entries[-1].values.strip().lower() in (
        'true', '1', 'yes', 'on')


#: A GPU model on the command line: ``10de:26b9``.
_MODEL = re.compile(r'^[0-9a-f]{4}:[0-9a-f]{4}$')


def run_alias(args, out=None, err=None):
    """Print one ``[pci] alias`` JSON per model (the agent's own rule)."""
    import json

    from gpu_passthrough_filter.agent import exception
    from gpu_passthrough_filter.agent import nova_pci

    out = out or sys.stdout
    err = err or sys.stderr
    bad = [m for m in args.models if not _MODEL.match(m.strip().lower())]
    if bad:
        err.write('not VENDOR:DEVICE (4 hex digits each): %s\n'
                  % ', '.join(bad))
        return 1
    models = [tuple(m.strip().lower().split(':')) for m in args.models]
    try:
        names = nova_pci.parse_alias_names(args.name)
    except exception.ConfigError as exc:
        err.write('%s\n' % exc)
        return 1
    for vendor, device in models:
        name = names.get((vendor, device),
                         nova_pci.default_alias_name(vendor, device))
        # NOTE: compact (no spaces): devstack's iniset_multiline splits
        # its values on white space.
        out.write('%s\n' % json.dumps(nova_pci.alias(
            vendor, device, name, args.placement), sort_keys=True,
            separators=(',', ':')))
    return 0
